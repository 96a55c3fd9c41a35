#include "client/token_io.hpp"

#include <unistd.h>

#include <cerrno>

#include "client/cli_error.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/routes.hpp"

namespace kosli::client {

TokenResponse fetch_token(DaemonClient& daemon, const std::string& profile, std::string* raw) {
  auto result = daemon.request("GET", route_target(Route::token, profile));
  if (raw != nullptr) raw->assign(result.body);
  auto parsed = parse_token(result.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) throw CliError(exit_code::error, e->message);
  auto& token = std::get<TokenResponse>(parsed);
  // Whatever the daemon answers, what is not a key is never handed on as one
  // (an empty KOSLI_API_TOKEN, an empty git password, with exit code 0).
  if (api_key_problem(token.token.reveal())) {
    if (raw != nullptr) wipe(*raw);
    throw CliError(exit_code::error,
                   "kosli-credd answered profile '" + display_safe(profile) + "' with " +
                       (token.token.empty() ? "an empty token" : "a token that is not a Kosli API key") +
                       "; nothing was handed on. See what the keyring holds: kosli-cred show --profile " +
                       display_safe(profile) + ", and store the key again if need be");
  }
  return std::move(token);
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
