#include "daemon/ops/notify.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace kosli::daemon {

SystemdNotifier SystemdNotifier::from_environment() {
  SystemdNotifier notifier;
  const char* value = std::getenv("NOTIFY_SOCKET");
  const std::string target = value != nullptr ? value : "";
  ::unsetenv("NOTIFY_SOCKET");
  if (target.empty()) return notifier;
  if ((target.front() != '/' && target.front() != '@') || target.size() >= sizeof notifier.address_.sun_path) {
    spdlog::warn("NOTIFY_SOCKET={} is not a Unix socket path; not notifying systemd", target);
    return notifier;
  }
  notifier.address_.sun_family = AF_UNIX;
  std::memcpy(notifier.address_.sun_path, target.data(), target.size());
  if (target.front() == '@') notifier.address_.sun_path[0] = '\0';  // abstract: no trailing NUL
  notifier.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target.size() +
                                            (target.front() == '/' ? 1 : 0));
  return notifier;
}

void SystemdNotifier::notify(std::string_view state) const {
  if (!enabled()) return;
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address_), length_);
  if (sent < 0) spdlog::warn("could not notify systemd ({}): {}", state, std::strerror(errno));
  ::close(fd);
}

}  // namespace kosli::daemon
