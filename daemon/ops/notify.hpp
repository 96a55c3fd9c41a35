// sd_notify(3) by hand, no libsystemd: state changes go as one datagram each to
// $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Without the
// variable (not run by systemd as Type=notify) every call does nothing.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string_view>

namespace kosli::daemon {

class SystemdNotifier {
 public:
  // Reads $NOTIFY_SOCKET and unsets it, so nothing this process runs inherits it.
  static SystemdNotifier from_environment();

  bool enabled() const { return length_ != 0; }
  // Sends `state`, e.g. "READY=1" or "STOPPING=1". Best effort: a manager that
  // went away is no reason to stop serving.
  void notify(std::string_view state) const;

 private:
  sockaddr_un address_{};
  socklen_t length_ = 0;
};

}  // namespace kosli::daemon
