#include "daemon/keys/rotate_hooks.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include <spdlog/spdlog.h>

#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/metrics.hpp"
#include "proto/display.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using std::chrono::milliseconds;

// One attempt may run this long before its process group is killed.
constexpr milliseconds kHookTimeout{5 * 60 * 1000};
// A failed attempt is tried again after this long, doubling up to the maximum.
constexpr milliseconds kFirstHookRetry{30 * 1000};
constexpr milliseconds kMaxHookRetry{60 * 60 * 1000};
// Without a grace period (a rotation by hand), attempts go on this long at most
// unless the profile configures rotate_grace_hours: half of it.
constexpr std::int64_t kHourS = 3600;

// A test-only setting in milliseconds (tests shorten the timeout and the
// backoff); nullopt when unset or not a positive number.
std::optional<milliseconds> test_setting(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  char* end = nullptr;
  const long long ms = std::strtoll(value, &end, 10);
  if (*end != '\0' || ms <= 0) return std::nullopt;
  return milliseconds(ms);
}

std::string time_or_empty(std::int64_t t) { return t == 0 ? std::string() : format_rfc3339(t); }

}  // namespace

RotateHooks::RotateHooks(const std::map<std::string, ProfileConfig, std::less<>>& profiles, AuditLog& audit,
                         Peer self, KeySource source)
    : audit_(audit),
      self_(std::move(self)),
      source_(std::move(source)),
      timeout_(test_setting("KOSLI_CREDD_TEST_HOOK_TIMEOUT_MS").value_or(kHookTimeout)),
      first_retry_(test_setting("KOSLI_CREDD_TEST_HOOK_RETRY_MS").value_or(kFirstHookRetry)),
      max_retry_(std::max(first_retry_, kMaxHookRetry)),
      give_up_after_(test_setting("KOSLI_CREDD_TEST_HOOK_GIVE_UP_MS")) {
  for (const auto& [name, config] : profiles) {
    if (config.on_rotate.empty()) continue;
    commands_[name] = config.on_rotate;
    grace_hours_[name] = config.rotate_grace_hours;
  }
}

RotateHooks::~RotateHooks() { stop(); }

void RotateHooks::stop() {
  stopping_ = true;
  timers_.stop();
}

void RotateHooks::rotated(const ProfileMeta& meta, std::int64_t grace_end) {
  if (!commands_.contains(meta.name)) return;
  const auto now = now_s();
  const std::int64_t grace = grace_end > now ? grace_end - now : grace_hours_.at(meta.name) * kHourS;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    generation = ++generation_;
    State& state = states_[meta.name];
    state = State{};
    state.meta = meta;
    state.grace_end = grace_end;
    state.give_up_at = give_up_after_ ? now + std::max<std::int64_t>(1, give_up_after_->count() / 1000)
                                      : now + grace / 2;
    state.generation = generation;
    state.backoff = first_retry_;
  }
  attempt(meta.name, generation);
}

void RotateHooks::attempt(const std::string& name, std::uint64_t generation) {
  std::string fingerprint;
  {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(name);
    if (stopping_ || it == states_.end() || it->second.generation != generation) return;
    fingerprint = it->second.meta.fingerprint;
    it->second.next_attempt_at = 0;
  }
  source_(name, fingerprint, [this, name, generation](KeyLookup found) {
    if (!found.key && found.error.empty()) {
      std::lock_guard lock(mutex_);
      if (const auto it = states_.find(name); it != states_.end() && it->second.generation == generation) {
        spdlog::info("rotate hook: profile '{}' holds another key than the rotated one ({}) now; its hook is not run "
                     "again for that key", name, it->second.meta.fingerprint);
        it->second.result = "superseded";
      }
      return;
    }
    if (!found.key) {
      {
        std::lock_guard lock(mutex_);
        if (const auto it = states_.find(name); it != states_.end()) it->second.last_run_at = now_s();
      }
      return finish(name, generation, HookResult::not_started, "the key could not be read: " + found.error, {});
    }
    auto key = std::make_shared<Secret>(std::move(*found.key));
    timers_.after(milliseconds(0), [this, name, generation, key] { run(name, generation, *key); });
  });
}

std::vector<std::string> RotateHooks::environment(const ProfileMeta& meta, std::int64_t grace_end) const {
  auto env = inherited_environment();
  env.push_back("KOSLI_CRED_PROFILE=" + meta.name);
  env.push_back("KOSLI_ORG=" + meta.org);
  env.push_back("KOSLI_HOST=" + meta.host);
  env.push_back("KOSLI_KEY_ID=" + meta.key_id);
  env.push_back("KOSLI_KEY_FINGERPRINT=" + meta.fingerprint);
  env.push_back("KOSLI_KEY_EXPIRES_AT=" + time_or_empty(meta.expires_at));
  env.push_back("KOSLI_GRACE_PERIOD_EXPIRES_AT=" + time_or_empty(grace_end));
  return env;
}

