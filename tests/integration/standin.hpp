// The test-only Kosli API stand-in (tests/support/kosli_standin.py) and the
// throw-away certificate authority it serves with.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/harness.hpp"

namespace kosli::test {

// Starts `argv` in the background: `input` on its stdin (then closed), its
// stdout on `stdout_fd` (read it for a readiness line; -1 on entry: stdout goes
// to the log too), stderr appended to `log` (or /dev/null).
pid_t spawn_background(std::vector<std::string> argv, const std::vector<std::pair<std::string, std::string>>& env,
                       const std::string& input, const std::string& log, int& stdout_fd);
// The first line on `fd` (without its newline), waiting at most `timeout`; closes `fd`.
std::string first_line(int fd, std::chrono::milliseconds timeout);
// SIGTERM (after SIGCONT), then waits; sets `pid` to -1.
void stop_process(pid_t& pid);

// A CA and a server certificate for `names` (by default 127.0.0.1 and
// localhost), made with openssl.
struct TestPki {
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
};
TestPki make_test_pki(const std::string& dir, const std::string& names = "IP:127.0.0.1,DNS:localhost");

class KosliStandIn {
 public:
  // `state_json`: the keys it accepts (see kosli_standin.py). Waits for its
  // "ready <port>" line. `plain`: plain HTTP instead of HTTPS.
  KosliStandIn(const TestPki& pki, const std::string& state_json, bool plain = false);
  ~KosliStandIn();

  KosliStandIn(const KosliStandIn&) = delete;
  KosliStandIn& operator=(const KosliStandIn&) = delete;

  int port() const { return port_; }
  // "https://127.0.0.1:<port>" ("http://…" when plain)
  std::string url() const { return (plain_ ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port_); }
  // What it holds now (keys, requests seen), as JSON text.
  std::string state(const std::string& ca_cert) const;
  // POSTs a JSON body to one of its /_standin/ routes ("set", "release").
  void control(const std::string& ca_cert, const std::string& route, const std::string& body = "{}") const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool plain_ = false;
};

// A CONNECT-only HTTP proxy (tests/support/connect_proxy.py) that writes each
// CONNECT target to a log; with `deny` it answers 403 instead of tunnelling.
class ConnectProxy {
 public:
  explicit ConnectProxy(bool deny = false);
  ~ConnectProxy();

  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The CONNECT targets seen so far, one a line.
  std::string targets() const { return read_file(log_); }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// A D-Bus session bus and an unlocked gnome-keyring of the test's own, so a test
// can make the keyring hang (pause) without touching the one other tests share.
class PrivateKeyring {
 public:
  PrivateKeyring();  // returns once org.freedesktop.secrets answers on the bus
  ~PrivateKeyring();

  PrivateKeyring(const PrivateKeyring&) = delete;
  PrivateKeyring& operator=(const PrivateKeyring&) = delete;

  // For the daemon's environment.
  std::pair<std::string, std::string> bus_env() const { return {"DBUS_SESSION_BUS_ADDRESS", address_}; }
  // SIGSTOP / SIGCONT the keyring: while paused every call to it hangs.
  void pause();
  void resume();

 private:
  TempDir dir_;
  std::string address_;
  pid_t bus_pid_ = -1;
  pid_t keyring_pid_ = -1;
};

}  // namespace kosli::test
