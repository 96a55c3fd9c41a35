// kosli-cred's option grammar, in one table both entry points read: the fast
// recogniser of bin/kosli-cred (client/fast_path.cpp) and the CLI11 command
// line (client/main.cpp). An option added, renamed or given another variable
// here changes both, so what the fast path serves cannot drift from what the
// full command line would do with the same words.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "proto/socket_path.hpp"

namespace kosli::client::options {

struct Option {
  std::string_view name;        // "--profile"
  std::string_view short_name;  // "-p", or empty
  bool takes_value = true;      // a flag (--json) takes none
  std::string_view env;         // read when the option is not given and the variable is set and not empty
};

// Before or after the command.
inline constexpr Option kSocket{"--socket", "", true, ""};
inline constexpr Option kDaemonUid{"--daemon-uid", "", true, kDaemonUidEnv};
inline constexpr std::array kGlobal{kSocket, kDaemonUid};

// After the command.
inline constexpr Option kProfile{"--profile", "-p", true, "KOSLI_PROFILE"};
inline constexpr Option kJson{"--json", "", false, ""};
// git-setup: the user's git configuration rather than the repository's.
inline constexpr Option kGitGlobal{"--global", "", false, ""};
// doctor: also ask Kosli about each profile's key.
inline constexpr Option kOnline{"--online", "", false, ""};
// exec's command follows it.
inline constexpr std::string_view kEndOfOptions = "--";

// The commands, in the order --help lists them.
inline constexpr std::string_view kCommands[] = {"store", "token",  "header", "exec",   "list", "show",
                                                 "erase", "verify", "rotate", "status", "lock", "git-credential",
                                                 "git-setup", "doctor"};

// The plain forms bin/kosli-cred serves itself: each takes kGlobal and kProfile,
// and these besides.
struct PlainForm {
  std::string_view command;
  bool json;          // kJson
  bool exec_command;  // kEndOfOptions, then the command to run
};
inline constexpr PlainForm kPlainForms[] = {
    {"token", true, false},
    {"header", false, false},
    {"exec", false, true},
};

// CLI11's name list for an option: "--profile,-p".
inline std::string cli11_names(const Option& option) {
  std::string names(option.name);
  if (!option.short_name.empty()) names.append(",").append(option.short_name);
  return names;
}

}  // namespace kosli::client::options
