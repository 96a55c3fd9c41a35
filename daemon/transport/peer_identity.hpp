#pragma once

#include <optional>
#include <string_view>

#include "daemon/api/messages.hpp"

namespace kosli::daemon {

// Finds this installation's kosli-cred: bin/kosli-cred beside kosli-credd, and
// the full command line in libexec (client/CMakeLists.txt), by real path. Call
// once at start, before the program files can change; later calls keep what
// the first found.
void locate_installed_client();

// Whether `exe` (a real path, as /proc/<pid>/exe shows it) is one of them.
bool is_installed_client(std::string_view exe);

// The connected peer's pid, uid and gid from SO_PEERCRED (set by the kernel at
// connect time; the peer cannot forge them), and the programs behind it: its
// executable, and the requesting program — the peer itself, or, when the peer
// is this installation's kosli-cred, the program that ran it. A program whose
// pid may have been reused since the connection was made is left unknown
// (empty). Read once per connection: what the audit log records for profiles
// no guard decides on.
std::optional<Peer> peer_of(int fd);

// The peer of `at_connect.socket` as it is now, for a request a guard decides
// on: a peer or a parent that has exec'd another program since it connected is
// that program now. The process is pinned by SO_PEERPIDFD where the kernel has
// it (by its start time otherwise). With `exec_program` (the header
// `kosli-cred exec` sends), and a peer that is this installation's kosli-cred,
// the requester is that program.
Peer peer_now(const Peer& at_connect, std::string_view exec_program);

// Takes `program`, the header `kosli-cred exec` sends, as the requester when
// the peer is this installation's kosli-cred (from anyone else it is ignored);
// whether it did.
bool take_exec_program(Peer& peer, std::string_view program);

}  // namespace kosli::daemon
