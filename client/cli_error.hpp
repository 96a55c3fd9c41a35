#pragma once

#include <stdexcept>
#include <string>

namespace kosli::client {

// The client's one error style: thrown at the point of failure, caught in main,
// printed as one sentence on stderr, turned into the exit code.
struct CliError : std::runtime_error {
  CliError(int code, const std::string& message) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

}  // namespace kosli::client
