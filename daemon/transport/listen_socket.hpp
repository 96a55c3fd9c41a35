// The daemon's listening Unix socket, made the way ssh-agent makes its own: a
// private directory, bind under umask 0177, and removal only of the socket file
// this process created.
#pragma once

#include <sys/types.h>

#include <string>
#include <variant>

namespace kosli::daemon {

// Who may reach the socket file. Either way, SO_PEERCRED decides who is served.
enum class SocketAccess {
  owner_only,    // directory 0700, socket 0600
  allowed_uids,  // --allow-uid: directory 0711 (others traverse, never write), socket 0666
};

class ListenSocket {
 public:
  // Checks (or creates) the directory, refuses when another daemon answers on
  // the path, replaces a stale socket file nobody answers, binds and listens.
  // The error is a sentence for a person.
  static std::variant<ListenSocket, std::string> create(const std::string& path,
                                                        SocketAccess access = SocketAccess::owner_only);

  ListenSocket(ListenSocket&& other) noexcept;
  ListenSocket& operator=(ListenSocket&&) = delete;
  ~ListenSocket();

  // Hands the descriptor over (to the acceptor); the file stays ours to remove.
  int release_fd();
  const std::string& path() const { return path_; }

  // Unlinks the socket file if it is still the one this process bound.
  void remove_file();

 private:
  ListenSocket(std::string path, int fd, dev_t dev, ino_t ino)
      : path_(std::move(path)), fd_(fd), dev_(dev), ino_(ino) {}

  std::string path_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace kosli::daemon
