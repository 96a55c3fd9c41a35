// The commands a script runs before every Kosli call (token, header, exec), in
// the plain forms scripts use, recognised without CLI11.
//
// kosli-cred is two programs. bin/kosli-cred serves these forms itself and execs
// the full command line (libexec/kosli-cred/kosli-cred, CLI11) for everything
// else: other commands, --help, --version, and any form below that is not plain,
// including every mistake, so CLI11 alone says what is wrong. CLI11 costs a third
// of a `kosli-cred token` (its header brings <iostream>'s static initialiser and
// the locale, then the parse: docs/PERFORMANCE.md); this keeps it out of the
// commands that run most.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kosli::client {

enum class FastCommand { token, header, exec };

struct FastArgs {
  FastCommand command = FastCommand::token;
  std::optional<std::string> socket;
  std::optional<uid_t> daemon_uid;        // --daemon-uid, else $KOSLI_CRED_DAEMON_UID
  std::string profile;
  bool json = false;                      // token --json
  std::vector<std::string> exec_command;  // exec's CMD ARG…, after --
};

// `args` (argv after the program name) when they read, exactly as the full
// command line would read them (the grammar both read: client/options.hpp):
//   [--socket S] token  [--profile P | -p P | --profile=P] [--json]    [--socket S]
//   [--socket S] header [--profile P | -p P | --profile=P]             [--socket S]
//   [--socket S] exec   [--profile P | -p P | --profile=P] [--socket S] -- CMD [ARG…]
// in any order after the command, each at most once, no value empty or starting
// with '-', and the profile (else $KOSLI_PROFILE, `env_profile`, else "default")
// a valid name. --daemon-uid U (or --daemon-uid=U) may stand wherever --socket
// may; it, else $KOSLI_CRED_DAEMON_UID (`env_daemon_uid`), must be a uid.
// nullopt for anything else.
std::optional<FastArgs> recognise_fast(std::span<char* const> args, const char* env_profile,
                                       const char* env_daemon_uid = nullptr);

}  // namespace kosli::client
