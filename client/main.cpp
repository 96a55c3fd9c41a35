// kosli-cred's full command line (libexec/kosli-cred/kosli-cred): every command,
// parsed by CLI11. bin/kosli-cred serves the plain forms of token, header and
// exec itself and execs this for everything else (client/fast_path.hpp).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/cli_error.hpp"
#include "client/cli_failure.hpp"
#include "client/commands.hpp"
#include "client/doctor.hpp"
#include "client/git_credential.hpp"
#include "client/git_setup.hpp"
#include "client/options.hpp"
#include "client/process.hpp"
#include "proto/cli_grammar.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"
#include "proto/socket_path.hpp"

namespace {

using namespace kosli;
using namespace kosli::client;

// --profile > KOSLI_PROFILE > "default", validated before anything is sent.
void add_profile_option(CLI::App* cmd, std::string& profile) {
  profile = std::string(kDefaultProfile);
  cmd->add_option(options::cli11_names(options::kProfile), profile,
                  "Profile name (default: $KOSLI_PROFILE, else 'default')")
      ->envname(std::string(options::kProfile.env))
      ->check([](const std::string& name) { return profile_name_problem(name).value_or(""); });
}

void add_json_flag(CLI::App* cmd, bool& json, const std::string& description) {
  cmd->add_flag(options::cli11_names(options::kJson), json, description);
}

// Whether `arg` is a global option, and takes its value from the next argument.
bool global_option(std::string_view arg, bool& value_follows) {
  for (const auto& option : options::kGlobal) {
    if (arg == option.name) {
      value_follows = option.takes_value;
      return true;
    }
    if (arg.size() > option.name.size() && arg.starts_with(option.name) && arg[option.name.size()] == '=') {
      value_follows = false;
      return true;
    }
  }
  return false;
}

// The command `args` run, or "" when they name none (--help, --version, a typo).
// Only that command's options are set up: CLI11 builds every option of every
// command it is given, which would be most of what a short command costs.
std::string_view command_named(const std::vector<char*>& args) {
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (bool value_follows = false; global_option(arg, value_follows)) {
      if (value_follows) ++i;
      continue;
    }
    if (arg.starts_with("-")) return {};
    for (const auto command : options::kCommands) {
      if (arg == command) return command;
    }
    return {};
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  start_process(Program::full);

  // As git's helper, argv is `git-credential-kosli [--socket P] get`: the same
  // as `kosli-cred git-credential …`.
  std::vector<char*> args(argv, argv + argc);
  std::string git_command = "git-credential";
  if (invoked_as_git_helper(argv[0])) args.insert(args.begin() + 1, git_command.data());
  const std::string_view only = command_named(args);
  argc = static_cast<int>(args.size());
  argv = args.data();
  // A subcommand for `name`, or nullptr when another command runs.
  auto subcommand = [&](CLI::App& parent, std::string_view name, const std::string& description) -> CLI::App* {
    return only.empty() || only == name ? parent.add_subcommand(std::string(name), description) : nullptr;
  };

  CLI::App app{"kosli-cred: get Kosli API tokens from kosli-credd, which keeps the keys in your "
               "OS keyring.\nA key is never accepted as an argument: store reads it from stdin "
               "or a hidden prompt.",
               std::string(limits::kClientProgram)};
  app.set_version_flag("--version", std::string(KOSLI_VERSION));
  // Before any subcommand is added: each takes its parent's.
  app.failure_message(failure_message_without_values(args));
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command

  std::optional<std::string> socket;
  app.add_option(options::cli11_names(options::kSocket), socket, "kosli-credd's socket (default: $KOSLI_CRED_SOCKET, else "
                                     "$XDG_RUNTIME_DIR/kosli-cred/sock)");
  std::string daemon_uid;
  app.add_option(options::cli11_names(options::kDaemonUid), daemon_uid,
                 "Also trust a sidecar kosli-credd that runs as this uid (its socket, and who answers there)")
      ->type_name("UID")
      ->envname(std::string(options::kDaemonUid.env))
      ->check([](const std::string& uid) {
        return parse_uid(uid) ? std::string() : std::string("a uid is a number, such as 1001");
      });

  StoreArgs store;
  CLI::App* store_cmd = subcommand(app, "store", "Store or replace a key (read from stdin, or a hidden prompt)");
  if (store_cmd) {
    add_profile_option(store_cmd, store.profile);
    store_cmd->add_option("--org", store.org, "Kosli organisation")->required();
    auto* region = store_cmd->add_option("--region", store.region, "eu (app.kosli.com, default) or us (app.us.kosli.com)")
                       ->check(one_of({"eu", "us"}));
    store_cmd->add_option("--host", store.host, "Custom Kosli base URL (https://…)")->excludes(region);
    store_cmd->add_option("--kind", store.kind, "Key kind")
        ->check(one_of({"service-account", "personal"}))
        ->capture_default_str();
    store_cmd->add_option("--expires-at", store.expires_at, "When the key expires (RFC 3339)");
    store_cmd->add_option("--description", store.description, "A note kept beside the key");
    auto* sa = store_cmd->add_option("--service-account", store.service_account, "Service account name (for rotation)");
    store_cmd->add_option("--key-id", store.key_id, "The key's id in Kosli (for rotation)")->needs(sa);
  }

  std::string profile;
  bool json = false;
  CLI::App* token_cmd = subcommand(app, "token", "Print the token on stdout");
  if (token_cmd) {
    add_profile_option(token_cmd, profile);
    add_json_flag(token_cmd, json, "Print the daemon's JSON answer");
  }

  CLI::App* header_cmd = subcommand(app, "header", "Print 'Authorization: Bearer <token>' (for curl -H @-)");
  if (header_cmd) add_profile_option(header_cmd, profile);

  std::vector<std::string> command;
  std::vector<std::string> exec_profiles;
  CLI::App* exec_cmd = subcommand(
      app, "exec",
      "Run a command with KOSLI_API_TOKEN, KOSLI_ORG, KOSLI_HOST, KOSLI_API_URL, KOSLI_BASE_URL set:\n"
      "  kosli-cred exec [--profile P] -- CMD [ARG...]\n"
      "Several profiles of one org (--profile eu --profile us) set the Kosli CLI's multi-host mode:\n"
      "  KOSLI_HOST=H1,H2 and KOSLI_API_TOKEN=K1,K2, in the order given");
  if (exec_cmd) {
    exec_cmd
        ->add_option(options::cli11_names(options::kProfile), exec_profiles,
                     "Profile name, repeatable (default: $KOSLI_PROFILE, else 'default')")
        ->envname(std::string(options::kProfile.env))
        ->allow_extra_args(false)
        ->check([](const std::string& name) { return profile_name_problem(name).value_or(""); });
    exec_cmd->add_option("command", command, "The command and its arguments, after --")->required();
  }

  CLI::App* list_cmd = subcommand(app, "list", "List profiles (never keys)");
  if (list_cmd) add_json_flag(list_cmd, json, "Print JSON");

  CLI::App* show_cmd = subcommand(app, "show", "Show one profile (never its key)");
  if (show_cmd) {
    add_profile_option(show_cmd, profile);
    add_json_flag(show_cmd, json, "Print JSON");
  }

  CLI::App* erase_cmd = subcommand(app, "erase", "Erase a profile's key and metadata");
  if (erase_cmd) add_profile_option(erase_cmd, profile);

  CLI::App* verify_cmd = subcommand(app, "verify", "Ask Kosli whether the profile's key works (exit 7: rejected)");
  if (verify_cmd) {
    add_profile_option(verify_cmd, profile);
    add_json_flag(verify_cmd, json, "Print the daemon's JSON answer");
  }

  RotateArgs rotate;
  CLI::App* rotate_cmd = subcommand(
      app, "rotate",
      "Replace the profile's key: a new key from stdin (checked with Kosli first), or --via-api:\n"
      "  kosli-cred rotate [--profile P] [--no-verify] [--key-id ID] [--expires-at T] < new-key\n"
      "  kosli-cred rotate [--profile P] --via-api [--grace-hours H] [--expires-at T]");
  if (rotate_cmd) {
    add_profile_option(rotate_cmd, rotate.profile);
    auto* via_api = rotate_cmd->add_flag(
        "--via-api", rotate.via_api, "Ask Kosli to rotate the service-account key (the old one works for the grace period)");
    rotate_cmd
        ->add_option("--grace-hours", rotate.grace_hours,
                     "How long the old key keeps working (" + std::to_string(limits::kMinGraceHours) + "-" +
                         std::to_string(limits::kMaxGraceHours) + ", default " +
                         std::to_string(limits::kDefaultGraceHours) + ")")
        ->needs(via_api);
    rotate_cmd->add_option("--expires-at", rotate.expires_at, "When the new key expires (RFC 3339)");
    rotate_cmd->add_flag("--no-verify", rotate.no_verify, "Store the new key without asking Kosli (offline)")
        ->excludes(via_api);
    rotate_cmd->add_option("--key-id", rotate.key_id, "The new key's id in Kosli (keeps --via-api working later)")
        ->excludes(via_api);
  }

  CLI::App* status_cmd = subcommand(app, "status", "Show the daemon's state");
  if (status_cmd) add_json_flag(status_cmd, json, "Print JSON");

  CLI::App* lock_cmd = subcommand(app, "lock", "Make the daemon forget every cached key");

  std::string git_operation;
  CLI::App* git_cmd =
      subcommand(app, "git-credential", "git's credential-helper protocol (also installed as git-credential-kosli)");
  if (git_cmd) git_cmd->add_option("operation", git_operation, "get, store, erase or capability (others are ignored)")->required();

  bool git_global = false;
  CLI::App* git_setup_cmd = subcommand(
      app, "git-setup", "Make git ask only kosli for Kosli hosts' credentials (no other helper keeps a key)");
  if (git_setup_cmd) {
    git_setup_cmd->add_flag(options::cli11_names(options::kGitGlobal), git_global,
                            "In your global git configuration (default: the current repository's)");
  }

  bool online = false;
  CLI::App* doctor_cmd =
      subcommand(app, "doctor", "Check every link of your setup and say what to type for each one broken (exit 1)");
  if (doctor_cmd) {
    add_json_flag(doctor_cmd, json, "Print a JSON array of {check, status, detail, fix}");
    doctor_cmd->add_flag(options::cli11_names(options::kOnline), online, "Also ask Kosli about each profile's key");
  }

  if (argc == 2 && std::string_view(argv[1]) == kDumpGrammarFlag) {  // every command was set up: none was named
    dump_grammar(app);
    return exit_code::ok;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : exit_code::usage;
  }

  DaemonClient daemon(resolve_socket_path(socket), DaemonClient::Connections::kept,
                      daemon_uid.empty() ? std::nullopt : parse_uid(daemon_uid));
  return run_reporting_errors([&] {
    auto ran = [](const CLI::App* cmd) { return cmd != nullptr && cmd->parsed(); };
    if (ran(store_cmd)) return cmd_store(daemon, store);
    if (ran(token_cmd)) return cmd_token(daemon, profile, json);
    if (ran(header_cmd)) return cmd_header(daemon, profile);
    if (ran(exec_cmd)) {
      if (exec_profiles.empty()) exec_profiles.emplace_back(kDefaultProfile);
      return cmd_exec(daemon, exec_profiles, command);
    }
    if (ran(list_cmd)) return cmd_list(daemon, json);
    if (ran(show_cmd)) return cmd_show(daemon, profile, json);
    if (ran(erase_cmd)) return cmd_erase(daemon, profile);
    if (ran(verify_cmd)) return cmd_verify(daemon, profile, json);
    if (ran(rotate_cmd)) return cmd_rotate(daemon, rotate);
    if (ran(status_cmd)) {
      daemon.never_start_daemon();  // it reports; "not running" is its answer
      return cmd_status(daemon, json);
    }
    if (ran(lock_cmd)) return cmd_lock(daemon);
    if (ran(git_cmd)) return run_git_credential(daemon, git_operation);
    if (ran(git_setup_cmd)) return cmd_git_setup(daemon, git_global);
    if (ran(doctor_cmd)) {
      daemon.never_start_daemon();  // it reports; a stopped daemon is a finding
      return cmd_doctor(daemon, daemon_uid.empty() ? std::nullopt : parse_uid(daemon_uid), json, online);
    }
    return exit_code::usage;
  });
}
