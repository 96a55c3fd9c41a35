#include "daemon/ops/config.hpp"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/ops/hook_config.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;

// A config file is a few hundred bytes; anything this large is a mistake.
constexpr std::size_t kMaxConfigBytes = 256 * 1024;
// Longest time any *_s setting may take: a day.
constexpr long kMaxSeconds = 86400;
// Longest time any *_days setting may take: ten years.
constexpr long kMaxDays = 3650;

struct Reader {
  const std::string& origin;

  ConfigError error(const std::string& key, const std::string& what) const {
    return ConfigError{origin + ": '" + key + "' " + what};
  }

  std::optional<ConfigError> seconds(const json& v, const std::string& key, std::optional<long>& out) const {
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > kMaxSeconds) {
      return error(key, "must be a whole number of seconds from 0 to " + std::to_string(kMaxSeconds));
    }
    out = v.get<long>();
    return std::nullopt;
  }

  std::optional<ConfigError> path(const json& v, const std::string& key, std::optional<std::string>& out) const {
    if (!v.is_string() || v.get_ref<const std::string&>().empty()) return error(key, "must be a non-empty string");
    out = v.get<std::string>();
    return std::nullopt;
  }

  std::optional<ConfigError> days(const json& v, const std::string& key, double& out) const {
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > kMaxDays) {
      return error(key, "must be a number of days from 0 to " + std::to_string(kMaxDays) + " (0: never)");
    }
    out = v.get<double>();
    return std::nullopt;
  }

  std::optional<ConfigError> profile(const json& v, const std::string& key, ProfileConfig& out) const {
    if (!v.is_object()) return error(key, "must be an object");
    for (const auto& [field, value] : v.items()) {
      const std::string name = key + "." + field;
      if (field == "rotate_every_days") {
        if (auto e = days(value, name, out.rotate_every_days)) return e;
        continue;
      }
      if (field == "rotate_before_expiry_days") {
        if (auto e = days(value, name, out.rotate_before_expiry_days)) return e;
        continue;
      }
      if (field == "rotate_grace_hours") {
        if (!value.is_number_integer() || value.get<long long>() < limits::kMinGraceHours ||
            value.get<long long>() > limits::kMaxGraceHours) {
          return error(name, "must be a whole number of hours " + std::string(limits::kGraceHoursRange));
        }
        out.rotate_grace_hours = value.get<int>();
        continue;
      }
      if (field == "on_rotate") {
        if (auto bad = read_hook_command(value, out.on_rotate)) return error(name, *bad);
        continue;
      }
      if (field == "confirm") {
        if (auto e = read_confirm(value, origin, name, out.confirm)) return e;
        continue;
      }
      if (field != "allowed_clients") {
        return error(name, "is not a known setting (known: allowed_clients, confirm, rotate_every_days, "
                           "rotate_before_expiry_days, rotate_grace_hours, on_rotate)");
      }
      if (!value.is_array()) return error(name, "must be a list of absolute program paths");
      for (const auto& program : value) {
        if (!program.is_string() || program.get_ref<const std::string&>().empty() ||
            program.get_ref<const std::string&>().front() != '/') {
          return error(name, "must be a list of absolute program paths");
        }
        out.allowed_clients.push_back(program.get<std::string>());
      }
    }
    return std::nullopt;
  }
};

}  // namespace

std::string default_config_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/kosli-cred/config.json";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/.config/kosli-cred/config.json";
}

