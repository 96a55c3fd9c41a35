// The rotation hooks: after every successful rotation of a profile whose
// configuration has `on_rotate`, that command runs with the new key on its
// standard input and the key's metadata in its environment (never the key).
// A failing attempt is retried with backoff until half the old key's grace
// period has passed, then given up; every attempt is audited, counted and shown
// in the health answer. The key is never held here between attempts: each
// attempt reads it from where it lives then (the keyring, or the keys waiting
// for it), and gives up quietly when the profile holds another key by then.
//
// Threads: attempts run one at a time on this object's own Timers thread (a
// hook that hangs delays the next profile's hook, never a request); keys are
// read through KeySource on the store's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/api/messages.hpp"
#include "daemon/keys/timers.hpp"
#include "daemon/ops/config.hpp"
#include "daemon/ops/hook_process.hpp"
#include "proto/answers.hpp"
#include "proto/profile.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

class AuditLog;
class Metrics;

class RotateHooks {
 public:
  // What a hook attempt reads: the profile's current key if its fingerprint is
  // still the rotated one; no key and no error when the profile holds another
  // key (or none) now; an error when the store could not be read.
  struct KeyLookup {
    std::optional<Secret> key;
    std::string error;
  };
  using KeySource = std::function<void(const std::string& profile, const std::string& fingerprint,
                                       std::function<void(KeyLookup)> done)>;

  RotateHooks(const std::map<std::string, ProfileConfig, std::less<>>& profiles, AuditLog& audit, Peer self,
              KeySource source);
  ~RotateHooks();

  RotateHooks(const RotateHooks&) = delete;
  RotateHooks& operator=(const RotateHooks&) = delete;

  // Counts each attempt into /v1/metrics from now on.
  void count_in(Metrics& metrics) { metrics_ = &metrics; }

  // `meta` is the profile's new key, just rotated; `grace_end` when the old key
  // stops working (0: rotated by hand, no grace period known). Does nothing for
  // a profile without on_rotate.
  void rotated(const ProfileMeta& meta, std::int64_t grace_end);

  // One entry per profile with on_rotate.
  void describe(std::vector<RotateHookState>& out);

  // Kills a hook still running and runs no more. Not from a hook's thread.
  void stop();

 private:
  struct State {
    ProfileMeta meta;
    std::int64_t grace_end = 0;
    std::int64_t give_up_at = 0;
    std::uint64_t generation = 0;
    int attempts = 0;
    std::int64_t last_run_at = 0;
    std::string result;
    std::string last_error;
    std::int64_t next_attempt_at = 0;
    bool gave_up = false;
    std::chrono::milliseconds backoff{0};
  };

  void attempt(const std::string& name, std::uint64_t generation);
  void run(const std::string& name, std::uint64_t generation, const Secret& key);
  void finish(const std::string& name, std::uint64_t generation, HookResult result, const std::string& status,
              const std::string& said);
  std::vector<std::string> environment(const ProfileMeta& meta, std::int64_t grace_end) const;

  std::map<std::string, std::vector<std::string>, std::less<>> commands_;  // profile -> on_rotate
  std::map<std::string, int, std::less<>> grace_hours_;  // for a rotation by hand: the configured grace
  AuditLog& audit_;
  const Peer self_;
  KeySource source_;
  Metrics* metrics_ = nullptr;
  // Test-only settings (KOSLI_CREDD_TEST_HOOK_*), else the defaults.
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds first_retry_;
  std::chrono::milliseconds max_retry_;
  std::optional<std::chrono::milliseconds> give_up_after_;

  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::map<std::string, State, std::less<>> states_;
  std::uint64_t generation_ = 0;
  Timers timers_;  // last: joined before the rest goes
};

}  // namespace kosli::daemon
