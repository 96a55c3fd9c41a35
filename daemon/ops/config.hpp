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

#include "daemon/ops/lock_on.hpp"
#include "daemon/ops/import_config.hpp"
#include <nlohmann/json_fwd.hpp>

namespace kosli::daemon {

enum class GitErase { forget, remove };  // "forget" | "delete"

// What the other uids admitted with --allow-uid (or allow_uids) may do.
enum class UidAccess {
  read,    // "read": health, profiles, a profile, a token, metrics (the GET routes)
  manage,  // "manage": every route, as the owner
};

// Whether a token for a profile waits for its owner's yes (daemon/ops/approvals.hpp).
enum class Confirm {
  never,        // "never": handed out without asking (the default)
  per_program,  // "per-program": asked once per program, by the real path of its executable
  always,       // "always": asked every time
};

struct ProfileConfig {
  // Absolute paths of the programs a token for this profile may go to; empty:
  // any program of the daemon's user.
  std::vector<std::string> allowed_clients;
  // Scheduled rotation through Kosli's API (service-account keys with a key id):
  // when the key is this many days old (0: never; fractions allowed) …
  double rotate_every_days = 0;
  // … or this many days before its expires_at (0: never).
  double rotate_before_expiry_days = 0;
  // The old key's grace period for a scheduled rotation.
  int rotate_grace_hours = 24;
  // The rotation hook: a program (absolute path) and its arguments, run after
  // every successful rotation with the new key on its stdin; empty: none.
  std::vector<std::string> on_rotate;
  Confirm confirm = Confirm::never;
};

// Clients warn about a key this many days before it expires, unless configured.
inline constexpr int kDefaultExpiryWarningDays = 7;

struct Config {
  std::string path;  // where it was read from; empty when there was no file
  std::optional<long> cache_ttl_s;
  std::optional<long> idle_exit_s;
  std::optional<std::string> audit_log;
  std::vector<uid_t> allow_uids;
  UidAccess allow_uid_access = UidAccess::read;
  GitErase git_erase = GitErase::forget;
  std::optional<std::string> ca_file;
  int expiry_warning_days = kDefaultExpiryWarningDays;  // 0: never warn
  LockOn lock_on;      // what makes the daemon forget its cached keys
  bool notify = true;  // desktop notifications
  std::map<std::string, ProfileConfig, std::less<>> profiles;
  std::optional<ImportConfig> import;  // "import" or "import_key"
  // Approvals: the askpass program (KOSLI_CRED_ASKPASS overrides it), and how
  // long a question waits for its answer.
  std::optional<std::string> askpass;
  long confirm_timeout_s = 30;
};

struct ConfigError {
  std::string message;
};

// $XDG_CONFIG_HOME/kosli-cred/config.json, or ~/.config/kosli-cred/config.json.
std::string default_config_path();

// The approval settings (daemon/ops/confirm_config.cpp): `confirm`, `askpass`
// and `confirm_timeout_s`; nullopt when `value` is valid (and then stored).
std::optional<ConfigError> read_confirm(const nlohmann::json& value, const std::string& origin,
                                        const std::string& key, Confirm& out);
std::optional<ConfigError> read_askpass(const nlohmann::json& value, const std::string& origin, Config& out);
std::optional<ConfigError> read_confirm_timeout(const nlohmann::json& value, const std::string& origin, Config& out);

// Parses and validates config text; `origin` names the file in messages.
std::variant<Config, ConfigError> parse_config(std::string_view text, const std::string& origin);

// Reads `explicit_path` (which must exist), or the default path (which may not).
// Program paths in allowed_clients are resolved to their real paths.
std::variant<Config, ConfigError> load_config(const std::optional<std::string>& explicit_path);

}  // namespace kosli::daemon
