// What GET /v1/metrics exposes, in Prometheus' text format: requests by route
// and status, how long answers took, cache hits and misses, store errors, open
// connections, tokens issued by profile, the audit log's health and the rotation
// hooks' attempts by result. Counting is lock-free except for tokens by profile
// (a short map lookup); nothing here ever holds a key.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/ops/hook_process.hpp"
#include "daemon/store/metered_store.hpp"
#include "proto/routes.hpp"

namespace kosli::daemon {

// The audit log's state, which the audit log keeps and the router hands in.
struct AuditLogGauges {
  bool ok = true;
  std::uint64_t records_failed = 0;
};

class Metrics final : public StoreErrorCounter {
 public:
  // The histogram's upper bounds, in seconds (the last bucket is +Inf).
  static constexpr std::array<double, 16> kDurationBuckets{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0};

  // One answered request: `route` is nullopt when none matched (404, 405, a bad
  // name) or the request was refused before routing (408, 413, 431, a connection
  // refused with 403 or 429); `took` runs from the parsed request to its answer.
  void request_answered(std::optional<Route> route, int status, std::chrono::nanoseconds took);
  void cache_hit() { cache_hits_.fetch_add(1, std::memory_order_relaxed); }
  void cache_miss() { cache_misses_.fetch_add(1, std::memory_order_relaxed); }
  void store_error(StoreError::Kind kind) override;
  void token_issued(std::string_view profile);
  // A token request for a profile with "confirm" decided: `how` is "remembered",
  // "askpass_yes", "askpass_no", "askpass_timeout", "askpass_unavailable", …
  void approval_decided(std::string_view how);
  void connection_opened() { open_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }
  // One attempt of a profile's on_rotate hook (not one cancelled by a stop).
  void rotate_hook_run(HookResult result);

  // The text exposition format, version 0.0.4.
  std::string exposition(const AuditLogGauges& audit_log = {}) const;
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  // Statuses the daemon answers with; anything else is counted as "other".
  static constexpr std::array<int, 24> kStatuses{200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 410, 413,
                                                 414, 415, 422, 429, 431, 500, 501, 502, 503, 504, 507, 0};
  // Every route, then "unmatched" (Route::metrics is the last of the enum).
  static constexpr std::size_t kRoutes = static_cast<std::size_t>(Route::metrics) + 2;

  using Counter = std::atomic<std::uint64_t>;

  std::array<std::array<Counter, kStatuses.size()>, kRoutes> requests_{};
  std::array<Counter, kDurationBuckets.size() + 1> duration_buckets_{};
  Counter duration_sum_ns_{0};
  Counter cache_hits_{0};
  Counter cache_misses_{0};
  std::array<Counter, 3> store_errors_{};  // by StoreError::Kind
  std::atomic<std::int64_t> open_connections_{0};
  std::array<Counter, 4> rotate_hook_runs_{};  // by HookResult: ok, failed, timed_out, not_started

  mutable std::mutex tokens_mutex_;
  std::map<std::string, std::uint64_t, std::less<>> tokens_by_profile_;
  std::map<std::string, std::uint64_t, std::less<>> approvals_by_how_;  // under tokens_mutex_
};

}  // namespace kosli::daemon
