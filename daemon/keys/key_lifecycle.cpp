#include "daemon/keys/key_lifecycle.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/ops/audit_log.hpp"
#include "daemon/keys/fingerprint.hpp"
#include "daemon/api/messages.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;

// A key Kosli issued that the keyring did not take is offered to it again after
// this long, doubling up to the maximum.
constexpr std::chrono::seconds kFirstStoreRetry{2};
constexpr std::chrono::seconds kMaxStoreRetry{60};
// A scheduled rotation that failed is tried again after this long.
constexpr std::chrono::seconds kScheduledRetry{15 * 60};
// The schedule is looked at at least this often (clocks jump; keys get stored).
constexpr std::chrono::seconds kMaxScheduleSleep{3600};
// When the store cannot list profiles for the schedule, it is asked again after this long.
constexpr std::chrono::seconds kScheduleListRetry{60};
constexpr std::int64_t kDay = 86400;

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

json time_json(std::int64_t t) { return t == 0 ? json(nullptr) : json(format_rfc3339(t)); }

Response json_response(int status, const json& body) { return Response{status, body.dump()}; }

Response store_error(const StoreError& e) {
  spdlog::warn("store: {}", e.message);
  return error_response(e.kind == StoreError::Kind::internal ? ErrorCode::internal : ErrorCode::backend_unavailable,
                        e.message);
}

Response no_such_profile(const std::string& name) {
  return error_response(ErrorCode::not_found, "no profile named '" + name +
                                                  "'; store one with: kosli-cred store --profile " + name + " --org ORG");
}


bool has_schedule(const ProfileConfig& c) { return c.rotate_every_days > 0 || c.rotate_before_expiry_days > 0; }

// When the configuration makes the key due: the earlier of its age and its
// nearness to expiry; nullopt when neither applies.
std::optional<std::int64_t> due_at(const ProfileMeta& meta, const ProfileConfig& c) {
  std::optional<std::int64_t> due;
  if (c.rotate_every_days > 0 && meta.created_at > 0) {
    due = meta.created_at + std::llround(c.rotate_every_days * kDay);
  }
  if (c.rotate_before_expiry_days > 0 && meta.expires_at > 0) {
    const std::int64_t before = meta.expires_at - std::llround(c.rotate_before_expiry_days * kDay);
    due = due ? std::min(*due, before) : before;
  }
  return due;
}

std::string when_old_key_ends(std::int64_t grace_end) {
  return grace_end != 0 ? format_rfc3339(grace_end) : "the end of its grace period";
}

// How to save a key kosli-credd holds in memory, once the keyring works again.
std::string save_by_hand(const ProfileMeta& m) {
  std::string command = "kosli-cred token --profile " + m.name + " | kosli-cred store --profile " + m.name +
                        " --org " + m.org + " --host " + m.host;
  if (!m.service_account.empty() && !m.key_id.empty()) {
    command += " --service-account " + m.service_account + " --key-id " + m.key_id;
  }
  if (m.expires_at != 0) command += " --expires-at " + format_rfc3339(m.expires_at);
  return command;
}

json rotation_body(const ProfileMeta& meta, const std::string& previous_fingerprint, bool via_api,
                   std::string_view verify_result, std::int64_t grace_end, const std::string& warning) {
  json body{{"profile", to_json(meta)},
            {"previous_fingerprint", previous_fingerprint},
            {"via_api", via_api},
            {"verified", verify_result == kVerifyValid},
            {"verify_result", verify_result.empty() ? json(nullptr) : json(verify_result)},
            {"grace_period_expires_at", time_json(grace_end)},
            {"stored", true}};
  if (!warning.empty()) body["warning"] = warning;
  return body;
}

}  // namespace

json expiry_summary(const std::vector<ProfileMeta>& profiles, int warning_days, std::int64_t now) {
  json out = json::array();
  for (const auto& meta : profiles) {
    if (!expiring_within(meta.expires_at, warning_days, now)) continue;
    out.push_back({{"profile", meta.name},
                   {"expires_at", format_rfc3339(meta.expires_at)},
                   {"days_left", days_left(meta.expires_at, now)},
                   {"expired", meta.expires_at <= now}});
  }
  return out;
}

struct KeyLifecycle::ApiRotation {
  std::string name;
  StoredKey old;
  RotateCall call;
  Peer peer;
  Reply reply;  // empty for a scheduled rotation
  bool scheduled = false;
  std::shared_ptr<void> guard;  // holds the profile's rotation slot
  RotatedKey rotated;
  ProfileMeta new_meta;
};

KeyLifecycle::KeyLifecycle(StoreWorker& worker, TokenCache& cache, AuditLog& audit, KosliApi& kosli,
                           const Config& config)
    : worker_(worker),
      cache_(cache),
      audit_(audit),
      kosli_(kosli),
      expiry_warning_days_(config.expiry_warning_days),
      profiles_(config.profiles),
      self_(this_process()) {}

