// Profiles a CI sidecar starts with: from the environment (--import-env) or a
// JSON list (--import FILE|-). Each one passes the same validation as the body
// of PUT /v1/profiles/{name}. Keys go straight into Secrets; every buffer that
// held one is wiped.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "daemon/store/store.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {

class AuditLog;

// A JSON list of profiles is read whole, up to this size.
inline constexpr std::size_t kMaxImportBytes = 1024 * 1024;

struct ImportedProfile {
  std::string name;
  PutProfileRequest request;
};

// The profiles, or a sentence saying what is wrong (never a key).
using ImportResult = std::variant<std::vector<ImportedProfile>, std::string>;

// KOSLI_API_TOKEN, KOSLI_ORG and KOSLI_HOST (default https://app.kosli.com) as
// the profile "default", kind service-account. The three variables are removed
// from this process's environment and their bytes zeroed, so
// /proc/<pid>/environ no longer shows them; also when the import fails.
ImportResult import_environment();

// A JSON list [{"name","org","api_key","host"?,"kind"?,"expires_at"?,…}] read
// from `path`, or from stdin for "-". "host" defaults to https://app.kosli.com
// and "kind" to "service-account".
ImportResult import_file(const std::string& path);

// Reads all of `path` ("-": stdin) into `text`, refusing more than
// kMaxImportBytes; the error names the file. `text` never reallocates, so
// wiping it wipes every copy it made. A file others may read is warned about
// unless `quiet`.
std::optional<std::string> read_import_text(const std::string& path, std::string& text, bool quiet = false);

// The JSON list of import_file, from `text` (which is wiped); `what` begins
// every message.
ImportResult parse_import_list(std::string& text, const std::string& what);

// Stores the profiles, in order, each audited as an import from `source`. The
// error names the profile that failed.
std::optional<std::string> store_imported(Store& store, const std::vector<ImportedProfile>& profiles,
                                          AuditLog& audit, std::string_view source);

// --import-env, then --import FILE|- when given: imports into `store`, or says
// why it could not. Every profile imported, and every import refused, is in
// the audit log, in the daemon's own name.
std::optional<std::string> import_profiles(Store& store, bool from_environment,
                                           const std::optional<std::string>& file, AuditLog& audit);

}  // namespace kosli::daemon
