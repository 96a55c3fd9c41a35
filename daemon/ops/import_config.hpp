// The configuration's "import" ({"file", "watch"}) and "import_key" ({"file",
// "org", "host", "profile", "kind", "service_account", "key_id", "watch"}):
// the same as --import FILE [--watch] and --import-key FILE … [--watch].
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kosli::daemon {

struct ImportConfig {
  std::string file;
  bool watch = false;
  bool single_key = false;  // "import_key": the file holds only the key
  // The single-key form's profile; empty: the defaults (profile "default",
  // host https://app.kosli.com, kind service-account).
  std::string profile;
  std::string org;
  std::string host;
  std::string kind;
  std::string service_account;
  std::string key_id;
};

// Reads the object under `key` ("import" or "import_key"); the error is a
// sentence that names the setting.
std::optional<std::string> read_import_config(const nlohmann::json& value, const std::string& key,
                                              ImportConfig& out);

}  // namespace kosli::daemon