KeyLifecycle::~KeyLifecycle() = default;

TokenInfo KeyLifecycle::token_info(const ProfileMeta& meta) const {
  return TokenInfo{meta.org, meta.host, meta.expires_at, expiry_warning_days_};
}

std::shared_ptr<void> KeyLifecycle::claim(const std::string& name) {
  {
    std::lock_guard lock(mutex_);
    if (!busy_.insert(name).second) return nullptr;
  }
  // The pointer only makes the guard test true; the deleter frees the slot.
  return std::shared_ptr<void>(static_cast<void*>(this), [this, name](void*) {
    std::lock_guard lock(mutex_);
    busy_.erase(name);
  });
}

std::optional<KeyLifecycle::WaitingKey> KeyLifecycle::waiting_key(std::string_view name) {
  std::lock_guard lock(mutex_);
  const auto it = waiting_.find(name);
  if (it == waiting_.end()) return std::nullopt;
  return WaitingKey{it->second.key.clone(), token_info(it->second.meta)};
}

bool KeyLifecycle::holds_waiting_keys() {
  std::lock_guard lock(mutex_);
  return !waiting_.empty();
}

void KeyLifecycle::profile_changed(const std::string& name) {
  {
    std::lock_guard lock(mutex_);
    if (const auto it = waiting_.find(name); it != waiting_.end()) {
      spdlog::info("rotate: profile '{}' was stored or erased by hand; the rotated key held in memory "
                   "({}) is no longer needed",
                   name, it->second.meta.fingerprint);
      waiting_.erase(it);
    }
    if (const auto it = schedule_.find(name); it != schedule_.end()) it->second.next_attempt_at = 0;
  }
  arm_schedule(std::chrono::milliseconds(0));
}

// ---- verify ----------------------------------------------------------------

StoreResult<std::optional<StoredKey>> KeyLifecycle::load_current(const std::string& name, Store& store,
                                                                 Store::Deadline deadline) {
  {
    std::lock_guard lock(mutex_);
    if (const auto it = waiting_.find(name); it != waiting_.end()) {
      return std::optional<StoredKey>{StoredKey{it->second.meta, it->second.key.clone()}};
    }
  }
  return store.load(name, deadline);
}

std::optional<StoredKey> KeyLifecycle::current_key(const std::string& name, Store& store, Store::Deadline deadline,
                                                  std::string_view event, const Peer& peer, const Reply& reply) {
  auto loaded = load_current(name, store, deadline);
  if (auto* e = std::get_if<StoreError>(&loaded)) {
    audit_.record(AuditRecord{event, name, "error", e->message}, peer);
    reply(store_error(*e));
    return std::nullopt;
  }
  auto& stored = std::get<std::optional<StoredKey>>(loaded);
  if (!stored) {
    audit_.record(AuditRecord{event, name, "not_found", {}}, peer);
    reply(no_such_profile(name));
  }
  return std::move(stored);
}

void KeyLifecycle::verify(const std::string& name, const Peer& peer, Reply reply) {
  worker_.submit([this, name, peer, reply](Store& store, Store::Deadline deadline) {
    auto key = current_key(name, store, deadline, "verify", peer, reply);
    if (!key) return;
    const auto current = std::make_shared<StoredKey>(std::move(*key));
    kosli_.check_key(current->meta.host, current->meta.org, current->key,
                     [this, name, peer, reply, current](CheckOutcome outcome) {
      const ProfileMeta& meta = current->meta;
      if (auto* f = std::get_if<KosliFailure>(&outcome)) {
        spdlog::warn("verify: profile '{}': {}", name, f->message);
        audit_.record(AuditRecord{"verify", name, "error", reason_name(f->reason)}, peer);
        return reply(error_response(ErrorCode::kosli_unreachable,
                                    f->message + "; the key of profile '" + name + "' was not checked"));
      }
      const int status = std::get<int>(outcome);
      const std::string_view result = status == 200   ? kVerifyValid
                                      : status == 401 ? kVerifyInvalid
                                      : status == 403 ? kVerifyForbidden
                                                      : std::string_view{};
      if (result.empty()) {
        const std::string message =
            "Kosli at " + meta.host + " answered " + std::to_string(status) + " to GET /api/v2/environments/" +
            meta.org + (status == 404 ? " (is the profile's org right?)" : "") + "; the key of profile '" + name +
            "' was not checked";
        spdlog::warn("verify: {}", message);
        audit_.record(AuditRecord{"verify", name, "error", "Kosli answered " + std::to_string(status)}, peer);
        return reply(error_response(ErrorCode::kosli_unreachable, message));
      }
      std::string message;
      if (result == kVerifyValid) {
        message = "Kosli accepts the key of profile '" + name + "' for org " + meta.org + " on " + meta.host;
      } else if (result == kVerifyInvalid) {
        message = "Kosli rejected the key of profile '" + name +
                  "' (401): it is invalid, revoked or expired. Store a new key with: kosli-cred rotate --profile " +
                  name + " < new-key";
      } else {
        message = "the key of profile '" + name + "' is valid, but has no access to org '" + meta.org +
                  "' (403); check the profile's org, or the service account's role in Kosli";
      }
      const auto checked_at = now_s();
      worker_.submit([this, name, peer, reply, current, result, status, message, checked_at](
                         Store& store, Store::Deadline deadline) {
        const ProfileMeta& meta = current->meta;
        json body{{"profile", name},
                  {"org", meta.org},
                  {"host", meta.host},
                  {"fingerprint", meta.fingerprint},
                  {"valid", result != kVerifyInvalid},
                  {"result", result},
                  {"kosli_status", status},
                  {"checked_at", format_rfc3339(checked_at)},
                  {"message", message}};
        auto recorded = store.record_verification(name, meta.fingerprint, checked_at, result, deadline);
        if (auto* e = std::get_if<StoreError>(&recorded)) {
          body["warning"] = "the result could not be saved with the profile: " + e->message;
        }
        spdlog::info("verify: profile '{}' ({}): {} (Kosli answered {})", name, meta.fingerprint, result, status);
        audit_.record(AuditRecord{"verify", name, result, "Kosli answered " + std::to_string(status) + " for " +
                                                              meta.fingerprint},
                      peer);
        reply(json_response(200, body));
      });
    });
  });
}

