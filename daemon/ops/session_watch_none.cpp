// SessionWatch for a build without GLib (compile it instead of
// session_watch.cpp): nothing is watched and no notification is sent.
#include "daemon/ops/session_watch.hpp"

namespace kosli::daemon {

std::string_view reason_name(ForgetReason reason) {
  switch (reason) {
    case ForgetReason::screen_locked: return "screen_locked";
    case ForgetReason::sleep: return "sleep";
    case ForgetReason::keyring_locked: return "keyring_locked";
  }
  return "unknown";
}

struct SessionWatch::Impl {};

SessionWatch::SessionWatch(LockOn, bool, Forget) {}
SessionWatch::~SessionWatch() = default;

kosli::SessionHealth SessionWatch::health() const { return {}; }

void SessionWatch::notify(std::string, std::string) {}

}  // namespace kosli::daemon
