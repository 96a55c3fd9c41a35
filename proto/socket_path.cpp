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

}  // namespace

std::optional<std::string> ensure_private_directory(const std::string& dir) {
  return ensure_socket_directory(dir, kPrivateDirMode, 077);
}

std::optional<std::string> ensure_traversable_directory(const std::string& dir) {
  return ensure_socket_directory(dir, kTraversableDirMode, 022);
}

}  // namespace kosli