// ---- rotate ------------------------------------------------------------------

void KeyLifecycle::rotate(const std::string& name, Request& request, const Peer& peer, Reply reply) {
  if (!request.is_json()) {
    wipe(request.body);
    return reply(error_response(ErrorCode::unsupported_media_type,
                                "send the rotation as JSON with Content-Type: application/json"));
  }
  auto parsed = parse_rotate(request.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    audit_.record(AuditRecord{"rotate", name, "refused", e->message}, peer);
    return reply(error_response(ErrorCode::bad_request, e->message));
  }
  auto rotate_request = std::make_shared<RotateRequest>(std::move(std::get<RotateRequest>(parsed)));
  auto guard = claim(name);
  if (!guard) {
    audit_.record(AuditRecord{"rotate", name, "refused", "a rotation is already in progress"}, peer);
    return reply(error_response(ErrorCode::conflict, "profile '" + name +
                                                         "' is being rotated already; wait for that to finish, "
                                                         "then check it with: kosli-cred show --profile " + name));
  }
  worker_.submit([this, name, rotate_request, peer, reply, guard](Store& store, Store::Deadline deadline) {
    auto current = current_key(name, store, deadline, "rotate", peer, reply);
    if (!current) return;
    if (!rotate_request->via_api) {
      return rotate_by_hand(name, rotate_request, std::move(*current), peer, reply, guard);
    }
    auto rotation = std::make_shared<ApiRotation>();
    rotation->name = name;
    rotation->old = std::move(*current);
    rotation->call.grace_period_hours = rotate_request->grace_period_hours;
    rotation->call.expires_at = rotate_request->expires_at;
    rotation->peer = peer;
    rotation->reply = reply;
    rotation->guard = guard;
    start_api_rotation(rotation);
  });
}

void KeyLifecycle::rotate_by_hand(const std::string& name, std::shared_ptr<RotateRequest> request, StoredKey current,
                                  const Peer& peer, Reply reply, std::shared_ptr<void> guard) {
  auto held = std::make_shared<StoredKey>(std::move(current));
  if (!request->verify) {
    spdlog::warn("rotate: profile '{}': storing a new key without asking Kosli (--no-verify)", name);
    return replace_by_hand(name, request, held, {}, peer, reply, guard);
  }
  kosli_.check_key(held->meta.host, held->meta.org, request->api_key,
                   [this, name, request, held, peer, reply, guard](CheckOutcome outcome) {
    const ProfileMeta& meta = held->meta;
    const std::string kept = "; the stored key of profile '" + name + "' was kept";
    if (auto* f = std::get_if<KosliFailure>(&outcome)) {
      audit_.record(AuditRecord{"rotate", name, "error", "the new key could not be checked: " +
                                                             std::string(reason_name(f->reason))},
                    peer);
      return reply(error_response(ErrorCode::kosli_unreachable,
                                  "the new key could not be checked: " + f->message + kept +
                                      ". To store it without asking Kosli (offline): kosli-cred rotate --profile " +
                                      name + " --no-verify"));
    }
    const int status = std::get<int>(outcome);
    if (status == 401 || status == 403) {
      const std::string why = status == 401 ? "Kosli rejected the new key (401): it is invalid, revoked or expired"
                                            : "the new key is valid, but has no access to org '" + meta.org + "' (403)";
      spdlog::warn("rotate: profile '{}': {}", name, why);
      audit_.record(AuditRecord{"rotate", name, "refused", "Kosli answered " + std::to_string(status) +
                                                              " for the new key"},
                    peer);
      return reply(error_response(ErrorCode::key_rejected, why + kept));
    }
    if (status != 200) {
      audit_.record(AuditRecord{"rotate", name, "error", "Kosli answered " + std::to_string(status)}, peer);
      return reply(error_response(ErrorCode::kosli_unreachable,
                                  "Kosli at " + meta.host + " answered " + std::to_string(status) +
                                      " when the new key was checked" + kept));
    }
    replace_by_hand(name, request, held, std::string(kVerifyValid), peer, reply, guard);
  });
}

