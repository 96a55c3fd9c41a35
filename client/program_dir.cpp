#include "client/program_dir.hpp"

#include <unistd.h>

#include <climits>
#include <string_view>

namespace kosli::client {

std::optional<std::string> this_program_directory() {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return std::nullopt;
  const std::string_view path(self, static_cast<std::size_t>(n));
  return std::string(path.substr(0, path.rfind('/') + 1));
}

}  // namespace kosli::client
