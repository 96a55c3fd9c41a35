#pragma once

#include <string>

#include "proto/secret.hpp"

namespace kosli::client {

// Reads an API key the safe ways only: from stdin when it is not a terminal
// (one trailing newline stripped), or from a no-echo prompt on the terminal.
// Refuses an empty or malformed key with CliError (exit 2).
Secret read_api_key(const std::string& prompt);

}  // namespace kosli::client
