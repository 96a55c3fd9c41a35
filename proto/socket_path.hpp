// Where the daemon's socket lives, and the rules its directory must satisfy.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace kosli {

inline constexpr std::string_view kSocketEnv = "KOSLI_CRED_SOCKET";
// The uid a sidecar daemon runs as, when it is not the client's own (--daemon-uid).
inline constexpr std::string_view kDaemonUidEnv = "KOSLI_CRED_DAEMON_UID";

// $XDG_RUNTIME_DIR/kosli-cred/sock, or /tmp/kosli-cred-<uid>/sock without it.
std::string default_socket_path();

// --socket, else $KOSLI_CRED_SOCKET, else the default.
std::string resolve_socket_path(const std::optional<std::string>& flag);

// The directory part of a socket path ("." when there is none).
std::string socket_directory(std::string_view socket_path);

// Makes sure `dir` is a private directory of this user: creates it with mode 0700
// in the mkdir call itself, or checks an existing one is a real directory (not a
// symlink), owned by this user, with no group or other permission bits. Returns a
// sentence saying what is wrong and how to fix it, or nullopt when all is well.
std::optional<std::string> ensure_private_directory(const std::string& dir);

// The same for a daemon that also serves other uids (--allow-uid): a new
// directory is created 0711, and an existing one may let others traverse and
// read it, but never write to it. The SO_PEERCRED check stays the real gate.
std::optional<std::string> ensure_traversable_directory(const std::string& dir);

// A uid as --daemon-uid and KOSLI_CRED_DAEMON_UID take it: decimal digits only.
std::optional<uid_t> parse_uid(std::string_view text);

// What a client checks before it connects to the daemon at `socket_path`: the
// socket's directory and the socket itself are not symbolic links and belong to
// this user, or to `daemon_uid` when the user named one (a sidecar running as
// another uid); the directory is writable by its owner only; the socket may be
// writable by others (a sidecar serving other uids makes it 0666) only when it
// belongs to the daemon's uid (`daemon_uid`, else this user). Two lstat calls.
// Returns a sentence saying whom it found and what to do (also when it may not
// even look: another user's private directory), or nullopt when the client may
// connect (also when nothing is there yet: connecting says so).
std::optional<std::string> socket_trust_problem(const std::string& socket_path, std::optional<uid_t> daemon_uid);

// The same rule for the uid the connected daemon runs as (SO_PEERCRED): this
// user's, or `daemon_uid`. A sentence when it is neither.
std::optional<std::string> daemon_peer_problem(const std::string& socket_path, uid_t peer_uid,
                                               std::optional<uid_t> daemon_uid);

}  // namespace kosli
