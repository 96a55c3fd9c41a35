#include "client/fast_path.hpp"

#include <array>
#include <iterator>
#include <string_view>

#include "client/options.hpp"
#include "proto/profile.hpp"
#include "proto/socket_path.hpp"

namespace kosli::client {
namespace {

enum class Read { not_this, value, unclear };

// Whether args[i] is `option`, and its value: "--name V", "--name=V" (long
// names only), "-n V". `unclear` for a missing, empty or option-like value,
// which the full command line reports.
Read option_value(std::span<char* const> args, std::size_t& i, const options::Option& option,
                  std::optional<std::string>& out) {
  const std::string_view arg = args[i], name = option.name;
  std::string_view value;
  if (arg == name || (!option.short_name.empty() && arg == option.short_name)) {
    if (i + 1 == args.size()) return Read::unclear;
    value = args[++i];
  } else if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
    value = arg.substr(name.size() + 1);
  } else {
    return Read::not_this;
  }
  if (value.empty() || value.front() == '-' || out) return Read::unclear;  // given twice: unclear too
  out = std::string(value);
  return Read::value;
}

// The plain form `arg` names, and its FastCommand.
const options::PlainForm* plain_form(std::string_view arg, FastCommand& command) {
  constexpr FastCommand kCommandOf[] = {FastCommand::token, FastCommand::header, FastCommand::exec};
  static_assert(std::size(kCommandOf) == std::size(options::kPlainForms));
  for (std::size_t i = 0; i < std::size(options::kPlainForms); ++i) {
    if (options::kPlainForms[i].command == arg) {
      command = kCommandOf[i];
      return &options::kPlainForms[i];
    }
  }
  return nullptr;
}

// The value given to an option, else its environment variable's when that is
// set and not empty (as CLI11 reads it).
void or_from_env(std::optional<std::string>& value, const char* env) {
  if (!value && env != nullptr && *env != '\0') value = env;
}

}  // namespace

std::optional<FastArgs> recognise_fast(std::span<char* const> args, const char* env_profile,
                                       const char* env_daemon_uid) {
  FastArgs fast;
  const options::PlainForm* form = nullptr;
  std::optional<std::string> profile;
  std::array<std::optional<std::string>, std::size(options::kGlobal)> global;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    Read read = Read::not_this;
    for (std::size_t g = 0; g < global.size() && read == Read::not_this; ++g) {
      read = option_value(args, i, options::kGlobal[g], global[g]);
    }
    if (read == Read::not_this && form) read = option_value(args, i, options::kProfile, profile);
    if (read == Read::unclear) return std::nullopt;
    if (read == Read::value) continue;

    if (!form) {
      form = plain_form(arg, fast.command);
      if (!form) return std::nullopt;
    } else if (arg == options::kJson.name && form->json && !fast.json) {
      fast.json = true;
    } else if (arg == options::kEndOfOptions && form->exec_command && i + 1 < args.size()) {
      fast.exec_command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    } else {
      return std::nullopt;
    }
  }
  if (!form || (form->exec_command && fast.exec_command.empty())) return std::nullopt;

  or_from_env(profile, env_profile);
  fast.profile = profile ? std::move(*profile) : std::string(kDefaultProfile);
  if (profile_name_problem(fast.profile)) return std::nullopt;

  // A bad uid is the full command line's to report.
  fast.socket = std::move(global[0]);
  auto& daemon_uid = global[1];
  static_assert(options::kGlobal[0].name == options::kSocket.name);
  static_assert(options::kGlobal[1].name == options::kDaemonUid.name);
  or_from_env(daemon_uid, env_daemon_uid);
  if (daemon_uid) {
    fast.daemon_uid = parse_uid(*daemon_uid);
    if (!fast.daemon_uid) return std::nullopt;
  }
  return fast;
}

}  // namespace kosli::client
