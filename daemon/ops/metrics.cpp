#include "daemon/ops/metrics.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace kosli::daemon {
namespace {

constexpr std::string_view kPrefix = "kosli_credd_";

std::string_view route_label(std::size_t index) {
  switch (static_cast<Route>(index)) {
    case Route::health: return "health";
    case Route::list_profiles: return "list_profiles";
    case Route::get_profile: return "get_profile";
    case Route::put_profile: return "put_profile";
    case Route::delete_profile: return "delete_profile";
    case Route::token: return "token";
    case Route::verify: return "verify";
    case Route::rotate: return "rotate";
    case Route::reject: return "reject";
    case Route::lock: return "lock";
    case Route::metrics: return "metrics";
  }
  return "unmatched";
}

std::string_view store_error_label(std::size_t kind) {
  switch (static_cast<StoreError::Kind>(kind)) {
    case StoreError::Kind::unavailable: return "unavailable";
    case StoreError::Kind::locked: return "locked";
    case StoreError::Kind::internal: return "internal";
  }
  return "unknown";
}

// A label value in the exposition format: backslash, quote and newline escaped.
std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Prometheus' canonical float text: 5e-05, 0.001, 2.5, +Inf.
std::string format_bound(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", seconds);
  return buf;
}

// The daemon's resident set, from /proc/self/statm (0 when it cannot be read).
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

class Writer {
 public:
  void header(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(kPrefix).append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(kPrefix).append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    out_.append(kPrefix).append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    out_.append(" ").append(std::to_string(value)).append("\n");
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    out_.append(kPrefix).append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    out_.append(" ").append(buf).append("\n");
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

void Metrics::request_answered(std::optional<Route> route, int status, std::chrono::nanoseconds took) {
  const std::size_t r = route ? static_cast<std::size_t>(*route) : kRoutes - 1;
  const auto s = static_cast<std::size_t>(std::find(kStatuses.begin(), kStatuses.end() - 1, status) -
                                          kStatuses.begin());
  requests_[r][s].fetch_add(1, std::memory_order_relaxed);

  const double seconds = std::chrono::duration<double>(took).count();
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kDurationBuckets.begin(), kDurationBuckets.end(), seconds) - kDurationBuckets.begin());
  duration_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  duration_sum_ns_.fetch_add(static_cast<std::uint64_t>(took.count()), std::memory_order_relaxed);
}

void Metrics::store_error(StoreError::Kind kind) {
  store_errors_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::token_issued(std::string_view profile) {
  std::lock_guard lock(tokens_mutex_);
  auto it = tokens_by_profile_.find(profile);
  if (it == tokens_by_profile_.end()) it = tokens_by_profile_.emplace(std::string(profile), 0).first;
  ++it->second;
}

void Metrics::rotate_hook_run(HookResult result) {
  const auto index = static_cast<std::size_t>(result);
  if (index < rotate_hook_runs_.size()) rotate_hook_runs_[index].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::approval_decided(std::string_view how) {
  std::lock_guard lock(tokens_mutex_);
  auto it = approvals_by_how_.find(how);
  if (it == approvals_by_how_.end()) it = approvals_by_how_.emplace(std::string(how), 0).first;
  ++it->second;
}

std::string Metrics::exposition(const AuditLogGauges& audit_log) const {
  Writer w;
  w.header("requests_total", "counter", "Requests answered, by route and HTTP status.");
  for (std::size_t r = 0; r < kRoutes; ++r) {
    for (std::size_t s = 0; s < kStatuses.size(); ++s) {
      const auto n = requests_[r][s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const std::string status = kStatuses[s] == 0 ? "other" : std::to_string(kStatuses[s]);
      w.sample("requests_total", "route=\"" + std::string(route_label(r)) + "\",status=\"" + status + "\"", n);
    }
  }

  w.header("request_duration_seconds", "histogram", "Time from a parsed request to its answer.");
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < duration_buckets_.size(); ++b) {
    cumulative += duration_buckets_[b].load(std::memory_order_relaxed);
    const std::string le = b < kDurationBuckets.size() ? format_bound(kDurationBuckets[b]) : "+Inf";
    w.sample("request_duration_seconds_bucket", "le=\"" + le + "\"", cumulative);
  }
  w.sample("request_duration_seconds_sum", "",
           static_cast<double>(duration_sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  w.sample("request_duration_seconds_count", "", cumulative);

  w.header("cache_hits_total", "counter", "Token requests answered from the in-memory cache.");
  w.sample("cache_hits_total", "", cache_hits_.load(std::memory_order_relaxed));
  w.header("cache_misses_total", "counter", "Token requests that read the key from the store.");
  w.sample("cache_misses_total", "", cache_misses_.load(std::memory_order_relaxed));

  w.header("store_errors_total", "counter",
           "Keyring calls that failed, by kind: for requests, verification and rotation alike.");
  for (std::size_t k = 0; k < store_errors_.size(); ++k) {
    w.sample("store_errors_total", "kind=\"" + std::string(store_error_label(k)) + "\"",
             store_errors_[k].load(std::memory_order_relaxed));
  }

  w.header("open_connections", "gauge", "Client connections open now.");
  w.sample("open_connections", "",
           static_cast<std::uint64_t>(std::max<std::int64_t>(0, open_connections_.load(std::memory_order_relaxed))));

  w.header("tokens_issued_total", "counter", "Tokens handed out, by profile.");
  {
    std::lock_guard lock(tokens_mutex_);
    for (const auto& [profile, n] : tokens_by_profile_) {
      w.sample("tokens_issued_total", "profile=\"" + escape_label(profile) + "\"", n);
    }
  }
  {
    std::lock_guard lock(tokens_mutex_);
    if (!approvals_by_how_.empty()) {
      w.header("approvals_total", "counter",
               "Token requests for profiles with confirm, by how they were decided (askpass_yes and remembered "
               "allow; the others deny).");
    }
    for (const auto& [how, n] : approvals_by_how_) w.sample("approvals_total", "decision=\"" + how + "\"", n);
  }

  w.header("audit_log_ok", "gauge", "1 while the audit log is written, 0 while its writes (or its opening) fail.");
  w.sample("audit_log_ok", "", static_cast<std::uint64_t>(audit_log.ok ? 1 : 0));
  w.header("audit_records_failed_total", "counter", "Audit records that could not be written.");
  w.sample("audit_records_failed_total", "", audit_log.records_failed);

  w.header("rotate_hook_runs_total", "counter", "Attempts of on_rotate hooks, by result.");
  for (std::size_t r = 0; r < rotate_hook_runs_.size(); ++r) {
    w.sample("rotate_hook_runs_total", "result=\"" + std::string(result_name(static_cast<HookResult>(r))) + "\"",
             rotate_hook_runs_[r].load(std::memory_order_relaxed));
  }

  w.header("resident_memory_bytes", "gauge", "The daemon's resident set size.");
  w.sample("resident_memory_bytes", "", resident_bytes());
  return w.take();
}

}  // namespace kosli::daemon
