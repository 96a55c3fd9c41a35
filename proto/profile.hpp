// Profiles and the JSON bodies that carry them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "proto/limits.hpp"
#include "proto/secret.hpp"
#include "proto/secret_json.hpp"

namespace kosli {

inline constexpr std::string_view kDefaultProfile = "default";

// Why `name` is not a valid profile name (^[a-z0-9][a-z0-9._-]{0,63}$), or nullopt.
std::optional<std::string> profile_name_problem(std::string_view name);
inline bool valid_profile_name(std::string_view name) { return !profile_name_problem(name); }
// Why `org` is not an organisation name ("must be …"), or nullopt. No comma
// above all: the Kosli CLI reads a comma in KOSLI_HOST and KOSLI_API_TOKEN as
// its multi-host mode, so one profile must never hold one.
std::optional<std::string> org_problem(std::string_view org);

enum class KeyKind { service_account, personal };
std::string_view kind_name(KeyKind kind) noexcept;
std::optional<KeyKind> kind_from_name(std::string_view name) noexcept;

// What is known about a stored key; never the key itself.
struct ProfileMeta {
  std::string name;
  std::string org;
  std::string host;  // normalised base URL
  KeyKind kind = KeyKind::service_account;
  std::string description;
  std::int64_t created_at = 0;  // Unix seconds
  std::int64_t expires_at = 0;  // Unix seconds, 0 = unknown (every Kosli key expires)
  std::string expiry_source;    // kExpiryFromKosli, kExpiryFromUser; empty = unknown
  std::string fingerprint;      // "sha256:" + 12 hex
  std::string service_account;
  std::string key_id;
  bool persistent = true;
  std::int64_t last_verified_at = 0;  // Unix seconds of Kosli's last definite answer, 0 = never
  std::string last_verify_result;     // "valid", "invalid", "forbidden"; empty = never checked
};

// Kosli's answer to "does this key work?" (GET /api/v2/environments/<org>).
inline constexpr std::string_view kVerifyValid = "valid";          // 200
inline constexpr std::string_view kVerifyInvalid = "invalid";      // 401: invalid, revoked or expired
inline constexpr std::string_view kVerifyForbidden = "forbidden";  // 403: valid, but not for the org
// Never from the daemon: what `kosli-cred verify --json` prints when no answer
// came (Kosli or the daemon not reached), so that a script always reads JSON.
inline constexpr std::string_view kVerifyNotChecked = "not_checked";

// Where a profile's expires_at came from ("expiry_source" on the wire; null: unknown).
inline constexpr std::string_view kExpiryFromKosli = "kosli";  // Kosli's api-keys answer, or a rotation's
inline constexpr std::string_view kExpiryFromUser = "user";    // --expires-at (or git's password_expiry_utc)

// For a profile whose expires_at is unknown (0): how to learn it, as a command.
std::string how_to_learn_expiry(const ProfileMeta& meta);

nlohmann::json to_json(const ProfileMeta& meta);
// Parses a profile as the daemon sends it; nullopt when a field is missing or mistyped.
std::optional<ProfileMeta> profile_from_json(const nlohmann::json& j);

// The body of PUT /v1/profiles/{name}.
struct PutProfileRequest {
  std::string org;
  std::string host;
  KeyKind kind = KeyKind::service_account;
  Secret api_key;
  std::int64_t expires_at = 0;
  std::string description;
  std::string service_account;
  std::string key_id;
};

struct CodecError {
  std::string message;
};

// Parses and validates a PUT body. The body is wiped, and so is every buffer
// the parser used (SecretJson).
std::variant<PutProfileRequest, CodecError> parse_put_profile(std::string& body);
// The same, from a body already parsed (an item of an import file).
std::variant<PutProfileRequest, CodecError> put_profile_from_json(SecretJson& body);
// Serialises a PUT body. The caller wipes the returned string after sending it.
std::string serialize_put_profile(const PutProfileRequest& request);

// Checks an API key: not empty, not too long, visible ASCII only.
std::optional<std::string> api_key_problem(std::string_view key);

// Reads a key's expiry as a person gives it (`option`: "--expires-at"): an
// RFC 3339 time after 1970-01-01T00:00:00Z, or the sentence saying what is wrong.
std::variant<std::int64_t, std::string> parse_expiry(std::string_view text, std::string_view option);

// The body of GET /v1/profiles/{name}/token, with everything but the token.
struct TokenInfo {
  std::string org;
  std::string host;
  std::int64_t expires_at = 0;
  // The daemon's expiry-warning window: clients warn when expires_at is this
  // close. 0 = no warning.
  int expiry_warning_days = 0;
};
// {"token","token_type":"Bearer","org","host","expires_at"}, and for a key that
// expires, "expiry_warning_days". Wipe it after use.
std::string serialize_token(const Secret& token, const TokenInfo& info);

struct TokenResponse {
  Secret token;
  TokenInfo info;
};
// Parses a token body; wipes the token's bytes in `body` as it goes.
std::variant<TokenResponse, CodecError> parse_token(std::string& body);

// Whole days from `now` until `expires_at` (negative once past; both Unix seconds).
std::int64_t days_left(std::int64_t expires_at, std::int64_t now);
// Whether a key that expires at `expires_at` (0 = never) is within `warning_days`
// of it at `now`, or already past.
bool expiring_within(std::int64_t expires_at, int warning_days, std::int64_t now);

// The body of POST /v1/profiles/{name}/rotate: either a new key the user got
// from Kosli ({"api_key","verify"?,"expires_at"?,"key_id"?}), or a rotation
// through Kosli's API ({"via_api":{"grace_period_hours"?,"expires_at"?}}).
struct RotateRequest {
  bool via_api = false;
  // By hand:
  Secret api_key;
  bool verify = true;
  std::string key_id;  // the new key's id in Kosli; empty: unknown
  // Both: the new key's expiry (Unix seconds); nullopt: by hand, never/unknown;
  // through the API, Kosli's default.
  std::optional<std::int64_t> expires_at;
  // Through the API:
  int grace_period_hours = limits::kDefaultGraceHours;
};

// Parses and validates a rotate body, wiping the key's bytes in `body`.
std::variant<RotateRequest, CodecError> parse_rotate(std::string& body);
// Serialises a rotate body. The caller wipes the returned string after sending it.
std::string serialize_rotate(const RotateRequest& request);

}  // namespace kosli
