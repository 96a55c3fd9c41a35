// A key's life with Kosli: verify it (POST /v1/profiles/{name}/verify), rotate
// it by hand or through Kosli's API (POST …/rotate), rotate it on a schedule,
// and hold a key Kosli issued until the keyring has stored it.
//
// The rule that shapes this file: a key Kosli hands out once must never be
// lost. From the moment a rotation answers, the new key is held in locked
// memory and served; it leaves memory only once the keyring has it. If storing
// fails it is retried with backoff, and the log, the answer and `status` say
// how to recover.
//
// Threads: calls to Kosli run on KosliApi's thread, store calls on
// StoreWorker's, the schedule and the keyring retries on its own Timers';
// replies go out from the first two. Nothing here holds its mutex while
// calling any of them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "daemon/api/messages.hpp"
#include "daemon/keys/rotate_hooks.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/timers.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/kosli/kosli_api.hpp"
#include "daemon/ops/config.hpp"
#include "daemon/ops/notices.hpp"
#include "proto/answers.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {

class AuditLog;
class Metrics;

// Profiles whose key expires within `warning_days` (or has expired) at `now`,
// for the health answer.
std::vector<ExpiringKey> expiry_summary(const std::vector<ProfileMeta>& profiles, int warning_days, std::int64_t now);

class KeyLifecycle {
 public:
  KeyLifecycle(StoreWorker& worker, TokenCache& cache, AuditLog& audit, KosliApi& kosli, const Config& config);
  ~KeyLifecycle();

  KeyLifecycle(const KeyLifecycle&) = delete;
  KeyLifecycle& operator=(const KeyLifecycle&) = delete;

  // Starts scheduled rotation, when a profile's configuration asks for it.
  void start();
  // Counts the rotation hooks' attempts into /v1/metrics.
  void count_hooks_in(Metrics& metrics) { hooks_.count_in(metrics); }
  // No more scheduled rotations, keyring retries or rotation hooks (one running
  // is killed). Call before KosliApi::stop().
  void stop_timers();
  // No more schedules or retries; one last attempt to store any key still
  // waiting (it runs when StoreWorker stops), and a loud log line for any left.
  // Call after KosliApi::stop() and before StoreWorker::stop().
  void stop();

  // Kosli's definite answer about the profile's current key, or why there is none.
  using VerifyResult = std::variant<VerifyAnswer, ApiError>;
  // The rotated key as stored, or why the profile was not rotated.
  using RotateResult = std::variant<RotateAnswer, ApiError>;
  using RotateDone = std::function<void(RotateResult)>;
  void verify(const std::string& name, const Peer& peer, std::function<void(VerifyResult)> done);
  void rotate(const std::string& name, Request& request, const Peer& peer, RotateDone reply);

  // A key Kosli issued for `name` that the keyring does not hold yet: it is the
  // profile's current key, so tokens come from here.
  struct WaitingKey {
    Secret key;
    TokenInfo info;
  };
  std::optional<WaitingKey> waiting_key(std::string_view name);
  // Whether any such key exists (the daemon must not exit idle while one does).
  bool holds_waiting_keys();

  // A user stored or erased the profile: a key still waiting for it is
  // superseded, and its schedule is looked at again.
  void profile_changed(const std::string& name);

  // Where a failed scheduled rotation, a key waiting for the keyring and a key
  // close to its expiry are told to the user's desktop.
  Notices& notices() { return notices_; }

  // A user stored the profile's key: when it is a service-account key with a
  // key id, its expiry is learned from Kosli just after (the store does not
  // wait for Kosli), kept with the profile and audited.
  void learn_expiry(const std::string& name, const Peer& peer);

  // Fills the health answer's rotation (scheduled rotation per profile, with
  // its last failure), waiting keys and rotation hooks.
  void describe(HealthAnswer& health);

 private:
  struct ApiRotation;
  struct Waiting {
    ProfileMeta meta;
    Secret key;
    std::int64_t since = 0;
    std::int64_t grace_period_expires_at = 0;
    std::string last_error;
    int attempts = 0;
  };
  struct ScheduleState {
    std::int64_t due_at = 0;
    std::int64_t last_rotated_at = 0;
    std::int64_t last_attempt_at = 0;
    std::int64_t next_attempt_at = 0;  // after a failure
    std::string last_error;
  };