void RotateHooks::run(const std::string& name, std::uint64_t generation, const Secret& key) {
  HookCommand command;
  {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(name);
    if (stopping_ || it == states_.end() || it->second.generation != generation) return;
    it->second.result = "running";
    it->second.last_run_at = now_s();
    command.argv = commands_.at(name);
    command.env = environment(it->second.meta, it->second.grace_end);
    command.timeout = timeout_;
  }
  const HookExit exit = run_hook(command, key.reveal(), stopping_);
  finish(name, generation, exit.result, exit.status, stderr_for_log(exit.stderr_tail, key.reveal()));
}

void RotateHooks::finish(const std::string& name, std::uint64_t generation, HookResult result,
                         const std::string& status, const std::string& said) {
  const std::string program = display_safe(commands_.at(name).front());
  const std::string on_stderr = said.empty() ? "" : "; the last line it wrote to stderr: " + said;
  if (result == HookResult::cancelled) {
    spdlog::warn("rotate hook: profile '{}': {} was {}", name, program, status);
    audit_.record(AuditRecord{"rotate_hook", name, "cancelled", status}, self_);
    return;
  }
  if (metrics_ != nullptr) metrics_->rotate_hook_run(result);
  const auto now = now_s();
  int attempts = 0;
  std::int64_t next = 0;
  std::string fingerprint, grace;
  std::chrono::milliseconds delay{0};
  bool superseded = false;
  {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(name);
    superseded = it == states_.end() || it->second.generation != generation;
  }
  if (superseded) {
    // A newer rotation of the profile took over while this attempt ran: recorded, nothing more.
    audit_.record(AuditRecord{"rotate_hook", name, result_name(result), "for a superseded key: " + status}, self_);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(name);
    if (it == states_.end() || it->second.generation != generation) return;
    State& state = it->second;
    attempts = ++state.attempts;
    state.result = std::string(result_name(result));
    state.last_error = result == HookResult::ok ? std::string() : status;
    fingerprint = state.meta.fingerprint;
    grace = state.grace_end != 0 ? format_rfc3339(state.grace_end) : std::string("its grace period ends");
    if (result != HookResult::ok) {
      delay = state.backoff;
      const auto delay_s = (delay.count() + 999) / 1000;
      if (now + delay_s <= state.give_up_at) {
        next = now + delay_s;
        state.next_attempt_at = next;
        state.backoff = std::min(state.backoff * 2, max_retry_);
      } else {
        state.gave_up = true;
        state.next_attempt_at = 0;
      }
    }
  }
  const std::string which = "attempt " + std::to_string(attempts) + " for " + fingerprint + ": ";
  if (result == HookResult::ok) {
    spdlog::info("rotate hook: profile '{}': {} published the new key ({}, attempt {}){}", name, program, fingerprint,
                 attempts, on_stderr);
    audit_.record(AuditRecord{"rotate_hook", name, "ok", which + status}, self_);
    return;
  }
  audit_.record(AuditRecord{"rotate_hook", name, result_name(result), which + status}, self_);
  if (next != 0) {
    spdlog::warn("rotate hook: profile '{}': {} {} ({}){}; trying again at {}", name, program, status,
                 which.substr(0, which.size() - 2), on_stderr, format_rfc3339(next));
    timers_.after(delay, [this, name, generation] { attempt(name, generation); });
    return;
  }
  std::string command;
  for (const auto& arg : commands_.at(name)) command += (command.empty() ? "" : " ") + display_safe(arg);
  spdlog::error("rotate hook: profile '{}': GAVE UP after {} attempts (the last: {}){}. kosli-credd holds and "
                "serves the new key ({}), but whatever {} publishes to does not have it: the old key stops working "
                "at {}. Publish the new key by hand before then: kosli-cred token --profile {} | tr -d '\\n' | {}",
                name, attempts, status, on_stderr, fingerprint, program, grace, name, command);
  audit_.record(AuditRecord{"rotate_hook", name, "given_up", "after " + std::to_string(attempts) + " attempts for " +
                                                                 fingerprint + ": " + status},
                self_);
}

void RotateHooks::describe(std::vector<RotateHookState>& out) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, command] : commands_) {
    RotateHookState shown{name, {}, {}, 0, 0, {}, 0, false};
    if (const auto it = states_.find(name); it != states_.end()) {
      const State& s = it->second;
      shown = RotateHookState{name, s.meta.fingerprint, s.result, s.last_run_at, s.attempts,
                              s.last_error, s.next_attempt_at, s.gave_up};
    }
    out.push_back(std::move(shown));
  }
}

}  // namespace kosli::daemon
