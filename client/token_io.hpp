// Writing a token out without a stdio buffer keeping a copy (client/api.hpp's
// token() asks the daemon for it).
#pragma once

#include <string_view>

namespace kosli::client {

// Writes all of `data` to stdout with write(2); throws CliError (exit 1) when it cannot.
void write_stdout(std::string_view data);

}  // namespace kosli::client
