// Where the daemon's socket lives, and the rules its directory must satisfy.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kosli {

inline constexpr std::string_view kSocketEnv = "KOSLI_CRED_SOCKET";

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

}  // namespace kosli
