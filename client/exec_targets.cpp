#include "client/exec_targets.hpp"

#include "proto/display.hpp"
#include "proto/errors.hpp"

namespace kosli::client {

std::optional<ExecProblem> repeated_profile_problem(const std::vector<std::string>& profiles) {
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (profiles[i] == profiles[j]) {
        return ExecProblem{exit_code::usage, "exec: profile '" + profiles[i] +
                                                 "' is given twice; give each profile once (one per Kosli host)"};
      }
    }
  }
  return std::nullopt;
}

std::optional<ExecProblem> exec_targets_problem(const std::vector<ExecTarget>& targets) {
  for (const auto& t : targets) {
    for (const auto& [field, value] : {std::pair{"org", &t.org}, {"host", &t.host}}) {
      if (value->find(',') == std::string::npos) continue;
      return ExecProblem{exit_code::error,
                         "exec: profile '" + t.profile + "' has the " + field + " '" + display_safe(*value) +
                             "', with a comma, which the Kosli CLI would read as several; nothing was run. "
                             "Store the key again with its real " + field + ": kosli-cred store --profile " +
                             t.profile + " …"};
    }
  }
  for (const auto& t : targets) {
    if (t.org == targets.front().org) continue;
    const auto& first = targets.front();
    return ExecProblem{exit_code::usage,
                       "exec: profiles '" + first.profile + "' (org " + display_safe(first.org) + ") and '" +
                           t.profile + "' (org " + display_safe(t.org) +
                           ") are of different orgs; the Kosli CLI takes one KOSLI_ORG for every host, so "
                           "give profiles of one org, or run the command once per org"};
  }
  return std::nullopt;
}

}  // namespace kosli::client
