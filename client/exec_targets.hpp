// What `kosli-cred exec` may hand one command: one profile, or several in the
// Kosli CLI's multi-host mode. The CLI runs a command once per host when
// KOSLI_HOST and KOSLI_API_TOKEN hold the same number (more than one) of
// comma-separated values, and reads KOSLI_ORG whole: so every profile must have
// one org, and no org or host may hold a comma, or one profile would read as
// several.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kosli::client {

struct ExecTarget {
  std::string profile;
  std::string org;
  std::string host;
};

struct ExecProblem {
  int exit_code;
  std::string message;
};

// A profile named twice (exit 2), before anything is asked of the daemon.
std::optional<ExecProblem> repeated_profile_problem(const std::vector<std::string>& profiles);

// Why the daemon's answers for `targets` (in the order given) cannot be handed
// to one command: an org or host with a comma (exit 1: stored before stores
// refused them), or several orgs (exit 2, naming the first two profiles that
// differ).
std::optional<ExecProblem> exec_targets_problem(const std::vector<ExecTarget>& targets);

}  // namespace kosli::client