std::variant<Config, ConfigError> parse_config(std::string_view text, const std::string& origin) {
  if (text.size() > kMaxConfigBytes) return ConfigError{origin + ": the file is larger than 256 KiB"};
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    return ConfigError{origin + ": not valid JSON (" + e.what() + ")"};
  }
  if (!root.is_object()) return ConfigError{origin + ": the file must hold one JSON object"};

  Config config;
  config.path = origin;
  const Reader r{origin};
  for (const auto& [key, value] : root.items()) {
    std::optional<ConfigError> problem;
    if (key == "cache_ttl_s") {
      problem = r.seconds(value, key, config.cache_ttl_s);
    } else if (key == "idle_exit_s") {
      problem = r.seconds(value, key, config.idle_exit_s);
    } else if (key == "audit_log") {
      problem = r.path(value, key, config.audit_log);
    } else if (key == "askpass") {
      problem = read_askpass(value, origin, config);
    } else if (key == "confirm_timeout_s") {
      problem = read_confirm_timeout(value, origin, config);
    } else if (key == "ca_file") {
      problem = r.path(value, key, config.ca_file);
    } else if (key == "expiry_warning_days") {
      if (!value.is_number_integer() || value.get<long long>() < 0 || value.get<long long>() > 365) {
        problem = r.error(key, "must be a whole number of days from 0 to 365 (0: never warn)");
      } else {
        config.expiry_warning_days = value.get<int>();
      }
    } else if (key == "lock_on") {
      if (auto bad = parse_lock_on(value, config.lock_on)) problem = r.error(key, *bad);
    } else if (key == "notify") {
      if (!value.is_boolean()) problem = r.error(key, "must be true or false");
      if (value.is_boolean()) config.notify = value.get<bool>();
    } else if (key == "git_erase") {
      if (value == "forget") {
        config.git_erase = GitErase::forget;
      } else if (value == "delete") {
        config.git_erase = GitErase::remove;
      } else {
        problem = r.error(key, "must be \"forget\" or \"delete\"");
      }
    } else if (key == "allow_uid_access") {
      if (value == "read") {
        config.allow_uid_access = UidAccess::read;
      } else if (value == "manage") {
        config.allow_uid_access = UidAccess::manage;
      } else {
        problem = r.error(key, "must be \"read\" (other uids read tokens only) or \"manage\" (they may "
                               "also store, erase, verify, rotate and reject)");
      }
    } else if (key == "allow_uids") {
      if (!value.is_array()) problem = r.error(key, "must be a list of numeric uids");
      for (const auto& uid : value) {
        if (!uid.is_number_unsigned() || uid.get<unsigned long long>() > UINT_MAX - 1) {
          problem = r.error(key, "must be a list of numeric uids");
          break;
        }
        config.allow_uids.push_back(uid.get<uid_t>());
      }
    } else if (key == "profiles") {
      if (!value.is_object()) problem = r.error(key, "must be an object of profile names");
      for (const auto& [name, settings] : value.items()) {
        if (auto bad = profile_name_problem(name)) {
          problem = r.error("profiles." + name, "is not a valid profile name: " + *bad);
          break;
        }
        if ((problem = r.profile(settings, "profiles." + name, config.profiles[name]))) break;
      }
    } else if (key == "import" || key == "import_key") {
      if (config.import) {
        problem = r.error(key, "cannot be given with another 'import' or 'import_key': the daemon imports one file");
      } else if (auto bad = read_import_config(value, key, config.import.emplace())) {
        problem = ConfigError{origin + ": " + *bad};
      }
    } else {
      problem = r.error(key, "is not a known setting (known: cache_ttl_s, idle_exit_s, audit_log, "
                             "allow_uids, allow_uid_access, git_erase, ca_file, expiry_warning_days, lock_on, notify, "
                             "askpass, confirm_timeout_s, profiles, import, import_key)");
    }
    if (problem) return *problem;
  }
  return config;
}

std::variant<Config, ConfigError> load_config(const std::optional<std::string>& explicit_path) {
  const std::string path = explicit_path.value_or(default_config_path());
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!explicit_path) return Config{};  // no file: every default
    return ConfigError{path + ": cannot be read"};
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = parse_config(text.str(), path);
  if (auto* config = std::get_if<Config>(&parsed)) {
    // Compare against what /proc/<pid>/exe shows: the real path.
    for (auto& [name, profile] : config->profiles) {
      for (auto& program : profile.allowed_clients) {
        if (char* real = ::realpath(program.c_str(), nullptr)) {
          program = real;
          std::free(real);
        }
      }
    }
  }
  return parsed;
}

}  // namespace kosli::daemon
