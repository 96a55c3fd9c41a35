#pragma once

#include <optional>

#include "daemon/router.hpp"

namespace kosli::daemon {

// The connected peer's pid, uid and gid from SO_PEERCRED (set by the kernel at
// connect time; the peer cannot forge them), and the programs behind it: its
// executable, and the requesting program — the peer itself, or, when the peer
// is kosli-cred, the program that ran it. A program whose pid may have been
// reused since the connection was made is left unknown (empty).
std::optional<Peer> peer_of(int fd);

// The daemon itself, as the audit log names what it does on its own (imports,
// scheduled rotations).
Peer this_process();

}  // namespace kosli::daemon
