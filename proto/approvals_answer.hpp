// What GET /v1/health says about approvals (profiles with "confirm"): the
// programs approved now, per profile, and the last denial. Sent only by a
// daemon with such a profile.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kosli {

struct ApprovedPrograms {
  std::string profile;
  std::vector<std::string> programs;  // real paths, approved until forgotten
};

struct ApprovalDenial {
  std::string profile;
  std::string program;  // empty when it could not be identified
  std::int64_t pid = 0;
  std::string how;  // "askpass no", "askpass timeout", "askpass unavailable", "askpass failed"
  std::int64_t at = 0;  // Unix seconds
};

struct ApprovalsHealth {
  std::vector<ApprovedPrograms> approved;
  std::optional<ApprovalDenial> last_denial;
};

nlohmann::json to_json(const ApprovalsHealth& approvals);
ApprovalsHealth approvals_from_json(const nlohmann::json& j);

}  // namespace kosli
