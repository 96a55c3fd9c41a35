#include "client/token_io.hpp"

#include <unistd.h>

#include <cerrno>

#include "client/cli_error.hpp"
#include "proto/errors.hpp"

namespace kosli::client {

void write_stdout(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError(exit_code::error, "cannot write to standard output");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace kosli::client
