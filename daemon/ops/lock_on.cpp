#include "daemon/ops/lock_on.hpp"

#include <nlohmann/json.hpp>

namespace kosli::daemon {

std::optional<std::string> parse_lock_on(const nlohmann::json& value, LockOn& out) {
  static const std::string kWhat = "must be a list among \"screen\", \"sleep\" and \"keyring\" ([]: never forget)";
  if (!value.is_array()) return kWhat;
  LockOn on{false, false, false};
  for (const auto& item : value) {
    if (item == "screen") {
      on.screen = true;
    } else if (item == "sleep") {
      on.sleep = true;
    } else if (item == "keyring") {
      on.keyring = true;
    } else {
      return kWhat;
    }
  }
  out = on;
  return std::nullopt;
}

}  // namespace kosli::daemon
