#include "proto/socket_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kosli {

std::string default_socket_path() {
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime == '/') {
    return std::string(runtime) + "/kosli-cred/sock";
  }
  return "/tmp/kosli-cred-" + std::to_string(::geteuid()) + "/sock";
}

std::string resolve_socket_path(const std::optional<std::string>& flag) {
  if (flag && !flag->empty()) return *flag;
  if (const char* env = std::getenv(std::string(kSocketEnv).c_str()); env != nullptr && *env != '\0') {
    return env;
  }
  return default_socket_path();
}

std::string socket_directory(std::string_view socket_path) {
  const auto slash = socket_path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(socket_path.substr(0, slash));
}

namespace {

// Modes a new socket directory gets.
constexpr mode_t kPrivateDirMode = 0700;
constexpr mode_t kTraversableDirMode = 0711;

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Creates `dir` with exactly `mode` (in the mkdir call itself), or checks an
// existing one: a real directory, owned by this user, with no bit of `refused`.
std::optional<std::string> ensure_socket_directory(const std::string& dir, mode_t mode, mode_t refused) {
  const mode_t old_umask = ::umask(0);
  const int made = ::mkdir(dir.c_str(), mode);
  const int mkdir_errno = errno;
  ::umask(old_umask);
  if (made != 0 && mkdir_errno != EEXIST) {
    return "cannot create the socket directory " + dir + ": " + std::strerror(mkdir_errno) +
           " (create its parent, or choose another path with --socket)";
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return "cannot inspect the socket directory " + dir + ": " + std::strerror(errno);
  }
  if (S_ISLNK(st.st_mode)) {
    return "the socket directory " + dir +
           " is a symbolic link; remove it (rm " + dir + ") and start again";
  }
  if (!S_ISDIR(st.st_mode)) {
    return "the socket directory " + dir + " is not a directory; remove it and start again";
  }
  if (st.st_uid != ::geteuid()) {
    return "the socket directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
           ", not to you (uid " + std::to_string(::geteuid()) +
           "); remove it or choose another path with --socket";
  }
  if ((st.st_mode & refused) != 0) {
    return "the socket directory " + dir + " has mode " + octal_mode(st.st_mode) +
           ", open to other users; fix it with: chmod " + octal_mode(mode).substr(1) + " " + dir;
  }
  return std::nullopt;
}

std::string uid_text(uid_t uid) { return "uid " + std::to_string(uid); }

// "not to you (uid 1000)", or, with a daemon uid named, "neither to you (uid
// 1000) nor to the daemon's uid you named (uid 1001)" ("as" for who runs it).
std::string whom_expected(uid_t me, std::optional<uid_t> daemon_uid, std::string_view to = "to") {
  const std::string prep(to);
  if (!daemon_uid || *daemon_uid == me) return "not " + prep + " you (" + uid_text(me) + ")";
  return "neither " + prep + " you (" + uid_text(me) + ") nor " + prep + " the daemon's uid you named (" +
         uid_text(*daemon_uid) + ")";
}

std::string trust_advice(uid_t found) {
  return "; if that user runs your sidecar, set " + std::string(kDaemonUidEnv) + "=" + std::to_string(found) +
         " (or --daemon-uid " + std::to_string(found) + ")";
}

bool trusted_owner(uid_t owner, uid_t me, std::optional<uid_t> daemon_uid) {
  return owner == me || (daemon_uid && owner == *daemon_uid);
}

}  // namespace

std::optional<uid_t> parse_uid(std::string_view text) {
  constexpr std::size_t kMaxDigits = 10;  // 4294967295
  if (text.empty() || text.size() > kMaxDigits) return std::nullopt;
  unsigned long long value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  // (uid_t)-1 means "no uid" to the kernel.
  if (value >= static_cast<unsigned long long>(static_cast<uid_t>(-1))) return std::nullopt;
  return static_cast<uid_t>(value);
}

std::optional<std::string> socket_trust_problem(const std::string& socket_path, std::optional<uid_t> daemon_uid) {
  const uid_t me = ::geteuid();
  const std::string dir = socket_directory(socket_path);
  // The sentences are put together only when one is needed: this runs before every token.
  const auto refusing = [&] { return "refusing to talk to " + socket_path + ": "; };
  // Nothing there yet is for connect(2) to report (and autostart to fix); a
  // path this user may not even look at is someone else's.
  const auto cannot_check = [&](const std::string& what) -> std::optional<std::string> {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    return refusing() + "cannot check who owns " + what + ": " + std::strerror(errno) +
           " (it lies in a directory you may not look into)";
  };
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return cannot_check(dir);
  if (S_ISLNK(st.st_mode)) {
    return refusing() + "its directory " + dir + " is a symbolic link; point --socket at the real path, or remove it";
  }
  if (!S_ISDIR(st.st_mode)) return refusing() + dir + " is not a directory";
  if (!trusted_owner(st.st_uid, me, daemon_uid)) {
    return refusing() + "its directory " + dir + " belongs to " + uid_text(st.st_uid) + ", " +
           whom_expected(me, daemon_uid) + "; remove it (as root if need be)" + trust_advice(st.st_uid);
  }
  if ((st.st_mode & 022) != 0) {
    return refusing() + "its directory " + dir + " has mode " + octal_mode(st.st_mode) +
           ": others can put a socket of their own there; remove it, or fix it with: chmod go-w " + dir;
  }
  if (::lstat(socket_path.c_str(), &st) != 0) return cannot_check(socket_path);
  if (S_ISLNK(st.st_mode)) {
    return refusing() + "it is a symbolic link; point --socket at the real path, or remove it";
  }
  if (!trusted_owner(st.st_uid, me, daemon_uid)) {
    return refusing() + "it belongs to " + uid_text(st.st_uid) + ", " + whom_expected(me, daemon_uid) +
           "; remove it (as root if need be)" + trust_advice(st.st_uid);
  }
  if ((st.st_mode & 022) != 0 && st.st_uid != daemon_uid.value_or(me)) {
    return refusing() + "it has mode " + octal_mode(st.st_mode) + " and belongs to " + uid_text(st.st_uid) +
           ", not to the daemon's uid you named (" + uid_text(daemon_uid.value_or(me)) + ")";
  }
  return std::nullopt;
}

std::optional<std::string> daemon_peer_problem(const std::string& socket_path, uid_t peer_uid,
                                               std::optional<uid_t> daemon_uid) {
  const uid_t me = ::geteuid();
  if (trusted_owner(peer_uid, me, daemon_uid)) return std::nullopt;
  return "refusing to talk to " + socket_path + ": the daemon answering there runs as " + uid_text(peer_uid) + ", " +
         whom_expected(me, daemon_uid, "as") + "; stop it (it may be collecting keys)" + trust_advice(peer_uid);
}

std::optional<std::string> ensure_private_directory(const std::string& dir) {
  return ensure_socket_directory(dir, kPrivateDirMode, 077);
}

std::optional<std::string> ensure_traversable_directory(const std::string& dir) {
  return ensure_socket_directory(dir, kTraversableDirMode, 022);
}

}  // namespace kosli
