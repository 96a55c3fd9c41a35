// What every command that hands out a token shares: asking the daemon for it,
// and writing it out without a stdio buffer keeping a copy.
#pragma once

#include <string>
#include <string_view>

#include "client/daemon_client.hpp"
#include "proto/profile.hpp"

namespace kosli::client {

// The profile's token. Throws CliError: the daemon's own error, or exit 1 for an
// answer that is not a token. `raw`, when given, receives the answer as it came.
TokenResponse fetch_token(DaemonClient& daemon, const std::string& profile, std::string* raw = nullptr);

// Writes all of `data` to stdout with write(2); throws CliError (exit 1) when it cannot.
void write_stdout(std::string_view data);

}  // namespace kosli::client
