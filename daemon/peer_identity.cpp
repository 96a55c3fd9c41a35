#include "daemon/peer_identity.hpp"

#include <sys/socket.h>

namespace kosli::daemon {

std::optional<Peer> peer_of(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return std::nullopt;
  }
  return Peer{cred.pid, cred.uid, cred.gid};
}

}  // namespace kosli::daemon
