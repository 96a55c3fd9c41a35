// What a D-Bus error says about the connection it came on.
#pragma once

#include <gio/gio.h>

namespace kosli::daemon {

// Whether `error` says the connection, or the service at the other end, is no
// longer the one we talked to: the bus closed, the name has no owner (the
// keyring is gone, or restarted under a new unique name), or an object such
// as our session is unknown to the service answering now. A fresh connection
// and service may succeed where this call failed.
bool connection_gone(const GError* error);

}  // namespace kosli::daemon