void KeyLifecycle::replace_by_hand(const std::string& name, std::shared_ptr<RotateRequest> request,
                                   std::shared_ptr<StoredKey> current, std::string verify_result, const Peer& peer,
                                   Reply reply, std::shared_ptr<void> guard) {
  worker_.submit([this, name, request, current, verify_result, peer, reply, guard](Store& store,
                                                                                 Store::Deadline deadline) {
    const auto now = now_s();
    ProfileMeta meta = current->meta;
    meta.fingerprint = fingerprint(request->api_key);
    meta.created_at = now;
    meta.expires_at = request->expires_at.value_or(0);
    // The old key's id names another key now; keep API rotation working with --key-id.
    meta.key_id = request->key_id;
    meta.last_verified_at = verify_result.empty() ? 0 : now;
    meta.last_verify_result = verify_result;
    meta.persistent = store.persistent();
    auto stored = store.put(meta, request->api_key, deadline);
    if (auto* e = std::get_if<StoreError>(&stored)) {
      audit_.record(AuditRecord{"rotate", name, "error", e->message}, peer);
      return reply(store_error(*e));
    }
    {
      std::lock_guard lock(mutex_);
      waiting_.erase(name);  // a key stored by hand supersedes one still waiting
    }
    cache_.drop(name);
    cache_.put(name, request->api_key, token_info(meta), cache_.generation());
    const std::string how = verify_result.empty() ? "NOT checked with Kosli (--no-verify)" : "checked with Kosli";
    spdlog::info("rotate: profile '{}' rotated by hand ({} -> {}), {}", name, current->meta.fingerprint,
                 meta.fingerprint, how);
    audit_.record(AuditRecord{"rotate", name, "ok",
                              "by hand: " + current->meta.fingerprint + " -> " + meta.fingerprint + ", " + how},
                  peer);
    reply(json_response(200, rotation_body(meta, current->meta.fingerprint, false, verify_result, 0, {})));
    arm_schedule(std::chrono::milliseconds(0));
  });
}

void KeyLifecycle::start_api_rotation(std::shared_ptr<ApiRotation> rotation) {
  const ProfileMeta& m = rotation->old.meta;
  if (m.kind == KeyKind::personal) {
    return finish_rotation(*rotation,
                           error_response(ErrorCode::bad_request,
                                          "profile '" + rotation->name +
                                              "' holds a personal key, and Kosli rotates service-account keys only; "
                                              "create a new personal key in Kosli, then: kosli-cred rotate --profile " +
                                              rotation->name + " < new-key"),
                           "refused", "a personal key");
  }
  if (m.service_account.empty() || m.key_id.empty()) {
    return finish_rotation(*rotation,
                           error_response(ErrorCode::bad_request,
                                          "profile '" + rotation->name +
                                              "' does not say which service account and key id it holds, so Kosli "
                                              "cannot be asked to rotate it; store it again with --service-account "
                                              "NAME --key-id ID, or rotate it by hand: kosli-cred rotate --profile " +
                                              rotation->name + " < new-key"),
                           "refused", "no service account or key id");
  }
  rotation->call.host = m.host;
  rotation->call.org = m.org;
  rotation->call.service_account = m.service_account;
  rotation->call.key_id = m.key_id;
  spdlog::info("rotate: asking Kosli at {} to rotate key {} of service account {} (profile '{}'{})", m.host, m.key_id,
               m.service_account, rotation->name, rotation->scheduled ? ", scheduled" : "");
  kosli_.rotate_key(rotation->call, rotation->old.key,
                    [this, rotation](RotateOutcome outcome) { on_rotated(rotation, std::move(outcome)); });
}

