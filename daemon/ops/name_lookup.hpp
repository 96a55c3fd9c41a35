// How kosli-credd resolves Kosli's host name.
#pragma once

namespace kosli::daemon {

// In the static CI build (cmake/static_ci.cmake): host names are looked up in
// /etc/hosts, then through the DNS servers of /etc/resolv.conf, whatever the
// runner's /etc/nsswitch.conf says. A static glibc has those two built in, but
// would dlopen any other module nsswitch.conf names (resolve, mdns4, sss, …)
// from the runner, built for another glibc. Elsewhere it does nothing: the
// system's name service switch applies. Call before any thread starts.
void pin_name_lookup();

}  // namespace kosli::daemon
