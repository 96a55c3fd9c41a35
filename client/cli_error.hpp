#pragma once

#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "proto/errors.hpp"

namespace kosli::client {

// The client's one error style: thrown at the point of failure, caught in main,
// printed as one sentence on stderr, turned into the exit code.
struct CliError : std::runtime_error {
  CliError(int code, const std::string& message) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

// Runs a command and returns its exit code, or prints what it threw and returns
// that error's code.
template <typename Command>
int run_reporting_errors(Command&& command) {
  try {
    return command();
  } catch (const CliError& e) {
    std::fprintf(stderr, "kosli-cred: %s\n", e.what());
    return e.exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kosli-cred: %s\n", e.what());
    return exit_code::error;
  }
}

}  // namespace kosli::client
