// The daemon's API, independent of the transport: a parsed request in, a
// response out through a callback (which may run on the store's thread).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "daemon/api/messages.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/ops/metrics.hpp"
#include "proto/errors.hpp"

namespace kosli {
struct HealthAnswer;
}

namespace kosli::daemon {

class Approvals;
class AuditLog;
class ImportWatch;
class KeyLifecycle;
class Policy;

class Router {
 public:
  // Without a KeyLifecycle (no Kosli client), verify and rotate answer 501.
  // `metrics` counts what the router answers; the store's failures are counted
  // where the store is (MeteredStore), whoever calls it.
  // Without Approvals, no token waits for one ("confirm" is not enforced).
  Router(StoreWorker& worker, TokenCache& cache, const Policy& policy, AuditLog& audit, Metrics& metrics,
         KeyLifecycle* lifecycle = nullptr, Approvals* approvals = nullptr);

  // Answers exactly once through `reply`.
  void handle(Request request, const Peer& peer, Reply reply);

  // Records a connection the server refused before any request was read.
  void connection_refused(const Peer& peer, std::string_view why);

  // A file the keys are imported from: health and metrics report on it.
  void report_import(ImportWatch* imports) { imports_ = imports; }

  // What GET /v1/metrics reports; the server counts connections into it.
  Metrics& metrics() { return metrics_; }

  // Before serving: `describe` adds its section to every health answer (on
  // the store's thread), as the session watch does.
  void add_to_health(std::function<void(HealthAnswer&)> describe) { health_sections_.push_back(std::move(describe)); }

 private:
  void dispatch(const RouteResult& matched, Request& request, const Peer& peer, Reply reply);
  void health(Reply reply);
  void list_profiles(Reply reply);
  void get_profile(const std::string& name, Reply reply);
  void put_profile(const std::string& name, Request& request, const Peer& peer, Reply reply);
  void delete_profile(const std::string& name, const Peer& peer, Reply reply);
  void token(const std::string& name, const Peer& peer, Reply reply);
  void reject(const std::string& name, const Peer& peer, Reply reply);
  // A token for a profile with "confirm" (handlers/approval.cpp): once approved,
  // token(). `interim` (may be null) is told when a person is being asked.
  void approved_token(const std::string& name, const Peer& peer, Interim* interim, Reply reply);
  // Verify and rotate (handlers/keys.cpp): the key service's results as answers.
  void verify(const std::string& name, const Peer& peer, Reply reply);
  void rotate(const std::string& name, Request& request, const Peer& peer, Reply reply);
  // A token for a key past its expires_at: audited and answered 410; whether it was.
  bool refused_expired(const std::string& name, const TokenInfo& info, const Peer& peer, const Reply& reply);
  // A token handed out: audited with `detail`, and counted.
  void issued(const std::string& name, std::string_view detail, const Peer& peer);

  StoreWorker& worker_;
  TokenCache& cache_;
  const Policy& policy_;
  AuditLog& audit_;
  KeyLifecycle* const lifecycle_;
  ImportWatch* imports_ = nullptr;
  Approvals* const approvals_;
  Metrics& metrics_;
  const std::chrono::steady_clock::time_point started_;
  std::vector<std::function<void(HealthAnswer&)>> health_sections_;
};

}  // namespace kosli::daemon