void KeyLifecycle::on_rotated(std::shared_ptr<ApiRotation> rotation, RotateOutcome outcome) {
  const std::string& name = rotation->name;
  const ProfileMeta& old = rotation->old.meta;
  const std::string maybe_rotated =
      ". Kosli may have rotated the key all the same: the stored key keeps working until its grace period (" +
      std::to_string(rotation->call.grace_period_hours) +
      " h) ends; look at the service account's keys in Kosli before trying again";
  if (auto* f = std::get_if<KosliFailure>(&outcome)) {
    std::string message = f->message + "; profile '" + name + "' was not rotated";
    if (f->maybe_delivered) message += maybe_rotated;
    spdlog::warn("rotate: {}", message);
    return finish_rotation(*rotation, error_response(ErrorCode::kosli_unreachable, message), "error",
                           std::string(reason_name(f->reason)));
  }
  if (auto* refusal = std::get_if<KosliRefusal>(&outcome)) {
    const std::string said = refusal->message.empty() ? "" : ": " + refusal->message;
    const std::string status = std::to_string(refusal->status);
    ErrorCode code = ErrorCode::kosli_unreachable;
    std::string message;
    if (refusal->status == 401) {
      code = ErrorCode::key_rejected;
      message = "Kosli rejected the stored key of profile '" + name + "' (401" + said +
                "): it is invalid, revoked or expired, so it cannot rotate itself. Create a new key in Kosli, then: "
                "kosli-cred rotate --profile " + name + " < new-key";
    } else if (refusal->status == 403) {
      code = ErrorCode::key_rejected;
      message = "Kosli does not let the key of profile '" + name + "' rotate key '" + old.key_id +
                "' of service account '" + old.service_account + "' in org '" + old.org + "' (403" + said + ")";
    } else if (refusal->status == 404) {
      code = ErrorCode::bad_request;
      message = "Kosli knows no key '" + old.key_id + "' of service account '" + old.service_account + "' in org '" +
                old.org + "' (404" + said + "); store profile '" + name +
                "' again with the right --service-account and --key-id";
    } else if (refusal->status == 400 || refusal->status == 422) {
      code = ErrorCode::bad_request;
      message = "Kosli refused to rotate the key of profile '" + name + "' (" + status + said + ")";
    } else {
      message = "Kosli at " + old.host + " answered " + status + said + " to the rotation; profile '" + name +
                "' was not rotated" + (refusal->status >= 500 ? maybe_rotated : "");
    }
    spdlog::warn("rotate: {}", message);
    return finish_rotation(*rotation, error_response(code, message),
                           code == ErrorCode::key_rejected ? "refused" : "error", "Kosli answered " + status);
  }

  rotation->rotated = std::move(std::get<RotatedKey>(outcome));
  ProfileMeta meta = old;
  meta.fingerprint = fingerprint(rotation->rotated.key);
  meta.created_at = now_s();
  meta.expires_at = rotation->rotated.expires_at != 0 ? rotation->rotated.expires_at
                                                      : rotation->call.expires_at.value_or(0);
  meta.key_id = rotation->rotated.key_id;
  meta.last_verified_at = 0;
  meta.last_verify_result.clear();
  rotation->new_meta = meta;
  // From here on the new key exists once, here: hold it (and serve it) until the keyring has it.
  {
    std::lock_guard lock(mutex_);
    waiting_.insert_or_assign(name, Waiting{meta, rotation->rotated.key.clone(), meta.created_at,
                                            rotation->rotated.grace_period_expires_at, {}, 0});
  }
  spdlog::info("rotate: Kosli issued a new key for profile '{}' ({}, key id {}); the old key works until {}", name,
               meta.fingerprint, meta.key_id.empty() ? "not given" : meta.key_id,
               when_old_key_ends(rotation->rotated.grace_period_expires_at));
  kosli_.check_key(meta.host, meta.org, rotation->rotated.key, [this, rotation](CheckOutcome checked) {
    std::string result, note;
    if (auto* f = std::get_if<KosliFailure>(&checked)) {
      note = "the new key was stored without being checked: " + f->message;
    } else if (const int status = std::get<int>(checked); status == 200) {
      result = kVerifyValid;
    } else if (status == 401) {
      result = kVerifyInvalid;
      note = "Kosli issued the new key but rejected it when it was checked (401); it is stored all the same, as "
             "the old key stops working when the grace period ends. Check it again in a minute with: "
             "kosli-cred verify --profile " + rotation->name;
    } else if (status == 403) {
      result = kVerifyForbidden;
      note = "the new key has no access to org '" + rotation->new_meta.org + "' (403)";
    } else {
      note = "the new key was stored without being checked: Kosli answered " + std::to_string(status);
    }
    store_rotated(rotation, result, note);
  });
}

