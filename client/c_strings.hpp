// argv and envp for execve(2) and posix_spawn(3) from strings that outlive them.
#pragma once

#include <string>
#include <vector>

namespace kosli::client {

// Pointers into `strings` (which must stay alive and unchanged), then nullptr.
inline std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace kosli::client
