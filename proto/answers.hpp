// The daemon's answers that are not a profile, a token or an error: health
// (what `kosli-cred status` shows), the profile list, verify and rotate. Each
// has a struct, the JSON the daemon sends (to_json), and the client's reading of
// it (*_from_json), so a field is named in one place only.
//
// Times are Unix seconds here, 0 for none; on the wire they are RFC 3339, or null.
// The readers are lenient as the client always was: a missing or mistyped field
// reads as its default, so a newer daemon's answer still shows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "proto/approvals_answer.hpp"
#include "proto/profile.hpp"

namespace kosli {

// GET /v1/health, "expiring": a key within the expiry-warning window, or past it.
struct ExpiringKey {
  std::string profile;
  std::int64_t expires_at = 0;
  std::int64_t days_left = 0;
  bool expired = false;
};

// GET /v1/health, "expiry_unknown": a profile whose key's expiry is not known
// (every Kosli key expires), with how to learn it.
struct UnknownExpiry {
  std::string profile;
  std::string how_to_learn;
};

// GET /v1/health, "rotation": a profile the daemon rotates on a schedule.
struct RotationSchedule {
  std::string profile;
  // Days, as configured: a fraction is allowed, and on the wire a number such as 30.0.
  double rotate_every_days = 0;          // 0: not by age (null on the wire)
  double rotate_before_expiry_days = 0;  // 0: not by expiry (null on the wire)
  std::int64_t due_at = 0;
  std::int64_t last_rotated_at = 0;
  std::int64_t last_attempt_at = 0;
  std::string last_error;  // empty: the last attempt did not fail (null on the wire)
  std::int64_t next_attempt_at = 0;
};

// GET /v1/health, "waiting_keys": a rotated key held in the daemon's memory
// only, because the keyring would not take it.
struct WaitingKey {
  std::string profile;
  std::string fingerprint;
  std::string key_id;  // empty: unknown (null on the wire)
  std::int64_t since = 0;
  int attempts = 0;
  std::string last_error;  // null on the wire when empty
  std::int64_t old_key_works_until = 0;
  std::string save_by_hand;  // the command that stores the key by hand (it holds no key)
};

// GET /v1/health, "rotate_hooks": a profile with an on_rotate hook, and how the
// hook of its last rotation (since the daemon started) went.
struct RotateHookState {
  std::string profile;
  std::string fingerprint;  // the key the hook publishes; empty: no rotation yet (null on the wire)
  // "running", "ok", "failed", "timed_out", "not_started", "superseded" (the
  // profile holds another key now); empty: never run (null on the wire).
  std::string result;
  std::int64_t last_run_at = 0;
  int attempts = 0;
  std::string last_error;  // how the last attempt failed: an exit status, never output (null when empty)
  std::int64_t next_attempt_at = 0;
  bool gave_up = false;  // no more attempts: half the old key's grace period has passed
};

// GET /v1/health, "audit_log".
struct AuditLogHealth {
  std::string kind;  // "file", "journal", "none", …
  std::string path;  // a file's path; sent only for kind "file"
  bool ok = true;
  std::string error;               // sent only while failing
  std::int64_t failing_since = 0;  // sent only while failing
};

// GET /v1/health, "session": what makes the daemon forget its cached keys
// (what it is subscribed to now), and the last time it did.
struct SessionHealth {
  std::vector<std::string> forget_on;  // "screen", "sleep", "keyring"
  bool notify = false;                 // desktop notifications on
  std::int64_t last_forgot_at = 0;     // null on the wire when never
  std::string last_forgot_reason;      // "screen_locked", "sleep", "keyring_locked"; null when never
};

// GET /v1/health, "import": the file the daemon imports its keys from (sent
// only by a daemon that has one).
struct ImportHealth {
  std::string file;
  bool watch = false;               // read again whenever it is published anew
  std::int64_t last_import_at = 0;  // when a publish was last taken
  std::int64_t refused = 0;         // publishes refused since start
  std::string last_error;           // sent while the latest publish is refused
  std::int64_t last_error_at = 0;   // sent with last_error
};

// GET /v1/health.
struct HealthAnswer {
  std::string version;
  std::string backend;
  bool persistent = false;
  std::int64_t uptime_s = 0;
  std::int64_t cached = 0;
  // How many profiles the store holds; nullopt when it did not answer, and then
  // store_error says why.
  std::optional<std::int64_t> profiles;
  std::string store_error;
  int expiry_warning_days = 0;  // sent with profiles
  std::vector<ExpiringKey> expiring;
  std::vector<UnknownExpiry> expiry_unknown;  // sent with profiles
  // A daemon that can rotate keys (one with a Kosli API client) sends rotation
  // and waiting_keys, empty or not; another sends neither.
  bool rotates = false;
  std::vector<RotationSchedule> rotation;
  std::vector<WaitingKey> waiting_keys;
  std::optional<AuditLogHealth> audit_log;
  std::optional<SessionHealth> session;
  std::vector<RotateHookState> rotate_hooks;  // sent only when a profile has a hook
  std::optional<ImportHealth> import;
  // Sent by a daemon with a profile that has "confirm" (proto/approvals_answer.hpp).
  std::optional<ApprovalsHealth> approvals;
};

nlohmann::json to_json(const HealthAnswer& answer);
std::string serialize(const HealthAnswer& answer);
// nullopt when the text is not a JSON object.
std::optional<HealthAnswer> health_from_json(const nlohmann::json& j);

// GET /v1/profiles.
struct ListAnswer {
  std::vector<ProfileMeta> profiles;
  std::size_t unreadable = 0;  // reading: items that were not a profile this client can read
};

nlohmann::json to_json(const ListAnswer& answer);
std::string serialize(const ListAnswer& answer);
// A missing "profiles" reads as none.
std::optional<ListAnswer> list_from_json(const nlohmann::json& j);

// POST /v1/profiles/{name}/verify: Kosli's definite answer about the key.
struct VerifyAnswer {
  std::string profile;
  std::string org;
  std::string host;
  std::string fingerprint;
  std::string result;  // kVerifyValid, kVerifyInvalid, kVerifyForbidden (kVerifyNotChecked: the client's own);
                       // "valid" on the wire is valid or forbidden
  int kosli_status = 0;       // 0: null on the wire (not checked)
  std::int64_t checked_at = 0;  // 0: null on the wire (not checked)
  std::string message;
  std::string warning;  // sent only when not empty
  // The key's expiry after the check (Kosli tells a service-account key's own);
  // 0 and empty: unknown (null on the wire).
  std::int64_t expires_at = 0;
  std::string expiry_source;
};

nlohmann::json to_json(const VerifyAnswer& answer);
std::string serialize(const VerifyAnswer& answer);
std::optional<VerifyAnswer> verify_from_json(const nlohmann::json& j);

// POST /v1/profiles/{name}/rotate: the new key is stored.
struct RotateAnswer {
  ProfileMeta profile;
  std::string previous_fingerprint;
  bool via_api = false;
  // kVerifyValid or kVerifyInvalid when Kosli was asked about the new key;
  // empty when not (null on the wire). "verified" on the wire is result == valid.
  std::string verify_result;
  std::int64_t grace_period_expires_at = 0;  // through the API: when the old key stops working
  std::string warning;                       // sent only when not empty
};

nlohmann::json to_json(const RotateAnswer& answer);
std::string serialize(const RotateAnswer& answer);
// nullopt when "profile" is not a profile this client can read.
std::optional<RotateAnswer> rotate_answer_from_json(const nlohmann::json& j);

}  // namespace kosli