void KeyLifecycle::store_rotated(std::shared_ptr<ApiRotation> rotation, std::string verify_result,
                                 std::string verify_note) {
  if (!verify_result.empty()) {
    rotation->new_meta.last_verified_at = now_s();
    rotation->new_meta.last_verify_result = verify_result;
    std::lock_guard lock(mutex_);
    if (const auto it = waiting_.find(rotation->name);
        it != waiting_.end() && it->second.meta.fingerprint == rotation->new_meta.fingerprint) {
      it->second.meta = rotation->new_meta;
    }
  }
  worker_.submit([this, rotation, verify_result, verify_note](Store& store, Store::Deadline deadline) {
    const std::string& name = rotation->name;
    ProfileMeta& meta = rotation->new_meta;
    meta.persistent = store.persistent();
    const std::string grace = when_old_key_ends(rotation->rotated.grace_period_expires_at);
    const std::string key_id = meta.key_id.empty() ? "not given by Kosli" : meta.key_id;
    auto stored = store.put(meta, rotation->rotated.key, deadline);
    if (auto* e = std::get_if<StoreError>(&stored)) {
      {
        std::lock_guard lock(mutex_);
        if (const auto it = waiting_.find(name); it != waiting_.end() && it->second.meta.fingerprint == meta.fingerprint) {
          it->second.last_error = e->message;
          it->second.attempts = 1;
        }
      }
      const std::string message =
          "Kosli rotated the key of profile '" + name + "', but the new key (" + meta.fingerprint + ", key id " +
          key_id + ") could not be stored in the keyring: " + e->message +
          ". kosli-credd holds the new key in memory, serves it, and keeps trying to store it: do not stop "
          "kosli-credd until 'kosli-cred status' no longer lists it under waiting keys. The old key keeps working "
          "until " + grace + ". To save the new key by hand once the keyring works: " + save_by_hand(meta);
      spdlog::error("rotate: NEW KEY NOT IN THE KEYRING: {}", message);
      schedule_retry();
      return finish_rotation(*rotation, error_response(ErrorCode::backend_unavailable, message), "error",
                             "new key " + meta.fingerprint + " is held in memory only: " + e->message);
    }
    {
      std::lock_guard lock(mutex_);
      if (const auto it = waiting_.find(name); it != waiting_.end() && it->second.meta.fingerprint == meta.fingerprint) {
        waiting_.erase(it);
      }
    }
    cache_.drop(name);
    cache_.put(name, rotation->rotated.key, token_info(meta), cache_.generation());
    if (!verify_note.empty()) spdlog::warn("rotate: profile '{}': {}", name, verify_note);
    const std::string detail = "through Kosli's API: " + rotation->old.meta.fingerprint + " -> " + meta.fingerprint +
                               ", key id " + rotation->old.meta.key_id + " -> " + key_id + "; the old key works until " +
                               grace;
    spdlog::info("rotate: profile '{}' rotated {}", name, detail);
    finish_rotation(*rotation,
                    json_response(200, rotation_body(meta, rotation->old.meta.fingerprint, true, verify_result,
                                                     rotation->rotated.grace_period_expires_at, verify_note)),
                    "ok", detail);
  });
}

void KeyLifecycle::finish_rotation(const ApiRotation& rotation, Response response, std::string_view result,
                                   std::string detail) {
  const bool ok = response.status == 200;
  if (rotation.scheduled) {
    const auto now = now_s();
    {
      std::lock_guard lock(mutex_);
      auto& state = schedule_[rotation.name];
      state.last_attempt_at = now;
      if (ok) {
        state.last_rotated_at = now;
        state.last_error.clear();
        state.next_attempt_at = 0;
      } else {
        const auto error = parse_error_body(response.body);
        state.last_error = error ? error->message : detail;
        state.next_attempt_at = now + kScheduledRetry.count();
      }
    }
    if (!ok) spdlog::warn("scheduled rotation of profile '{}' failed; trying again in {} min", rotation.name,
                          kScheduledRetry.count() / 60);
  }
  audit_.record(AuditRecord{"rotate", rotation.name, result, (rotation.scheduled ? "scheduled, " : "") + detail},
                rotation.peer);
  if (rotation.reply) rotation.reply(std::move(response));
  if (rotation.scheduled || ok) arm_schedule(std::chrono::milliseconds(0));
}

// ---- keys waiting for the keyring ----------------------------------------------

void KeyLifecycle::schedule_retry() {
  std::chrono::seconds delay;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || retry_armed_ || waiting_.empty()) return;
    retry_armed_ = true;
    retry_backoff_ = retry_backoff_.count() == 0 ? kFirstStoreRetry : std::min(retry_backoff_ * 2, kMaxStoreRetry);
    delay = retry_backoff_;
  }
  kosli_.after(delay, [this] {
    {
      std::lock_guard lock(mutex_);
      retry_armed_ = false;
    }
    retry_waiting();
  });
}

