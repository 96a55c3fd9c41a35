#include "daemon/transport/listen_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "proto/socket_path.hpp"

namespace kosli::daemon {
namespace {

// How many connections may wait to be accepted.
constexpr int kListenBacklog = 128;
// The umask bind runs under: the socket file is 0600, or 0666 for --allow-uid.
constexpr mode_t kOwnerOnlySocketUmask = 0177;
constexpr mode_t kAllowedUidsSocketUmask = 0111;

bool fill_address(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Whether a daemon answers on the socket at `path`.
bool someone_listens(const sockaddr_un& addr) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool answered = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return answered;
}

}  // namespace

std::variant<ListenSocket, std::string> ListenSocket::create(const std::string& path, SocketAccess access) {
  sockaddr_un addr{};
  if (!fill_address(path, addr)) {
    return "the socket path " + path + " is too long for a Unix socket; choose a shorter one";
  }
  const bool shared = access == SocketAccess::allowed_uids;
  const std::string dir = socket_directory(path);
  if (auto problem = shared ? ensure_traversable_directory(dir) : ensure_private_directory(dir)) {
    return *problem;
  }

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return path + " exists and is not a socket; remove it or choose another path with --socket";
    }
    if (someone_listens(addr)) {
      return "another kosli-credd is already serving " + path +
             " (stop it first, or choose another path with --socket)";
    }
    ::unlink(path.c_str());  // stale: its daemon is gone
  }

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("cannot create a socket: ") + std::strerror(errno);
  // The socket file gets its mode from bind itself: no window with other modes.
  const mode_t old_umask = ::umask(shared ? kAllowedUidsSocketUmask : kOwnerOnlySocketUmask);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old_umask);
  if (bound != 0 || ::listen(fd, kListenBacklog) != 0) {
    const int err = bound != 0 ? bind_errno : errno;
    ::close(fd);
    return "cannot listen on " + path + ": " + std::strerror(err);
  }
  if (::lstat(path.c_str(), &st) != 0) {
    ::close(fd);
    return "the socket " + path + " vanished right after it was made";
  }
  return ListenSocket(path, fd, st.st_dev, st.st_ino);
}

ListenSocket::ListenSocket(ListenSocket&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      dev_(std::exchange(other.dev_, 0)),
      ino_(std::exchange(other.ino_, 0)) {}

ListenSocket::~ListenSocket() {
  if (fd_ >= 0) ::close(fd_);
}

int ListenSocket::release_fd() { return std::exchange(fd_, -1); }

void ListenSocket::remove_file() {
  struct stat st {};
  if (ino_ != 0 && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
  ino_ = 0;
}

}  // namespace kosli::daemon
