// Talks HTTP/1.1 to kosli-credd over its Unix socket. Beast stays in the .cpp.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proto/routes.hpp"

namespace kosli::client {

struct HttpResult {
  int status = 0;
  std::string body;  // wipe it when it may hold a key
};

class DaemonClient {
 public:
  // kept: one connection serves every request (commands that make several).
  // one_per_request: each request says "Connection: close" and gets its own, so
  // kosli-credd closes it as soon as it has answered, instead of waiting for
  // this process to exit (the commands that make one request).
  enum class Connections { kept, one_per_request };

  // Before it sends anything, it checks whom it talks to (proto/socket_path.hpp):
  // the socket's directory and the socket, then the connected daemon's uid
  // (SO_PEERCRED), each this user's or `daemon_uid` when the user named one
  // (--daemon-uid, KOSLI_CRED_DAEMON_UID). Anyone else gets nothing: exit 5.
  explicit DaemonClient(std::string socket_path, Connections connections = Connections::kept,
                        std::optional<uid_t> daemon_uid = std::nullopt);
  ~DaemonClient();

  const std::string& socket_path() const { return socket_path_; }

  // Names, with every request from now on, the program `kosli-cred exec` is
  // about to run (proto/routes.hpp's kExecProgramHeader).
  void set_exec_program(std::string path) { exec_program_ = std::move(path); }

  // Bounds everything from now on (connecting, and every request, whatever its
  // route's deadline) to `limit` in all: for callers that must not wait long,
  // such as git on its credential helper. A daemon that says it asks a person
  // (102, proto/routes.hpp's kAskingSecondsHeader) is waited for past it.
  void give_up_after(std::chrono::seconds limit);
  // Never start kosli-credd on demand, whatever KOSLI_CRED_AUTOSTART says: for
  // `status`, which reports on the daemon rather than making one.
  void never_start_daemon() { may_start_daemon_ = false; }

  // Sends one request on `route` (its method, its target with `profile` filled
  // in, its deadline: proto/routes.hpp) and returns a 2xx answer. An interim
  // 102 saying a person is asked extends the deadline to the question's time
  // (plus limits::kClientAskingMargin) and prints one line on stderr. Throws
  // CliError: exit 4 when the daemon cannot be reached or does not answer in
  // time, and the daemon's own error (mapped to an exit code) for a non-2xx
  // answer. `body`, when given, is wiped once sent. client/api.hpp has a
  // function for each route; commands use those.
  HttpResult request(Route route, std::string_view profile = {}, std::string* body = nullptr);

 private:
  class Connection;
  std::string socket_path_;
  Connections connections_;
  std::optional<uid_t> daemon_uid_;
  std::string exec_program_;
  std::optional<std::chrono::steady_clock::time_point> give_up_at_;
  bool may_start_daemon_ = true;
  std::unique_ptr<Connection> connection_;  // kept alive between requests, when they are
};

}  // namespace kosli::client