  std::shared_ptr<void> claim(const std::string& name);
  // The profile's current key: one Kosli issued that the keyring has not taken
  // yet, else the stored one (none: erased). On the store's thread.
  StoreResult<std::optional<StoredKey>> load_current(const std::string& name, Store& store, Store::Deadline deadline);
  // load_current for a request: without a key (no such profile, or the store
  // failed) hands `fail` why, audited as `event`, and returns nullopt.
  std::optional<StoredKey> current_key(const std::string& name, Store& store, Store::Deadline deadline,
                                       std::string_view event, const Peer& peer,
                                       const std::function<void(ApiError)>& fail);
  void rotate_by_hand(const std::string& name, std::shared_ptr<RotateRequest> request, StoredKey current,
                      const Peer& peer, RotateDone reply, std::shared_ptr<void> guard);
  void replace_by_hand(const std::string& name, std::shared_ptr<RotateRequest> request,
                       std::shared_ptr<StoredKey> current, std::string verify_result, const Peer& peer, RotateDone reply,
                       std::shared_ptr<void> guard);
  void start_api_rotation(std::shared_ptr<ApiRotation> rotation);
  void on_rotated(std::shared_ptr<ApiRotation> rotation, RotateOutcome outcome);
  void store_rotated(std::shared_ptr<ApiRotation> rotation, std::string verify_result, std::string verify_note);
  // Ends a rotation: audited, answered (when asked for), and for a scheduled
  // one its state; `error` is the message of a failure (empty: use `detail`).
  void finish_rotation(const ApiRotation& rotation, RotateResult answer, std::string_view result, std::string detail,
                       std::string_view error = {});
  // finish_rotation with `error` as the answer.
  void fail_rotation(const ApiRotation& rotation, ApiError error, std::string_view result, std::string detail);

  // Where a rotation hook's attempt reads the key it publishes (RotateHooks::KeySource).
  void hook_key(const std::string& name, const std::string& fingerprint,
                std::function<void(RotateHooks::KeyLookup)> done);

  // What Kosli said about a key's expiry: the profile's expiry after asking
  // (unchanged when Kosli was not reached), and why it was not learned.
  struct LearnedExpiry {
    std::int64_t expires_at = 0;
    std::string source;
    std::string error;  // empty: learned
  };
  // Asks Kosli for `current`'s expiry and keeps Kosli's answer with the
  // profile. `done` runs on the store's thread, or on the API's when Kosli was not reached.
  void ask_expiry(std::shared_ptr<StoredKey> current, const Peer& peer, std::function<void(LearnedExpiry)> done);
  // The periodic refresh of every learnable key's expiry (learned_expiry.cpp).
  void arm_expiry_refresh(std::chrono::milliseconds delay);
  void refresh_expiries();

  void schedule_retry();
  void retry_waiting();
  void log_lost(const Waiting& waiting) const;

  void arm_schedule(std::chrono::milliseconds delay);
  void check_schedule(std::uint64_t generation);

  TokenInfo token_info(const ProfileMeta& meta) const;

  StoreWorker& worker_;
  TokenCache& cache_;
  AuditLog& audit_;
  KosliApi& kosli_;
  const int expiry_warning_days_;
  const std::map<std::string, ProfileConfig, std::less<>> profiles_;
  const Peer self_;  // who the audit log names for what the daemon does on its own
  Notices notices_;

  std::mutex mutex_;
  bool stopped_ = false;
  std::set<std::string, std::less<>> busy_;  // profiles with a rotation in flight
  std::map<std::string, Waiting, std::less<>> waiting_;
  bool retry_armed_ = false;
  std::chrono::seconds retry_backoff_{0};
  std::map<std::string, ScheduleState, std::less<>> schedule_;
  std::uint64_t schedule_generation_ = 0;
  RotateHooks hooks_;  // after what its key lookups use
  Timers timers_;  // last: joined before the rest goes
};

}  // namespace kosli::daemon
