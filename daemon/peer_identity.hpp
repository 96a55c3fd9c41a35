#pragma once

#include <optional>

#include "daemon/router.hpp"

namespace kosli::daemon {

// The connected peer's pid, uid and gid from SO_PEERCRED (set by the kernel at
// connect time; the peer cannot forge it).
std::optional<Peer> peer_of(int fd);

}  // namespace kosli::daemon
