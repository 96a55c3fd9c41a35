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

std::string keys_detail::save_by_hand(const ProfileMeta& m) {
  std::string command = "kosli-cred token --profile " + m.name + " | kosli-cred store --profile " + m.name +
                        " --org " + m.org + " --host " + m.host;
  if (!m.service_account.empty() && !m.key_id.empty()) {
    command += " --service-account " + m.service_account + " --key-id " + m.key_id;
  }
  if (m.expires_at != 0) command += " --expires-at " + format_rfc3339(m.expires_at);
  return command;
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
  timers_.after(delay, [this] {
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

void KeyLifecycle::stop_timers() {
  timers_.stop();
  hooks_.stop();
}

void KeyLifecycle::stop() {
  timers_.stop();
  hooks_.stop();
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
}  // namespace kosli::daemon
