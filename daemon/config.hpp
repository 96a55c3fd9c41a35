// The optional, non-secret configuration file:
// $XDG_CONFIG_HOME/kosli-cred/config.json. Validated whole at start; an unknown
// key or a wrong type is an error naming the key. Flags override it.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kosli::daemon {

enum class GitErase { forget, remove };  // "forget" | "delete"

struct ProfileConfig {
  // Absolute paths of the programs a token for this profile may go to; empty:
  // any program of the daemon's user.
  std::vector<std::string> allowed_clients;
};

struct Config {
  std::string path;  // where it was read from; empty when there was no file
  std::optional<long> cache_ttl_s;
  std::optional<long> idle_exit_s;
  std::optional<std::string> audit_log;
  std::vector<uid_t> allow_uids;
  GitErase git_erase = GitErase::forget;
  std::optional<std::string> ca_file;
  std::map<std::string, ProfileConfig, std::less<>> profiles;
};

struct ConfigError {
  std::string message;
};

// $XDG_CONFIG_HOME/kosli-cred/config.json, or ~/.config/kosli-cred/config.json.
std::string default_config_path();

// Parses and validates config text; `origin` names the file in messages.
std::variant<Config, ConfigError> parse_config(std::string_view text, const std::string& origin);

// Reads `explicit_path` (which must exist), or the default path (which may not).
// Program paths in allowed_clients are resolved to their real paths.
std::variant<Config, ConfigError> load_config(const std::optional<std::string>& explicit_path);

}  // namespace kosli::daemon
