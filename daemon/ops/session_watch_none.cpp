// SessionWatch for a build without GLib (compile it instead of
// session_watch.cpp): nothing is watched and no notification is sent.
#include "daemon/ops/session_watch.hpp"

namespace kosli::daemon {


struct SessionWatch::Impl {};

SessionWatch::SessionWatch(LockOn, bool, Forget) {}
SessionWatch::~SessionWatch() = default;

kosli::SessionHealth SessionWatch::health() const { return {}; }

void SessionWatch::notify(std::string, std::string) {}

}  // namespace kosli::daemon
