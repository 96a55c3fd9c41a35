// The configuration's approval settings (config.hpp): a profile's "confirm",
// and the top level's "askpass" and "confirm_timeout_s".
#include <nlohmann/json.hpp>

#include "daemon/ops/config.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon {
namespace {

ConfigError error(const std::string& origin, const std::string& key, const std::string& what) {
  return ConfigError{origin + ": '" + key + "' " + what};
}

}  // namespace

std::optional<ConfigError> read_confirm(const nlohmann::json& value, const std::string& origin,
                                        const std::string& key, Confirm& out) {
  if (value == "never") {
    out = Confirm::never;
  } else if (value == "per-program") {
    out = Confirm::per_program;
  } else if (value == "always") {
    out = Confirm::always;
  } else {
    return error(origin, key, "must be \"never\", \"per-program\" (ask once per program) or \"always\"");
  }
  return std::nullopt;
}

std::optional<ConfigError> read_askpass(const nlohmann::json& value, const std::string& origin, Config& out) {
  if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
      value.get_ref<const std::string&>().front() != '/') {
    return error(origin, "askpass", "must be the absolute path of an askpass program");
  }
  out.askpass = value.get<std::string>();
  return std::nullopt;
}

std::optional<ConfigError> read_confirm_timeout(const nlohmann::json& value, const std::string& origin,
                                                Config& out) {
  const long most = limits::kMaxConfirmTimeout.count();
  if (!value.is_number_integer() || value.get<long long>() < 1 || value.get<long long>() > most) {
    return error(origin, "confirm_timeout_s", "must be a whole number of seconds from 1 to " + std::to_string(most));
  }
  out.confirm_timeout_s = value.get<long>();
  return std::nullopt;
}

}  // namespace kosli::daemon
