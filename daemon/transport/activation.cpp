#include "daemon/transport/activation.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

#include "proto/socket_path.hpp"

namespace kosli::daemon {
namespace {

// systemd passes its first socket as this descriptor (SD_LISTEN_FDS_START).
constexpr int kListenFdsStart = 3;

struct NotActivated {};
struct Activated {
  int fd;
  std::string path;
};
using Activation = std::variant<NotActivated, Activated, std::string>;

int socket_option(int fd, int option) {
  int value = -1;
  socklen_t len = sizeof value;
  return ::getsockopt(fd, SOL_SOCKET, option, &value, &len) == 0 ? value : -1;
}

std::string bound_path(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || len <= sizeof(sa_family_t)) {
    return "(systemd's socket)";
  }
  if (addr.sun_path[0] == '\0') return "@" + std::string(addr.sun_path + 1, len - sizeof(sa_family_t) - 1);
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, sizeof addr.sun_path));
}

// sd_listen_fds(3) by hand, for exactly one socket.
Activation take_activation_socket() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const bool for_us = pid != nullptr && fds != nullptr && std::to_string(::getpid()) == pid;
  const std::string count = fds != nullptr ? fds : "";
  // Never passed on: these describe this process only.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!for_us) return NotActivated{};
  if (count != "1") {
    return "systemd passed " + count +
           " sockets; kosli-credd serves exactly one (check ListenStream= in kosli-credd.socket)";
  }
  const int fd = kListenFdsStart;
  if (socket_option(fd, SO_DOMAIN) != AF_UNIX || socket_option(fd, SO_TYPE) != SOCK_STREAM ||
      socket_option(fd, SO_ACCEPTCONN) != 1) {
    return std::string("the socket systemd passed (descriptor 3) is not a listening Unix stream "
                       "socket; kosli-credd.socket must use ListenStream= with a path");
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Activated{fd, bound_path(fd)};
}

}  // namespace

std::variant<ServingSocket, std::string> ServingSocket::open(const std::string& path, SocketAccess access) {
  auto activation = take_activation_socket();
  if (auto* error = std::get_if<std::string>(&activation)) return std::move(*error);
  if (auto* activated = std::get_if<Activated>(&activation)) return ServingSocket(activated->path, activated->fd);
  auto made = ListenSocket::create(path, access);
  if (auto* error = std::get_if<std::string>(&made)) return std::move(*error);
  struct stat dir {};
  const std::string dir_path = socket_directory(path);
  if (access == SocketAccess::allowed_uids && ::stat(dir_path.c_str(), &dir) == 0 && (dir.st_mode & 011) == 0) {
    spdlog::warn("the socket directory {} is mode {:04o}: the uids given with --allow-uid cannot reach the "
                 "socket; let them with: chmod 711 {}",
                 dir_path, dir.st_mode & 07777, dir_path);
  }
  return ServingSocket(std::move(std::get<ListenSocket>(made)));
}

ServingSocket::ServingSocket(ServingSocket&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), made_(std::move(other.made_)) {
  other.made_.reset();
}

ServingSocket::~ServingSocket() {
  if (fd_ >= 0) ::close(fd_);
}

int ServingSocket::release_fd() { return made_ ? made_->release_fd() : std::exchange(fd_, -1); }

void ServingSocket::remove_file() {
  if (made_) made_->remove_file();
}

}  // namespace kosli::daemon
