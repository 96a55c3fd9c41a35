// Every Kosli key expires. Kosli tells a service-account key's expiry to the
// key itself (GET …/api-keys/<key_id>): it is asked just after a store, at
// verify, and daily on its own; a rotation's answer carries it too. What it
// says is kept with the profile (expiry_source "kosli") and wins over what a
// user gave; a personal key's expiry is only ever what the user said.
#include <spdlog/spdlog.h>

#include "daemon/keys/lifecycle_detail.hpp"
#include "daemon/ops/audit_log.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {

using namespace keys_detail;

namespace {
std::string expiry_text(std::int64_t at, std::string_view source) {
  return at == 0 ? std::string("unknown") : format_rfc3339(at) + " (" + std::string(source) + ")";
}
}  // namespace

void KeyLifecycle::learn_expiry(const std::string& name, const Peer& peer) {
  worker_.submit([this, name, peer](Store& store, Store::Deadline deadline) {
    auto loaded = load_current(name, store, deadline);
    auto* current = std::get_if<std::optional<StoredKey>>(&loaded);
    if (current == nullptr || !*current || !expiry_learnable((*current)->meta)) return;
    ask_expiry(std::make_shared<StoredKey>(std::move(**current)), peer, [](LearnedExpiry) {});
  });
}

void KeyLifecycle::ask_expiry(std::shared_ptr<StoredKey> current, const Peer& peer,
                              std::function<void(LearnedExpiry)> done) {
  const ProfileMeta& m = current->meta;
  kosli_.key_info(m.host, m.org, m.service_account, m.key_id, current->key,
                  [this, current, peer, done = std::move(done)](KeyInfoOutcome outcome) {
    const ProfileMeta& meta = current->meta;
    const std::string& name = meta.name;
    LearnedExpiry learned{meta.expires_at, meta.expiry_source, {}};
    const std::string asked = "GET /api/v2/service-accounts/" + meta.org + "/" + meta.service_account +
                              "/api-keys/" + meta.key_id;
    if (auto* f = std::get_if<KosliFailure>(&outcome)) {
      learned.error = f->message;
    } else if (auto* r = std::get_if<KosliRefusal>(&outcome)) {
      learned.error = "Kosli at " + meta.host + " answered " + std::to_string(r->status) + " to " + asked +
                      (r->message.empty() ? "" : ": " + r->message);
    } else if (std::get<KeyInfo>(outcome).expires_at == 0) {
      learned.error = "Kosli at " + meta.host + " answered " + asked + " without an expires_at";
    }
    if (!learned.error.empty()) {
      spdlog::warn("expiry: profile '{}': not learned from Kosli: {}", name, learned.error);
      audit_.record(AuditRecord{"expiry", name, "error", learned.error}, peer);
      return done(std::move(learned));
    }
    const std::int64_t kosli_says = std::get<KeyInfo>(outcome).expires_at;
    if (kosli_says == meta.expires_at && meta.expiry_source == kExpiryFromKosli) return done(std::move(learned));
    worker_.submit([this, current, peer, done, kosli_says, learned](Store& store, Store::Deadline deadline) mutable {
      const ProfileMeta& meta = current->meta;
      const std::string& name = meta.name;
      auto recorded = store.record_expiry(name, meta.fingerprint, kosli_says, kExpiryFromKosli, deadline);
      if (auto* e = std::get_if<StoreError>(&recorded)) {
        learned.error = "Kosli says the key expires at " + format_rfc3339(kosli_says) +
                        ", but that could not be saved with the profile: " + e->message;
        spdlog::warn("expiry: profile '{}': {}", name, learned.error);
        audit_.record(AuditRecord{"expiry", name, "error", learned.error}, peer);
        return done(std::move(learned));
      }
      if (!std::get<bool>(recorded)) return done(std::move(learned));  // erased or replaced meanwhile
      cache_.drop(name);  // the cached copy carries the old expiry
      std::string detail = "Kosli says " + meta.fingerprint + " expires at " + format_rfc3339(kosli_says);
      const bool changed = meta.expires_at != 0;
      if (changed) {
        detail += "; the profile said " + expiry_text(meta.expires_at, meta.expiry_source) +
                  ": Kosli's wins for a service-account key";
      }
      spdlog::info("expiry: profile '{}': {}", name, detail);
      audit_.record(AuditRecord{"expiry", name, changed ? "changed" : "learned", detail}, peer);
      arm_schedule(std::chrono::milliseconds(0));  // rotate_before_expiry_days counts from this expiry
      done(LearnedExpiry{kosli_says, std::string(kExpiryFromKosli), {}});
    });
  });
}

void KeyLifecycle::arm_expiry_refresh(std::chrono::milliseconds delay) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
  }
  timers_.after(delay, [this] { refresh_expiries(); });
}

void KeyLifecycle::refresh_expiries() {
  worker_.submit([this](Store& store, Store::Deadline deadline) {
    auto listed = store.list(deadline);
    if (auto* e = std::get_if<StoreError>(&listed)) {
      spdlog::warn("expiry: cannot list profiles to refresh their expiry ({}); looking again in {} s", e->message,
                   kUnknownExpiryRefresh.count());
      return arm_expiry_refresh(kUnknownExpiryRefresh);
    }
    bool unknown = false;
    for (const auto& meta : std::get<std::vector<ProfileMeta>>(listed)) {
      if (!expiry_learnable(meta)) continue;
      unknown |= meta.expiry_source != kExpiryFromKosli;
      auto loaded = store.load(meta.name, deadline);
      auto* current = std::get_if<std::optional<StoredKey>>(&loaded);
      if (current == nullptr || !*current) continue;
      ask_expiry(std::make_shared<StoredKey>(std::move(**current)), self_, [](LearnedExpiry) {});
    }
    arm_expiry_refresh(unknown ? kUnknownExpiryRefresh : kExpiryRefresh);
  });
}

}  // namespace kosli::daemon
