#include "client/exec_program.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string_view>

namespace kosli::client {
namespace {

// execvp's search path when PATH is not set (glibc's confstr(_CS_PATH)).
constexpr std::string_view kDefaultSearchPath = "/bin:/usr/bin";

bool runnable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode)) {
    errno = EACCES;
    return false;
  }
  return ::access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> real_path_of(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return std::nullopt;
  return std::string(real);
}

}  // namespace

std::optional<std::string> find_program(const std::string& command) {
  if (command.empty()) {
    errno = ENOENT;
    return std::nullopt;
  }
  if (command.find('/') != std::string::npos) {
    if (!runnable(command)) return std::nullopt;
    return real_path_of(command);
  }
  const char* env = std::getenv("PATH");
  std::string_view search = env != nullptr ? std::string_view(env) : kDefaultSearchPath;
  int problem = ENOENT;  // as execvp: EACCES when a match was found but could not be run
  while (true) {
    const auto colon = search.find(':');
    const std::string_view dir = search.substr(0, colon);
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + command;
    if (runnable(candidate)) return real_path_of(candidate);
    if (errno == EACCES) problem = EACCES;
    if (colon == std::string_view::npos) break;
    search.remove_prefix(colon + 1);
  }
  errno = problem;
  return std::nullopt;
}

}  // namespace kosli::client
