// Where the running executable lies: each of kosli-cred's programs finds the
// other, and kosli-credd, relative to it (client/process.hpp).
#pragma once

#include <optional>
#include <string>

namespace kosli::client {

// The directory of the running executable (/proc/self/exe), ending in '/';
// nullopt, with errno set, when it cannot be read.
std::optional<std::string> this_program_directory();

}  // namespace kosli::client