void KeyLifecycle::retry_waiting() {
  std::vector<std::shared_ptr<StoredKey>> todo;
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) retry_backoff_ = std::chrono::seconds(0);
    for (const auto& [name, w] : waiting_) todo.push_back(std::make_shared<StoredKey>(StoredKey{w.meta, w.key.clone()}));
  }
  for (auto& item : todo) {
    worker_.submit([this, item](Store& store, Store::Deadline deadline) {
      const std::string& name = item->meta.name;
      int attempts = 0;
      {
        std::lock_guard lock(mutex_);
        const auto it = waiting_.find(name);
        if (it == waiting_.end() || it->second.meta.fingerprint != item->meta.fingerprint) return;
        attempts = ++it->second.attempts;
      }
      auto stored = store.put(item->meta, item->key, deadline);
      if (auto* e = std::get_if<StoreError>(&stored)) {
        {
          std::lock_guard lock(mutex_);
          if (const auto it = waiting_.find(name); it != waiting_.end()) it->second.last_error = e->message;
        }
        spdlog::error("rotate: the new key of profile '{}' ({}) is STILL NOT IN THE KEYRING after {} attempts ({}); "
                      "it is held in memory and served; retrying. To save it by hand: {}",
                      name, item->meta.fingerprint, attempts, e->message, save_by_hand(item->meta));
        return schedule_retry();
      }
      bool stored_ours = false;
      {
        std::lock_guard lock(mutex_);
        if (const auto it = waiting_.find(name);
            it != waiting_.end() && it->second.meta.fingerprint == item->meta.fingerprint) {
          waiting_.erase(it);
          stored_ours = true;
        }
        if (waiting_.empty()) retry_backoff_ = std::chrono::seconds(0);
      }
      if (!stored_ours) return;
      cache_.drop(name);
      cache_.put(name, item->key, token_info(item->meta), cache_.generation());
      spdlog::warn("rotate: the new key of profile '{}' ({}) is in the keyring now, after {} attempts", name,
                   item->meta.fingerprint, attempts);
      audit_.record(AuditRecord{"rotate", name, "ok",
                                "stored the rotated key " + item->meta.fingerprint + " in the keyring after " +
                                    std::to_string(attempts) + " attempts"},
                    self_);
    });
  }
}

void KeyLifecycle::log_lost(const Waiting& w) const {
  spdlog::critical(
      "THE NEW KEY OF PROFILE '{}' ({}, key id {}) WAS NEVER STORED IN THE KEYRING AND IS LOST WITH THIS PROCESS "
      "(the keyring said: {}). The previous key keeps working until {}: before then, rotate again (kosli-cred rotate "
      "--profile {} --via-api), or create a new key in Kosli and store it with: kosli-cred rotate --profile {}",
      w.meta.name, w.meta.fingerprint, w.meta.key_id.empty() ? "unknown" : w.meta.key_id,
      w.last_error.empty() ? "nothing" : w.last_error, when_old_key_ends(w.grace_period_expires_at), w.meta.name,
      w.meta.name);
}

void KeyLifecycle::stop() {
  std::vector<std::shared_ptr<StoredKey>> left;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    ++schedule_generation_;
    for (const auto& [name, w] : waiting_) left.push_back(std::make_shared<StoredKey>(StoredKey{w.meta, w.key.clone()}));
  }
  for (auto& item : left) {
    // One last attempt; it runs as StoreWorker drains its queue.
    worker_.submit([this, item](Store& store, Store::Deadline deadline) {
      const std::string& name = item->meta.name;
      {
        std::lock_guard lock(mutex_);
        const auto it = waiting_.find(name);
        if (it == waiting_.end() || it->second.meta.fingerprint != item->meta.fingerprint) return;
      }
      auto stored = store.put(item->meta, item->key, deadline);
      std::lock_guard lock(mutex_);
      const auto it = waiting_.find(name);
      if (it == waiting_.end()) return;
      if (auto* e = std::get_if<StoreError>(&stored)) {
        it->second.last_error = e->message;
        return log_lost(it->second);
      }
      spdlog::warn("rotate: the new key of profile '{}' ({}) is in the keyring now", name, item->meta.fingerprint);
      waiting_.erase(it);
    });
  }
}

// ---- scheduled rotation ----------------------------------------------------------

void KeyLifecycle::start() {
  if (std::none_of(profiles_.begin(), profiles_.end(), [](const auto& p) { return has_schedule(p.second); })) return;
  for (const auto& [name, c] : profiles_) {
    if (!has_schedule(c)) continue;
    spdlog::info("scheduled rotation: profile '{}' is rotated through Kosli's API{}{}", name,
                 c.rotate_every_days > 0 ? " every " + std::to_string(c.rotate_every_days) + " days" : "",
                 c.rotate_before_expiry_days > 0
                     ? " and " + std::to_string(c.rotate_before_expiry_days) + " days before it expires"
                     : "");
  }
  arm_schedule(std::chrono::milliseconds(0));
}

