#include "client/token_io.hpp"

#include <unistd.h>

#include <cerrno>

#include "client/cli_error.hpp"
#include "proto/errors.hpp"
#include "proto/routes.hpp"

namespace kosli::client {

TokenResponse fetch_token(DaemonClient& daemon, const std::string& profile, std::string* raw) {
  auto result = daemon.request("GET", route_target(Route::token, profile));
  if (raw != nullptr) raw->assign(result.body);
  auto parsed = parse_token(result.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) throw CliError(exit_code::error, e->message);
  return std::move(std::get<TokenResponse>(parsed));
}

void write_stdout(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError(exit_code::error, "cannot write to standard output");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace kosli::client
