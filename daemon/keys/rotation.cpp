#include "daemon/keys/key_lifecycle.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/messages.hpp"
#include "proto/fingerprint.hpp"
#include "daemon/keys/lifecycle_detail.hpp"
#include "daemon/ops/audit_log.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {

using namespace keys_detail;
namespace {

RotateAnswer rotation_body(const ProfileMeta& meta, const std::string& previous_fingerprint, bool via_api,
                           std::string_view verify_result, std::int64_t grace_end, const std::string& warning) {
  return RotateAnswer{meta, previous_fingerprint, via_api, std::string(verify_result), grace_end, warning};
}
}  // namespace

// ---- rotate ------------------------------------------------------------------

void KeyLifecycle::rotate(const std::string& name, Request& request, const Peer& peer, RotateDone reply) {
  if (!request.is_json()) {
    wipe(request.body);
    return reply(ApiError{ErrorCode::unsupported_media_type,
                                "send the rotation as JSON with Content-Type: application/json"});
  }
  auto parsed = parse_rotate(request.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    audit_.record(AuditRecord{"rotate", name, "refused", e->message}, peer);
    return reply(ApiError{ErrorCode::bad_request, e->message});
  }
  auto rotate_request = std::make_shared<RotateRequest>(std::move(std::get<RotateRequest>(parsed)));
  auto guard = claim(name);
  if (!guard) {
    audit_.record(AuditRecord{"rotate", name, "refused", "a rotation is already in progress"}, peer);
    return reply(ApiError{ErrorCode::conflict, "profile '" + name +
                                                         "' is being rotated already; wait for that to finish, "
                                                         "then check it with: kosli-cred show --profile " + name});
  }
  worker_.submit([this, name, rotate_request, peer, reply, guard](Store& store, Store::Deadline deadline) {
    auto current = current_key(name, store, deadline, "rotate", peer,
                               [&reply](ApiError e) { reply(std::move(e)); });
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
                                  const Peer& peer, RotateDone reply, std::shared_ptr<void> guard) {
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
      return reply(ApiError{ErrorCode::kosli_unreachable,
                                  "the new key could not be checked: " + f->message + kept +
                                      ". To store it without asking Kosli (offline): kosli-cred rotate --profile " +
                                      name + " --no-verify"});
    }
    const int status = std::get<int>(outcome);
    if (status == 401 || status == 403) {
      const std::string why = status == 401 ? "Kosli rejected the new key (401): it is invalid, revoked or expired"
                                            : "the new key is valid, but has no access to org '" + meta.org + "' (403)";
      spdlog::warn("rotate: profile '{}': {}", name, why);
      audit_.record(AuditRecord{"rotate", name, "refused", "Kosli answered " + std::to_string(status) +
                                                              " for the new key"},
                    peer);
      return reply(ApiError{ErrorCode::key_rejected, why + kept});
    }
    if (status != 200) {
      audit_.record(AuditRecord{"rotate", name, "error", "Kosli answered " + std::to_string(status)}, peer);
      return reply(ApiError{ErrorCode::kosli_unreachable,
                                  "Kosli at " + meta.host + " answered " + std::to_string(status) +
                                      " when the new key was checked" + kept});
    }
    replace_by_hand(name, request, held, std::string(kVerifyValid), peer, reply, guard);
  });
}

