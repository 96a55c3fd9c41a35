// The daemon's API, independent of the transport: a parsed request in, a
// response out through a callback (which may run on the store's thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "daemon/metrics.hpp"
#include "daemon/store_worker.hpp"
#include "daemon/token_cache.hpp"
#include "proto/errors.hpp"

namespace kosli::daemon {

// How the requesting program was determined (best effort; the audit log says which).
enum class RequesterSource {
  peer,           // the connected process's own program
  client_parent,  // the peer is this installation's kosli-cred: the program that ran it
  client_exec,    // the peer is this installation's kosli-cred exec: the program it is about to run
};

// Who is asking: pid, uid and gid from SO_PEERCRED, programs from /proc.
struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string exe;        // the peer's program; empty when it cannot be known
  std::string requester;  // the requesting program (see requester_source); empty when unknown
  pid_t requester_pid = 0;
  RequesterSource requester_source = RequesterSource::peer;
  bool installed_client = false;  // exe is this installation's kosli-cred (compared by real path)
  // The connection, while it is open: where a guard decides, the peer is read
  // again for each request (daemon/peer_identity.hpp). -1 for no socket.
  int socket = -1;
};

struct Request {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;  // wiped by the router once parsed
  // The program `kosli-cred exec` is about to run (proto/routes.hpp's
  // kExecProgramHeader); believed only from this installation's kosli-cred.
  std::string exec_program;

  // Whether the body is declared JSON (application/json, any parameters).
  bool is_json() const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";  // always a constant
  std::string allow;       // for 405
  bool sensitive = false;  // holds a key: sent with no-store, wiped after sending
};

using Reply = std::function<void(Response)>;

Response error_response(ErrorCode code, std::string message);

class AuditLog;
class KeyLifecycle;
class Policy;

class Router {
 public:
  // Without a KeyLifecycle (no Kosli client), verify and rotate answer 501.
  // `metrics` counts what the router answers; the store's failures are counted
  // where the store is (MeteredStore), whoever calls it.
  Router(StoreWorker& worker, TokenCache& cache, const Policy& policy, AuditLog& audit, Metrics& metrics,
         KeyLifecycle* lifecycle = nullptr);

  // Answers exactly once through `reply`.
  void handle(Request request, const Peer& peer, Reply reply);

  // Records a connection the server refused before any request was read.
  void connection_refused(const Peer& peer, std::string_view why);

  // What GET /v1/metrics reports; the server counts connections into it.
  Metrics& metrics() { return metrics_; }

 private:
  void dispatch(const RouteResult& matched, Request& request, const Peer& peer, Reply reply);
  void health(Reply reply);
  void list_profiles(Reply reply);
  void get_profile(const std::string& name, Reply reply);
  void put_profile(const std::string& name, Request& request, const Peer& peer, Reply reply);
  void delete_profile(const std::string& name, const Peer& peer, Reply reply);
  void token(const std::string& name, const Peer& peer, Reply reply);
  void reject(const std::string& name, const Peer& peer, Reply reply);

  StoreWorker& worker_;
  TokenCache& cache_;
  const Policy& policy_;
  AuditLog& audit_;
  KeyLifecycle* const lifecycle_;
  Metrics& metrics_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace kosli::daemon
