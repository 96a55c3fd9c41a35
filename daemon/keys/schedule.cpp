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
}  // namespace

// ---- scheduled rotation ----------------------------------------------------------

void KeyLifecycle::start() {
  arm_expiry_refresh(kFirstExpiryRefresh);
  if (std::none_of(profiles_.begin(), profiles_.end(), [](const auto& p) { return has_schedule(p.second); })) return;
  for (const auto& [name, c] : profiles_) {
    if (!has_schedule(c)) continue;
    spdlog::info("scheduled rotation: profile '{}' is rotated through Kosli's API{}{}", name,
                 c.rotate_every_days > 0 ? fmt::format(" every {:g} days", c.rotate_every_days) : "",
                 c.rotate_before_expiry_days > 0
                     ? fmt::format(" and {:g} days before it expires", c.rotate_before_expiry_days)
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
  timers_.after(delay, [this, generation] { check_schedule(generation); });
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
        fail_rotation(*rotation, store_failure(*e), "error", e->message);
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

void KeyLifecycle::describe(HealthAnswer& health) {
  health.rotates = true;
  hooks_.describe(health.rotate_hooks);
  std::lock_guard lock(mutex_);
  for (const auto& [name, config] : profiles_) {
    if (!has_schedule(config)) continue;
    ScheduleState state;
    if (const auto it = schedule_.find(name); it != schedule_.end()) state = it->second;
    health.rotation.push_back(RotationSchedule{name, config.rotate_every_days, config.rotate_before_expiry_days,
                                               state.due_at, state.last_rotated_at, state.last_attempt_at,
                                               state.last_error, state.next_attempt_at});
  }
  for (const auto& [name, w] : waiting_) {
    health.waiting_keys.push_back(kosli::WaitingKey{name, w.meta.fingerprint, w.meta.key_id, w.since, w.attempts,
                                                    w.last_error, w.grace_period_expires_at, save_by_hand(w.meta)});
  }
}
}  // namespace kosli::daemon