void KeyLifecycle::replace_by_hand(const std::string& name, std::shared_ptr<RotateRequest> request,
                                   std::shared_ptr<StoredKey> current, std::string verify_result, const Peer& peer,
                                   RotateDone reply, std::shared_ptr<void> guard) {
  worker_.submit([this, name, request, current, verify_result, peer, reply, guard](Store& store,
                                                                                 Store::Deadline deadline) {
    const auto now = now_s();
    ProfileMeta meta = current->meta;
    meta.fingerprint = fingerprint(request->api_key);
    meta.created_at = now;
    meta.expires_at = request->expires_at.value_or(0);
    meta.expiry_source = meta.expires_at != 0 ? std::string(kExpiryFromUser) : std::string();
    // The old key's id names another key now; keep API rotation working with --key-id.
    meta.key_id = request->key_id;
    meta.last_verified_at = verify_result.empty() ? 0 : now;
    meta.last_verify_result = verify_result;
    meta.persistent = store.persistent();
    auto stored = store.put(meta, request->api_key, deadline);
    if (auto* e = std::get_if<StoreError>(&stored)) {
      audit_.record(AuditRecord{"rotate", name, "error", e->message}, peer);
      return reply(store_failure(*e));
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
    reply(rotation_body(meta, current->meta.fingerprint, false, verify_result, 0, {}));
    hooks_.rotated(meta, 0);
    if (expiry_learnable(meta)) learn_expiry(name, peer);
    arm_schedule(std::chrono::milliseconds(0));
  });
}

void KeyLifecycle::start_api_rotation(std::shared_ptr<ApiRotation> rotation) {
  const ProfileMeta& m = rotation->old.meta;
  if (m.kind == KeyKind::personal) {
    return fail_rotation(*rotation,
                         ApiError{ErrorCode::bad_request,
                                  "profile '" + rotation->name +
                                      "' holds a personal key, and Kosli rotates service-account keys only; "
                                      "create a new personal key in Kosli, then: kosli-cred rotate --profile " +
                                      rotation->name + " < new-key"},
                         "refused", "a personal key");
  }
  if (m.service_account.empty() || m.key_id.empty()) {
    return fail_rotation(*rotation,
                         ApiError{ErrorCode::bad_request,
                                  "profile '" + rotation->name +
                                      "' does not say which service account and key id it holds, so Kosli "
                                      "cannot be asked to rotate it; store it again with --service-account "
                                      "NAME --key-id ID, or rotate it by hand: kosli-cred rotate --profile " +
                                      rotation->name + " < new-key"},
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
    return fail_rotation(*rotation, ApiError{ErrorCode::kosli_unreachable, message}, "error",
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
    return fail_rotation(*rotation, ApiError{code, message},
                         code == ErrorCode::key_rejected ? "refused" : "error", "Kosli answered " + status);
  }

  rotation->rotated = std::move(std::get<RotatedKey>(outcome));
  ProfileMeta meta = old;
  meta.fingerprint = fingerprint(rotation->rotated.key);
  meta.created_at = now_s();
  // Kosli's answer says the new key's expiry; without it, what was asked for (or unknown until learned).
  meta.expires_at = rotation->rotated.expires_at != 0 ? rotation->rotated.expires_at
                                                      : rotation->call.expires_at.value_or(0);
  meta.expiry_source = rotation->rotated.expires_at != 0 ? std::string(kExpiryFromKosli)
                       : meta.expires_at != 0           ? std::string(kExpiryFromUser)
                                                        : std::string();
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
      notices_.key_waiting(name, save_by_hand(meta));
      schedule_retry();
      hooks_.rotated(meta, rotation->rotated.grace_period_expires_at);  // the key waiting here is the new one all the same
      return fail_rotation(*rotation, ApiError{ErrorCode::backend_unavailable, message}, "error",
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
                    rotation_body(meta, rotation->old.meta.fingerprint, true, verify_result,
                                  rotation->rotated.grace_period_expires_at, verify_note),
                    "ok", detail);
    hooks_.rotated(meta, rotation->rotated.grace_period_expires_at);
  });
}

void KeyLifecycle::fail_rotation(const ApiRotation& rotation, ApiError error, std::string_view result,
                                 std::string detail) {
  const std::string message = error.message;
  finish_rotation(rotation, std::move(error), result, std::move(detail), message);
}

void KeyLifecycle::finish_rotation(const ApiRotation& rotation, RotateResult answer, std::string_view result,
                                   std::string detail, std::string_view error) {
  const bool ok = std::holds_alternative<RotateAnswer>(answer);
  if (rotation.scheduled) {
    const auto now = now_s();
    bool waiting;  // a key Kosli issued waits for the keyring: told of as such, not as a failure
    {
      std::lock_guard lock(mutex_);
      waiting = waiting_.count(rotation.name) > 0;
      auto& state = schedule_[rotation.name];
      state.last_attempt_at = now;
      if (ok) {
        state.last_rotated_at = now;
        state.last_error.clear();
        state.next_attempt_at = 0;
      } else {
        state.last_error = error.empty() ? detail : std::string(error);
        state.next_attempt_at = now + kScheduledRetry.count();
      }
    }
    if (!ok) {
      spdlog::warn("scheduled rotation of profile '{}' failed; trying again in {} min", rotation.name,
                   kScheduledRetry.count() / 60);
      if (!waiting) notices_.rotation_failed(rotation.name, error.empty() ? detail : std::string(error));
    }
  }
  audit_.record(AuditRecord{"rotate", rotation.name, result, (rotation.scheduled ? "scheduled, " : "") + detail},
                rotation.peer);
  if (rotation.reply) rotation.reply(std::move(answer));
  if (rotation.scheduled || ok) arm_schedule(std::chrono::milliseconds(0));
}
}  // namespace kosli::daemon
