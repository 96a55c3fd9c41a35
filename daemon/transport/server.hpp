// The HTTP/1.1 server on the Unix socket (Boost.Beast over Asio). The heavy
// headers stay in daemon/transport/'s .cpp files and private headers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string_view>
#include <memory>
#include <vector>

#include "daemon/api/messages.hpp"
#include "daemon/handlers/router.hpp"
#include "daemon/ops/metrics.hpp"

namespace kosli::daemon {

struct ServerOptions {
  std::vector<uid_t> allowed_uids;  // besides the daemon's own uid
  // Threads running the event loop. One: a request costs microseconds, and a
  // second thread only adds wake-ups between the two (keyring and Kosli calls
  // have threads of their own).
  std::size_t threads = 1;
  std::chrono::seconds housekeeping_interval{30};
  // Stop after this long with no open connection while `busy` (asked on a
  // timer, on an Asio thread) answers false; 0 s: never.
  std::chrono::seconds idle_exit{0};
  std::function<bool()> busy;
  // Stop when this process exits (a CI job's shell); 0: none.
  pid_t parent_pid = 0;
  // Runs on the event loop for each SIGHUP (logrotate's "reopen your log");
  // the server keeps serving.
  std::function<void()> on_hangup;
  // Records a connection refused before any request was read from it (the
  // audit log's "connect"); runs on the event loop.
  std::function<void(const Peer&, std::string_view why)> on_refused;
};

class Server {
 public:
  // Takes ownership of a listening socket descriptor. `router` answers each
  // request; `metrics` counts connections and the answers the server gives
  // itself (refusals, malformed requests).
  Server(int listen_fd, Router& router, Metrics& metrics, ServerOptions options);
  ~Server();

  // Serves until SIGTERM or SIGINT (SIGHUP runs on_hangup; or idle exit, or the parent's exit), then
  // stops accepting, lets requests in flight finish, and returns. `on_ready`
  // runs once the server accepts; `housekeeping` runs every
  // housekeeping_interval.
  void run(const std::function<void()>& on_ready, std::function<void()> housekeeping);

  // Runs `fn` on the event loop after the handlers already queued (from any
  // thread). While run() serves, it runs; after, it may not.
  void post(std::function<void()> fn);

  // Takes ownership of `fd` and runs `on_readable` on the event loop whenever
  // it can be read (before run(), from the thread that calls it).
  void watch_readable(int fd, std::function<void()> on_readable);

  // Connections open now (from any thread).
  std::size_t open_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kosli::daemon
