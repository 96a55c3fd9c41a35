// The socket the daemon serves: the one systemd passed (socket activation, by
// hand: no libsystemd), or one this process makes. Only a socket this process
// made is ever removed; systemd's belongs to the .socket unit.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "daemon/transport/listen_socket.hpp"

namespace kosli::daemon {

class ServingSocket {
 public:
  // systemd's socket when LISTEN_PID is this process and LISTEN_FDS is 1 (fd 3,
  // checked to be a listening AF_UNIX stream socket); else `path`, made with
  // `access`. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset either way.
  // The error is a sentence for a person.
  static std::variant<ServingSocket, std::string> open(const std::string& path, SocketAccess access);

  ServingSocket(ServingSocket&& other) noexcept;
  ServingSocket& operator=(ServingSocket&&) = delete;
  ~ServingSocket();

  // Hands the descriptor over (to the acceptor).
  int release_fd();
  // Whether systemd made the socket.
  bool activated() const { return !made_; }
  // The path it listens on (for logs; systemd's socket reports its own).
  const std::string& path() const { return path_; }
  // Unlinks the socket file if this process made it and it is still there.
  void remove_file();

 private:
  ServingSocket(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  explicit ServingSocket(ListenSocket made) : path_(made.path()), made_(std::move(made)) {}

  std::string path_;
  int fd_ = -1;                      // systemd's descriptor, until released
  std::optional<ListenSocket> made_;  // the socket this process made
};

}  // namespace kosli::daemon
