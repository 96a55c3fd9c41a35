// kosli-cred (bin/kosli-cred): asks kosli-credd for Kosli API tokens, and
// manages its profiles.
//
// The plain forms of token, header and exec, which scripts run before every
// Kosli call, and git's `get`, are served here without CLI11; everything else
// is handed, argv unchanged, to the full command line in libexec
// (client/fast_path.hpp).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "client/cli_error.hpp"
#include "client/commands.hpp"
#include "client/fast_path.hpp"
#include "client/git_credential.hpp"
#include "client/options.hpp"
#include "client/process.hpp"
#include "client/program_dir.hpp"
#include "proto/errors.hpp"
#include "proto/socket_path.hpp"

namespace {

using namespace kosli;
using namespace kosli::client;

// Replaces this process with the full command line; returns only when it cannot.
int run_full_command_line(char** argv) {
  const auto dir = this_program_directory();
  if (!dir) {
    std::fprintf(stderr, "kosli-cred: cannot find its own executable (/proc/self/exe): %s\n", std::strerror(errno));
    return exit_code::error;
  }
  const std::string path = full_command_line_path(*dir);
  ::execv(path.c_str(), argv);  // argv[0] too: it may say git-credential-kosli
  std::fprintf(stderr, "kosli-cred: cannot run its full command line %s: %s\n", path.c_str(), std::strerror(errno));
  return exit_code::error;
}

// As git's helper, `git-credential-kosli get` and `capability` in their plain
// form (no options), which git runs for every credential it needs, served here
// too; store, erase and every other form go to the full command line.
int serve_git_helper(int argc, char** argv) {
  const std::string_view operation = argc == 2 ? argv[1] : "";
  if (operation != "get" && operation != "capability") return run_full_command_line(argv);
  std::optional<uid_t> daemon_uid;
  if (const char* env = std::getenv(options::kDaemonUid.env.data()); env != nullptr && *env != '\0') {
    daemon_uid = parse_uid(env);
    if (!daemon_uid) return run_full_command_line(argv);  // the full command line says what is wrong
  }
  start_process(Program::fast);
  DaemonClient daemon(resolve_socket_path(std::nullopt), DaemonClient::Connections::kept, daemon_uid);
  return run_reporting_errors([&] { return run_git_get(daemon, operation); });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 1 && invoked_as_git_helper(argv[0])) return serve_git_helper(argc, argv);
  if (argc < 1) return run_full_command_line(argv);
  auto fast = recognise_fast(std::span<char* const>(argv + 1, static_cast<std::size_t>(argc - 1)),
                             std::getenv(options::kProfile.env.data()), std::getenv(options::kDaemonUid.env.data()));
  if (!fast) return run_full_command_line(argv);

  // Only now: the full command line starts with the core-file limit and the
  // signal dispositions this process was given.
  start_process(Program::fast);
  // Each of these commands makes one request.
  DaemonClient daemon(resolve_socket_path(fast->socket), DaemonClient::Connections::one_per_request,
                      fast->daemon_uid);
  return run_reporting_errors([&] {
    switch (fast->command) {
      case FastCommand::token:
        return cmd_token(daemon, fast->profile, fast->json);
      case FastCommand::header:
        return cmd_header(daemon, fast->profile);
      case FastCommand::exec:
        return cmd_exec(daemon, fast->profile, std::move(fast->exec_command));
    }
    return exit_code::usage;
  });
}