void KeyLifecycle::arm_schedule(std::chrono::milliseconds delay) {
  if (std::none_of(profiles_.begin(), profiles_.end(), [](const auto& p) { return has_schedule(p.second); })) return;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    generation = ++schedule_generation_;
  }
  kosli_.after(delay, [this, generation] { check_schedule(generation); });
}

void KeyLifecycle::check_schedule(std::uint64_t generation) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || generation != schedule_generation_) return;  // a newer check is armed
  }
  worker_.submit([this](Store& store, Store::Deadline deadline) {
    auto listed = store.list(deadline);
    if (auto* e = std::get_if<StoreError>(&listed)) {
      spdlog::warn("scheduled rotation: cannot list profiles ({}); looking again in {} s", e->message,
                   kScheduleListRetry.count());
      return arm_schedule(kScheduleListRetry);
    }
    const auto now = now_s();
    std::int64_t next = now + kMaxScheduleSleep.count();
    std::vector<std::string> due_now;
    {
      std::lock_guard lock(mutex_);
      for (const auto& meta : std::get<std::vector<ProfileMeta>>(listed)) {
        const auto config = profiles_.find(meta.name);
        if (config == profiles_.end() || !has_schedule(config->second)) continue;
        auto& state = schedule_[meta.name];
        const auto due = due_at(meta, config->second);
        state.due_at = due.value_or(0);
        if (!due) continue;
        if (state.next_attempt_at > now) {
          next = std::min(next, state.next_attempt_at);
        } else if (*due > now) {
          next = std::min(next, *due);
        } else if (!busy_.count(meta.name)) {
          due_now.push_back(meta.name);
        }
      }
    }
    for (const auto& name : due_now) {
      auto guard = claim(name);
      if (!guard) continue;
      auto rotation = std::make_shared<ApiRotation>();
      rotation->name = name;
      rotation->peer = self_;
      rotation->scheduled = true;
      rotation->guard = guard;
      auto loaded = load_current(name, store, deadline);
      if (auto* e = std::get_if<StoreError>(&loaded)) {
        finish_rotation(*rotation, store_error(*e), "error", e->message);
        continue;
      }
      auto& current = std::get<std::optional<StoredKey>>(loaded);
      if (!current) continue;  // erased meanwhile
      rotation->old = std::move(*current);
      const auto& config = profiles_.find(name)->second;
      rotation->call.grace_period_hours = config.rotate_grace_hours;
      // Keep the key's lifetime: a key stored with an expiry gets a new one as far ahead.
      const auto& old = rotation->old.meta;
      if (old.created_at > 0 && old.expires_at > old.created_at) {
        rotation->call.expires_at = now + (old.expires_at - old.created_at);
      }
      spdlog::info("scheduled rotation: profile '{}' is due", name);
      start_api_rotation(rotation);
    }
    // finish_rotation re-arms once a rotation started here is done.
    arm_schedule(std::chrono::seconds(std::max<std::int64_t>(1, next - now)));
  });
}

void KeyLifecycle::describe(json& health) {
  json rotation = json::array();
  json waiting = json::array();
  std::lock_guard lock(mutex_);
  for (const auto& [name, config] : profiles_) {
    if (!has_schedule(config)) continue;
    ScheduleState state;
    if (const auto it = schedule_.find(name); it != schedule_.end()) state = it->second;
    rotation.push_back(
        {{"profile", name},
         {"rotate_every_days", config.rotate_every_days > 0 ? json(config.rotate_every_days) : json(nullptr)},
         {"rotate_before_expiry_days",
          config.rotate_before_expiry_days > 0 ? json(config.rotate_before_expiry_days) : json(nullptr)},
         {"due_at", time_json(state.due_at)},
         {"last_rotated_at", time_json(state.last_rotated_at)},
         {"last_attempt_at", time_json(state.last_attempt_at)},
         {"last_error", state.last_error.empty() ? json(nullptr) : json(state.last_error)},
         {"next_attempt_at", time_json(state.next_attempt_at)}});
  }
  for (const auto& [name, w] : waiting_) {
    waiting.push_back({{"profile", name},
                       {"fingerprint", w.meta.fingerprint},
                       {"key_id", w.meta.key_id.empty() ? json(nullptr) : json(w.meta.key_id)},
                       {"since", time_json(w.since)},
                       {"attempts", w.attempts},
                       {"last_error", w.last_error.empty() ? json(nullptr) : json(w.last_error)},
                       {"old_key_works_until", time_json(w.grace_period_expires_at)},
                       {"save_by_hand", save_by_hand(w.meta)}});
  }
  health["rotation"] = std::move(rotation);
  health["waiting_keys"] = std::move(waiting);
}

}  // namespace kosli::daemon
