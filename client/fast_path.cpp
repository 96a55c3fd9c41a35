#include "client/fast_path.hpp"

#include <string_view>

#include "proto/profile.hpp"
#include "proto/socket_path.hpp"

namespace kosli::client {
namespace {

enum class Read { not_this, value, unclear };

// Whether args[i] is option `name`, and its value: "--name V", "--name=V" (long
// names only). `unclear` for a missing, empty or option-like value, which the
// full command line reports.
Read option_value(std::span<char* const> args, std::size_t& i, std::string_view name, std::optional<std::string>& out) {
  const std::string_view arg = args[i];
  std::string_view value;
  if (arg == name) {
    if (i + 1 == args.size()) return Read::unclear;
    value = args[++i];
  } else if (name.starts_with("--") && arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
    value = arg.substr(name.size() + 1);
  } else {
    return Read::not_this;
  }
  if (value.empty() || value.front() == '-' || out) return Read::unclear;  // given twice: unclear too
  out = std::string(value);
  return Read::value;
}

std::optional<FastCommand> command_named(std::string_view arg) {
  if (arg == "token") return FastCommand::token;
  if (arg == "header") return FastCommand::header;
  if (arg == "exec") return FastCommand::exec;
  return std::nullopt;
}

}  // namespace

std::optional<FastArgs> recognise_fast(std::span<char* const> args, const char* env_profile,
                                       const char* env_daemon_uid) {
  FastArgs fast;
  std::optional<FastCommand> command;
  std::optional<std::string> profile, daemon_uid;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    Read read = option_value(args, i, "--socket", fast.socket);
    if (read == Read::not_this) read = option_value(args, i, "--daemon-uid", daemon_uid);
    if (read == Read::not_this && command) {
      read = option_value(args, i, "--profile", profile);
      if (read == Read::not_this) read = option_value(args, i, "-p", profile);
    }
    if (read == Read::unclear) return std::nullopt;
    if (read == Read::value) continue;

    if (!command) {
      command = command_named(arg);
      if (!command) return std::nullopt;
    } else if (arg == "--json" && *command == FastCommand::token && !fast.json) {
      fast.json = true;
    } else if (arg == "--" && *command == FastCommand::exec && i + 1 < args.size()) {
      fast.exec_command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    } else {
      return std::nullopt;
    }
  }
  if (!command || (*command == FastCommand::exec && fast.exec_command.empty())) return std::nullopt;
  fast.command = *command;

  // CLI11 reads $KOSLI_PROFILE only when it is set and not empty.
  if (profile) {
    fast.profile = std::move(*profile);
  } else if (env_profile != nullptr && *env_profile != '\0') {
    fast.profile = env_profile;
  } else {
    fast.profile = std::string(kDefaultProfile);
  }
  if (profile_name_problem(fast.profile)) return std::nullopt;

  // The same for the daemon's uid; a bad one is the full command line's to report.
  if (!daemon_uid && env_daemon_uid != nullptr && *env_daemon_uid != '\0') daemon_uid = env_daemon_uid;
  if (daemon_uid) {
    fast.daemon_uid = parse_uid(*daemon_uid);
    if (!fast.daemon_uid) return std::nullopt;
  }
  return fast;
}

}  // namespace kosli::client
