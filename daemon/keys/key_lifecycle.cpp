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

std::string keys_detail::when_old_key_ends(std::int64_t grace_end) {
  return grace_end != 0 ? format_rfc3339(grace_end) : "the end of its grace period";
}

std::vector<ExpiringKey> expiry_summary(const std::vector<ProfileMeta>& profiles, int warning_days, std::int64_t now) {
  std::vector<ExpiringKey> out;
  for (const auto& meta : profiles) {
    if (!expiring_within(meta.expires_at, warning_days, now)) continue;
    out.push_back(ExpiringKey{meta.name, meta.expires_at, days_left(meta.expires_at, now), meta.expires_at <= now});
  }
  return out;
}
KeyLifecycle::KeyLifecycle(StoreWorker& worker, TokenCache& cache, AuditLog& audit, KosliApi& kosli,
                           const Config& config)
    : worker_(worker),
      cache_(cache),
      audit_(audit),
      kosli_(kosli),
      expiry_warning_days_(config.expiry_warning_days),
      profiles_(config.profiles),
      self_(this_process()),
      hooks_(config.profiles, audit, self_,
             [this](const std::string& name, const std::string& fingerprint,
                    std::function<void(RotateHooks::KeyLookup)> done) { hook_key(name, fingerprint, std::move(done)); }) {}

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

void KeyLifecycle::hook_key(const std::string& name, const std::string& fingerprint,
                            std::function<void(RotateHooks::KeyLookup)> done) {
  worker_.submit([this, name, fingerprint, done](Store& store, Store::Deadline deadline) {
    auto loaded = load_current(name, store, deadline);
    if (auto* e = std::get_if<StoreError>(&loaded)) return done(RotateHooks::KeyLookup{std::nullopt, e->message});
    auto& current = std::get<std::optional<StoredKey>>(loaded);
    if (!current || current->meta.fingerprint != fingerprint) return done(RotateHooks::KeyLookup{});
    done(RotateHooks::KeyLookup{std::move(current->key), {}});
  });
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
                                                  std::string_view event, const Peer& peer,
                                                  const std::function<void(ApiError)>& fail) {
  auto loaded = load_current(name, store, deadline);
  if (auto* e = std::get_if<StoreError>(&loaded)) {
    audit_.record(AuditRecord{event, name, "error", e->message}, peer);
    fail(store_failure(*e));
    return std::nullopt;
  }
  auto& stored = std::get<std::optional<StoredKey>>(loaded);
  if (!stored) {
    audit_.record(AuditRecord{event, name, "not_found", {}}, peer);
    fail(no_such_profile_error(name));
  }
  return std::move(stored);
}

void KeyLifecycle::verify(const std::string& name, const Peer& peer, std::function<void(VerifyResult)> reply) {
  worker_.submit([this, name, peer, reply](Store& store, Store::Deadline deadline) {
    auto key = current_key(name, store, deadline, "verify", peer, [&reply](ApiError e) { reply(std::move(e)); });
    if (!key) return;
    const auto current = std::make_shared<StoredKey>(std::move(*key));
    kosli_.check_key(current->meta.host, current->meta.org, current->key,
                     [this, name, peer, reply, current](CheckOutcome outcome) {
      const ProfileMeta& meta = current->meta;
      if (auto* f = std::get_if<KosliFailure>(&outcome)) {
        spdlog::warn("verify: profile '{}': {}", name, f->message);
        audit_.record(AuditRecord{"verify", name, "error", reason_name(f->reason)}, peer);
        return reply(ApiError{ErrorCode::kosli_unreachable,
                              f->message + "; the key of profile '" + name + "' was not checked"});
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
        return reply(ApiError{ErrorCode::kosli_unreachable, message});
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
      const auto record = [this, name, peer, reply, current, result, status, message,
                           checked_at](LearnedExpiry expiry) {
        worker_.submit([this, name, peer, reply, current, result, status, message, checked_at,
                        expiry](Store& store, Store::Deadline deadline) {
        const ProfileMeta& meta = current->meta;
        VerifyAnswer answer{name, meta.org, meta.host, meta.fingerprint, std::string(result), status, checked_at, message, {}};
        answer.expires_at = expiry.expires_at;
        answer.expiry_source = expiry.expires_at == 0 ? std::string() : expiry.source;
        auto recorded = store.record_verification(name, meta.fingerprint, checked_at, result, deadline);
        if (auto* e = std::get_if<StoreError>(&recorded)) {
          answer.warning = "the result could not be saved with the profile: " + e->message;
        }
        if (!expiry.error.empty()) {
          answer.warning += (answer.warning.empty() ? "" : "; ") + std::string("the key's expiry was not learned: ") +
                            expiry.error;
        }
        spdlog::info("verify: profile '{}' ({}): {} (Kosli answered {})", name, meta.fingerprint, result, status);
        audit_.record(AuditRecord{"verify", name, result, "Kosli answered " + std::to_string(status) + " for " +
                                                              meta.fingerprint},
                      peer);
        reply(std::move(answer));
        });
      };
      // A key Kosli accepts tells its own expiry (a service-account key with a key id).
      if (result == kVerifyValid && expiry_learnable(meta)) return ask_expiry(current, peer, record);
      record(LearnedExpiry{meta.expires_at, meta.expiry_source, {}});
    });
  });
}
}  // namespace kosli::daemon
