// The single-key form of an import (--import-key FILE): the file holds only
// the key, as a Kubernetes Secret volume or a Vault Agent template writes it,
// one file per key; what the profile is (org, host, kind, …) comes from flags
// or the configuration.
#pragma once

#include <string>

#include "daemon/keys/import.hpp"
#include "proto/host.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {

// Everything about the profile but its key.
struct KeyFileProfile {
  std::string name = std::string(kDefaultProfile);
  std::string org;
  std::string host = std::string(kEuHost);
  KeyKind kind = KeyKind::service_account;
  std::string service_account;
  std::string key_id;
};

// The profile from `text`, the whole file (which is wiped): the key, with one
// trailing newline ("\n" or "\r\n") trimmed. Anything else that is not a valid
// key, an empty file included, is refused with a sentence that begins with
// `what` and never holds the key.
ImportResult parse_key_file(std::string& text, const KeyFileProfile& profile, const std::string& what);

// Reads `path` and parses it as above.
ImportResult import_key_file(const std::string& path, const KeyFileProfile& profile);

}  // namespace kosli::daemon
