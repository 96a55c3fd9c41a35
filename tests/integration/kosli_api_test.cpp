// Talking to Kosli, end to end: the real daemon and client against a test-only
// HTTPS stand-in for Kosli's API (tests/support/kosli_standin.py) with a CA made
// at test time. verify (valid, invalid, forbidden, certificate, refused,
// timeout, proxy, retries), rotate by hand and through the API (with a restart
// after it, and a keyring that fails right after Kosli answered), expiry
// warnings and refusals, and scheduled rotation.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/limits.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string rfc3339(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Waits for `condition` (checked every 100 ms) for at most `limit`.
bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

// A port on 127.0.0.1 where nothing listens.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A socket on 127.0.0.1 that accepts connections (the kernel completes them)
// but never says a word: a TLS handshake with it can only time out.
class SilentServer {
 public:
  SilentServer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// A stand-in for kosli-credd on a Unix socket that answers its one request with
// `body` after `delay`, as the daemon does when Kosli is slow to answer.
class SlowDaemon {
 public:
  SlowDaemon(const std::string& path, std::chrono::seconds delay, std::string body)
      : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    const bool listening = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 1) == 0;
    EXPECT_TRUE(listening) << path;
    thread_ = std::thread([this, delay, body = std::move(body)] {
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;  // closed unused
      char request[4096];
      [[maybe_unused]] const auto got = ::read(client, request, sizeof request);  // one small request
      std::this_thread::sleep_for(delay);  // the behaviour under test, not a wait for readiness
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] const auto sent = ::write(client, answer.data(), answer.size());
      ::close(client);
    });
  }
  ~SlowDaemon() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes an accept that never got a client
    thread_.join();
    ::close(fd_);
  }

 private:
  int fd_;
  std::thread thread_;
};

json key_entry(const std::string& key, const std::string& org = "acme", const std::string& key_id = "k1") {
  return {{"key", key}, {"org", org}, {"service_account", "ci"}, {"key_id", key_id}, {"expires_at", 0}};
}

class KosliApiTest : public ::testing::Test {
 protected:
  void SetUp() override { pki_ = make_test_pki(dir_.path()); }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string config_path() const { return dir_.path() + "/config.json"; }
  void write_config(const std::string& text) const { std::ofstream(config_path()) << text; }

  // Every daemon here ignores a proxy the environment may set, unless a test says otherwise.
  static std::vector<std::pair<std::string, std::string>> no_proxy(
      std::vector<std::pair<std::string, std::string>> env = {}) {
    env.insert(env.begin(), {{"HTTPS_PROXY", ""}, {"https_proxy", ""}, {"NO_PROXY", ""}, {"no_proxy", ""}});
    return env;
  }
  std::vector<std::string> memory_daemon_args() const { return {"--backend", "memory", "--ca-file", pki_.ca_cert}; }

  RunResult store(const std::string& profile, const std::string& key, const std::string& host,
                  std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", "acme", "--host", host};
    args.insert(args.end(), extra.begin(), extra.end());
    return cred(socket(), args, RunOptions{key + "\n"});
  }

  json state(const KosliStandIn& standin) const { return json::parse(standin.state(pki_.ca_cert)); }

  // The stand-in's requests whose path contains `part`.
  std::vector<json> requests(const KosliStandIn& standin, const std::string& method, const std::string& part) const {
    std::vector<json> out;
    const json now = state(standin);
    for (const auto& r : now["requests"]) {
      if (r["method"] == method && r["path"].get<std::string>().find(part) != std::string::npos) out.push_back(r);
    }
    return out;
  }

  // The key the stand-in accepts under `key_id`.
  std::string key_with_id(const KosliStandIn& standin, const std::string& key_id) const {
    const json now = state(standin);
    for (const auto& k : now["keys"]) {
      if (k["key_id"] == key_id) return k["key"];
    }
    return {};
  }

  json show(const std::string& profile) {
    const auto r = cred(socket(), {"show", "--profile", profile, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::string token(const std::string& profile) {
    const auto r = cred(socket(), {"token", "--profile", profile});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);
  }

  // Neither the daemon's log nor its audit log holds any of `keys`.
  void expect_no_keys_logged(const Daemon& daemon, const std::vector<std::string>& keys) const {
    for (const auto& key : keys) {
      if (key.empty()) continue;
      EXPECT_EQ(daemon.log().find(key), std::string::npos) << "the daemon's log holds a key";
      if (!daemon.audit_path().empty()) {
        EXPECT_EQ(daemon.audit_log().find(key), std::string::npos) << "the audit log holds a key";
      }
    }
  }

  TempDir dir_;
  TestPki pki_;
};

// ---- verify ----------------------------------------------------------------

TEST_F(KosliApiTest, VerifyTellsValidRejectedAndForbiddenApartAndRemembersIt) {
  const std::string good = unique_key(), unknown = unique_key(), other_org = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(good), key_entry(other_org, "other", "k9")}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-good", good, standin.url()).exit_code, 0);
  ASSERT_EQ(store("it-bad", unknown, standin.url()).exit_code, 0);
  ASSERT_EQ(store("it-other", other_org, standin.url()).exit_code, 0);

  const auto valid = cred(socket(), {"verify", "--profile", "it-good"});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_NE(valid.out.find("accepts"), std::string::npos) << valid.out;
  const auto valid_json = cred(socket(), {"verify", "--profile", "it-good", "--json"});
  EXPECT_EQ(valid_json.exit_code, 0);
  const auto v = json::parse(valid_json.out);
  EXPECT_EQ(v["valid"], true);
  EXPECT_EQ(v["result"], "valid");
  EXPECT_EQ(v["kosli_status"], 200);

  const auto rejected = cred(socket(), {"verify", "--profile", "it-bad"});
  EXPECT_EQ(rejected.exit_code, 7) << rejected.err;
  EXPECT_TRUE(rejected.out.empty()) << rejected.out;
  EXPECT_NE(rejected.err.find("rejected"), std::string::npos) << rejected.err;
  EXPECT_NE(rejected.err.find("401"), std::string::npos) << rejected.err;
  const auto rejected_json = cred(socket(), {"verify", "--profile", "it-bad", "--json"});
  EXPECT_EQ(rejected_json.exit_code, 7);
  EXPECT_EQ(json::parse(rejected_json.out)["valid"], false);

  const auto forbidden = cred(socket(), {"verify", "--profile", "it-other"});
  EXPECT_NE(forbidden.exit_code, 0);
  EXPECT_NE(forbidden.exit_code, 7) << "a valid key is not a rejected key";
  EXPECT_NE(forbidden.err.find("403"), std::string::npos) << forbidden.err;
  EXPECT_NE(forbidden.err.find("no access to org 'acme'"), std::string::npos) << forbidden.err;

  // The result and its time are kept with the profile.
  const auto shown_good = show("it-good");
  EXPECT_EQ(shown_good["last_verify_result"], "valid");
  ASSERT_TRUE(shown_good["last_verified_at"].is_string()) << shown_good.dump();
  EXPECT_EQ(show("it-bad")["last_verify_result"], "invalid");
  EXPECT_EQ(show("it-other")["last_verify_result"], "forbidden");
  EXPECT_NE(cred(socket(), {"show", "--profile", "it-good"}).out.find("last verified"), std::string::npos);

  // Kosli was asked with the bearer key, at the environments endpoint of the profile's org.
  const auto asked = requests(standin, "GET", "/api/v2/environments/acme");
  ASSERT_EQ(asked.size(), 5u);
  EXPECT_EQ(asked[0]["key_id"], "k1");

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "verify", "valid"), 2u);
  EXPECT_EQ(count_records(records, "verify", "invalid"), 2u);
  EXPECT_EQ(count_records(records, "verify", "forbidden"), 1u);
  expect_no_keys_logged(daemon, {good, unknown, other_org});
}

TEST_F(KosliApiTest, VerifyWithoutTheCaFailsOnTheCertificateNotOnTheKey) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}}.dump());
  {
    Daemon daemon(socket(), {"--backend", "memory"}, no_proxy({{"SSL_CERT_FILE", "/nonexistent"}}));
    ASSERT_EQ(store("it-tls", key, standin.url()).exit_code, 0);
    const auto r = cred(socket(), {"verify", "--profile", "it-tls"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.exit_code, 7) << "a TLS failure says nothing about the key";
    EXPECT_NE(r.err.find(standin.url()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;
    EXPECT_TRUE(show("it-tls")["last_verify_result"].is_null()) << "no answer from Kosli is no result";
    EXPECT_TRUE(requests(standin, "GET", "/api/v2/").empty()) << "nothing may be sent over an untrusted connection";
  }
  {
    // SSL_CERT_FILE is honoured: the same CA, given the system's way.
    Daemon daemon(socket(), {"--backend", "memory"}, no_proxy({{"SSL_CERT_FILE", pki_.ca_cert}}));
    ASSERT_EQ(store("it-tls", key, standin.url()).exit_code, 0);
    const auto r = cred(socket(), {"verify", "--profile", "it-tls"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

TEST_F(KosliApiTest, VerifyChecksTheCertificateIsForTheHost) {
  // A certificate from the trusted CA, but for another address.
  TempDir other;
  const auto wrong_name = make_test_pki(other.path(), "IP:127.0.0.2,DNS:kosli.invalid");
  const std::string key = unique_key();
  KosliStandIn standin(wrong_name, json{{"keys", {key_entry(key)}}}.dump());
  Daemon daemon(socket(), {"--backend", "memory", "--ca-file", wrong_name.ca_cert}, no_proxy());
  ASSERT_EQ(store("it-name", key, standin.url()).exit_code, 0);
  const auto r = cred(socket(), {"verify", "--profile", "it-name"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mismatch"), std::string::npos) << r.err;
}

TEST_F(KosliApiTest, SniNamesTheHostAndPlainHttpIsForLoopbackOnly) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-name", key, "https://localhost:" + std::to_string(standin.port())).exit_code, 0);
  ASSERT_EQ(store("it-ip", key, standin.url()).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"verify", "--profile", "it-name"}).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"verify", "--profile", "it-ip"}).exit_code, 0);
  // A name is sent as SNI; an address never is (RFC 6066). (The last entry is
  // the test's own request for the state.)
  const auto sni = state(standin)["sni"];
  ASSERT_EQ(sni.size(), 3u) << sni.dump();
  EXPECT_EQ(sni[0], "localhost");
  EXPECT_TRUE(sni[1].is_null()) << sni.dump();

  KosliStandIn plain(pki_, json{{"keys", {key_entry(key)}}}.dump(), /*plain=*/true);
  ASSERT_EQ(plain.url().rfind("http://127.0.0.1:", 0), 0u);
  ASSERT_EQ(store("it-plain", key, plain.url()).exit_code, 0);
  EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-plain"}).exit_code, 0);
  const auto remote = store("it-remote", key, "http://kosli.example.com");
  EXPECT_EQ(remote.exit_code, 2);
  EXPECT_NE(remote.err.find("loopback"), std::string::npos) << remote.err;
}

TEST_F(KosliApiTest, VerifyOfAnUnreachableHostSaysWhyWithin15Seconds) {
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const std::string refused_host = "https://127.0.0.1:" + std::to_string(closed_port());
  SilentServer silent;
  const std::string silent_host = "https://127.0.0.1:" + std::to_string(silent.port());
  ASSERT_EQ(store("it-refused", unique_key(), refused_host).exit_code, 0);
  ASSERT_EQ(store("it-silent", unique_key(), silent_host).exit_code, 0);

  auto started = Clock::now();
  const auto refused = cred(socket(), {"verify", "--profile", "it-refused"});
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(15));
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find(refused_host), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("refused"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("tried 3 times"), std::string::npos) << "a failed connect is retried: " << refused.err;

  started = Clock::now();
  const auto silent_result = cred(socket(), {"verify", "--profile", "it-silent"});
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(15));
  EXPECT_EQ(silent_result.exit_code, 1) << silent_result.err;
  EXPECT_NE(silent_result.err.find(silent_host), std::string::npos) << silent_result.err;
  EXPECT_NE(silent_result.err.find("timeout"), std::string::npos) << silent_result.err;

  // Meanwhile tokens kept flowing: a slow Kosli never holds up token service.
  std::future<RunResult> slow = std::async(std::launch::async, [&] {
    return cred(socket(), {"verify", "--profile", "it-silent"});
  });
  started = Clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cred(socket(), {"token", "--profile", "it-refused"}).exit_code, 0);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3)) << "tokens waited for Kosli";
  EXPECT_EQ(slow.get().exit_code, 1);
}

// The daemon answers a verify only once Kosli has (up to 12 s, retries included)
// and the keyring has: the client waits longer for it than for other requests.
TEST_F(KosliApiTest, TheClientWaitsForAVerifyLongerThanForOtherRequests) {
  const auto delay = limits::kClientRequestDeadline + std::chrono::seconds(1);
  const std::string slow_socket = dir_.path() + "/slow-daemon.sock";
  SlowDaemon slow(slow_socket, delay,
                  R"({"result":"valid","message":"Kosli accepts the key","fingerprint":"sha256:ab","org":"acme",)"
                  R"("host":"https://app.kosli.com"})");
  const auto started = Clock::now();
  const auto verify = cred(slow_socket, {"verify", "--profile", "it-slow"});
  EXPECT_GE(Clock::now() - started, delay);
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("Kosli accepts the key"), std::string::npos) << verify.out;
}

TEST_F(KosliApiTest, RetriesAreBoundedAndOnlyWhereSafe) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}, {"fail_next", {503, 502}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-retry", key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  // Two 5xx answers, then the real one: a check is safe to repeat.
  const auto verified = cred(socket(), {"verify", "--profile", "it-retry"});
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  EXPECT_EQ(requests(standin, "GET", "/api/v2/environments/acme").size(), 3u);

  // Never more than three attempts.
  standin.control(pki_.ca_cert, "set", R"({"fail_next": [500, 500, 500, 500]})");
  const auto failed = cred(socket(), {"verify", "--profile", "it-retry"});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_NE(failed.err.find("500"), std::string::npos) << failed.err;
  EXPECT_EQ(requests(standin, "GET", "/api/v2/environments/acme").size(), 6u);

  // A rotation that got a 500 may have happened: it is not repeated, and the user is told.
  standin.control(pki_.ca_cert, "set", R"({"fail_next": [500]})");
  const auto rotate = cred(socket(), {"rotate", "--profile", "it-retry", "--via-api"});
  EXPECT_EQ(rotate.exit_code, 1) << rotate.err;
  EXPECT_NE(rotate.err.find("may have rotated"), std::string::npos) << rotate.err;
  EXPECT_EQ(requests(standin, "POST", "/rotate").size(), 1u);
  EXPECT_EQ(token("it-retry"), key) << "a failed rotation changes nothing";
}

TEST_F(KosliApiTest, HttpsProxyIsUsedThroughConnectUnlessNoProxySaysOtherwise) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}}.dump());
  const std::string target = "127.0.0.1:" + std::to_string(standin.port());
  {
    ConnectProxy proxy;
    Daemon daemon(socket(), memory_daemon_args(), no_proxy({{"HTTPS_PROXY", proxy.url()}}));
    ASSERT_EQ(store("it-proxy", key, standin.url()).exit_code, 0);
    const auto r = cred(socket(), {"verify", "--profile", "it-proxy"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(proxy.targets(), target + "\n");
  }
  {
    ConnectProxy proxy;
    Daemon daemon(socket(), memory_daemon_args(),
                  no_proxy({{"https_proxy", proxy.url()}, {"NO_PROXY", "example.com, 127.0.0.1"}}));
    ASSERT_EQ(store("it-proxy", key, standin.url()).exit_code, 0);
    EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-proxy"}).exit_code, 0);
    EXPECT_EQ(proxy.targets(), "") << "NO_PROXY names the host";
  }
  {
    ConnectProxy proxy(/*deny=*/true);
    Daemon daemon(socket(), memory_daemon_args(), no_proxy({{"HTTPS_PROXY", proxy.url()}}));
    ASSERT_EQ(store("it-proxy", key, standin.url()).exit_code, 0);
    const auto r = cred(socket(), {"verify", "--profile", "it-proxy"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("proxy"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("403"), std::string::npos) << r.err;
  }
}

// ---- rotate by hand ------------------------------------------------------------

TEST_F(KosliApiTest, RotateByHandStoresANewKeyOnlyWhenKosliAcceptsIt) {
  const std::string old_key = unique_key(), new_key = unique_key(), bogus = unique_key(), offline = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key), key_entry(new_key, "acme", "k2")}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-hand", old_key, standin.url()).exit_code, 0);
  const std::string old_fingerprint = show("it-hand")["fingerprint"];

  // A key Kosli refuses is not stored; the old one stays.
  const auto refused = cred(socket(), {"rotate", "--profile", "it-hand"}, RunOptions{bogus + "\n"});
  EXPECT_EQ(refused.exit_code, 7) << refused.err;
  EXPECT_NE(refused.err.find("was kept"), std::string::npos) << refused.err;
  EXPECT_EQ(token("it-hand"), old_key);
  EXPECT_EQ(show("it-hand")["fingerprint"], old_fingerprint);

  // A key Kosli accepts replaces it, cache included.
  const auto accepted =
      cred(socket(), {"rotate", "--profile", "it-hand", "--key-id", "k2"}, RunOptions{new_key + "\n"});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err;
  EXPECT_NE(accepted.out.find("checked with Kosli"), std::string::npos) << accepted.out;
  EXPECT_EQ(token("it-hand"), new_key);
  const auto shown = show("it-hand");
  EXPECT_NE(shown["fingerprint"], old_fingerprint);
  EXPECT_EQ(shown["key_id"], "k2");
  EXPECT_EQ(shown["last_verify_result"], "valid");
  const auto checked = requests(standin, "GET", "/api/v2/environments/acme");
  ASSERT_EQ(checked.size(), 2u);
  EXPECT_EQ(checked[1]["key_id"], "k2") << "the new key itself was checked";

  // --no-verify: stored without asking Kosli, with a warning.
  const auto unchecked = cred(socket(), {"rotate", "--profile", "it-hand", "--no-verify"}, RunOptions{offline + "\n"});
  EXPECT_EQ(unchecked.exit_code, 0) << unchecked.err;
  EXPECT_NE(unchecked.err.find("--no-verify"), std::string::npos) << unchecked.err;
  EXPECT_EQ(token("it-hand"), offline);
  EXPECT_EQ(requests(standin, "GET", "/api/v2/").size(), 2u) << "--no-verify asked Kosli";

  // A key is never taken as an argument.
  EXPECT_EQ(cred(socket(), {"rotate", "--profile", "it-hand", new_key}).exit_code, 2);

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "rotate", "refused"), 1u);
  EXPECT_EQ(count_records(records, "rotate", "ok"), 2u);
  expect_no_keys_logged(daemon, {old_key, new_key, bogus, offline});
}

// ---- rotate through Kosli's API --------------------------------------------------

TEST_F(KosliApiTest, RotateViaApiNeedsAServiceAccountKeyThatKosliAccepts) {
  const std::string key = unique_key(), revoked = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-personal", key, standin.url(), {"--kind", "personal"}).exit_code, 0);
  ASSERT_EQ(store("it-noid", key, standin.url()).exit_code, 0);
  ASSERT_EQ(store("it-revoked", revoked, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  const auto personal = cred(socket(), {"rotate", "--profile", "it-personal", "--via-api"});
  EXPECT_EQ(personal.exit_code, 1);
  EXPECT_NE(personal.err.find("personal key"), std::string::npos) << personal.err;
  const auto no_id = cred(socket(), {"rotate", "--profile", "it-noid", "--via-api"});
  EXPECT_EQ(no_id.exit_code, 1);
  EXPECT_NE(no_id.err.find("--service-account"), std::string::npos) << no_id.err;
  const auto rejected = cred(socket(), {"rotate", "--profile", "it-revoked", "--via-api"});
  EXPECT_EQ(rejected.exit_code, 7) << rejected.err;
  EXPECT_NE(rejected.err.find("401"), std::string::npos) << rejected.err;
  EXPECT_EQ(token("it-revoked"), revoked);
  EXPECT_EQ(cred(socket(), {"rotate", "--profile", "it-noid", "--via-api", "--grace-hours", "0"}).exit_code, 2);

  EXPECT_EQ(requests(standin, "POST", "/rotate").size(), 1u) << "only the revoked key's rotation reached Kosli";
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "rotate", "refused"), 3u);
}

TEST_F(KosliApiTest, RotateViaApiReadsTheApiKeyFieldToo) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}, {"key_field", "api_key"}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-field", key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  const auto r = cred(socket(), {"rotate", "--profile", "it-field", "--via-api"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string new_id = show("it-field")["key_id"];
  EXPECT_NE(new_id, "k1");
  EXPECT_EQ(token("it-field"), key_with_id(standin, new_id));
}

// Keyring tests run only inside scripts/test's sandbox: never the user's own keyring.
class KosliKeyringTest : public KosliApiTest {
 protected:
  void SetUp() override {
    if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
    KosliApiTest::SetUp();
  }
};

TEST_F(KosliKeyringTest, RotateViaApiEndToEndAndAfterARestart) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::vector<std::string> args = {"--backend", "secret-service", "--ca-file", pki_.ca_cert};
  std::string new_key, new_id;
  {
    Daemon daemon(socket(), args, no_proxy());
    ASSERT_EQ(store("it-api", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
    ASSERT_EQ(token("it-api"), old_key);  // now cached: rotation must replace the cached copy too
    const auto expires = now_s() + 90 * 86400;

    const auto r = cred(socket(), {"rotate", "--profile", "it-api", "--via-api", "--grace-hours", "2",
                                   "--expires-at", rfc3339(expires)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Rotated profile 'it-api' through Kosli"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("old key keeps working until"), std::string::npos) << r.out;

    // Kosli got the documented call, made with the old key.
    const auto rotations = requests(standin, "POST", "/rotate");
    ASSERT_EQ(rotations.size(), 1u);
    EXPECT_EQ(rotations[0]["path"], "/api/v2/service-accounts/acme/ci/api-keys/k1/rotate");
    EXPECT_EQ(rotations[0]["body"]["grace_period_hours"], 2);
    EXPECT_EQ(rotations[0]["body"]["expires_at"], expires);
    EXPECT_EQ(rotations[0]["key_id"], "k1");
    // The old key has its grace period; the new one is what the profile serves now.
    const auto keys = state(standin)["keys"];
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_GT(keys[0]["grace_until"].get<std::int64_t>(), now_s() + 3600);
    new_key = keys[1]["key"];
    new_id = keys[1]["key_id"];
    EXPECT_EQ(token("it-api"), new_key);
    const auto shown = show("it-api");
    EXPECT_EQ(shown["key_id"], new_id);
    EXPECT_EQ(shown["expires_at"], rfc3339(expires));
    EXPECT_EQ(shown["last_verify_result"], "valid") << "the new key was checked before it was stored";
    EXPECT_EQ(requests(standin, "GET", "/api/v2/environments/acme").back()["key_id"], new_id);

    const auto records = audit_records(daemon.audit_log());
    ASSERT_EQ(count_records(records, "rotate", "ok"), 1u);
    for (const auto& rec : records) {
      if (rec["event"] == "rotate") {
        EXPECT_NE(rec["detail"].get<std::string>().find(new_id), std::string::npos) << rec.dump();
      }
    }
    EXPECT_EQ(daemon.stop(), 0);
    expect_no_keys_logged(daemon, {old_key, new_key});
  }
  {
    // A new daemon reads the keyring: the new key, with its metadata.
    Daemon daemon(socket(), args, no_proxy());
    EXPECT_EQ(token("it-api"), new_key);
    EXPECT_EQ(show("it-api")["key_id"], new_id);
    EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-api"}).exit_code, 0);
    EXPECT_EQ(cred(socket(), {"erase", "--profile", "it-api"}).exit_code, 0);
  }
}

TEST_F(KosliApiTest, ANewKeyTheKeyringCannotTakeIsHeldServedRetriedAndNeverLost) {
  PrivateKeyring keyring;  // this test's own, so it can hang it
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}, {"hold_rotate", true}}.dump());
  const std::vector<std::string> args = {"--backend", "secret-service", "--ca-file", pki_.ca_cert};
  std::string new_key;
  {
    Daemon daemon(socket(), args, no_proxy({keyring.bus_env()}));
    ASSERT_EQ(store("it-held", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

    std::future<RunResult> rotation = std::async(std::launch::async, [&] {
      return cred(socket(), {"rotate", "--profile", "it-held", "--via-api"});
    });
    // Kosli has the request: hang the keyring, then let Kosli answer.
    ASSERT_TRUE(eventually([&] { return state(standin)["held"] == 1; }, std::chrono::seconds(10)));
    keyring.pause();
    standin.control(pki_.ca_cert, "release");
    const auto r = rotation.get();
    EXPECT_EQ(r.exit_code, 6) << r.err;
    EXPECT_NE(r.err.find("could not be stored in the keyring"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("holds the new key in memory"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kosli-cred token --profile it-held | kosli-cred store"), std::string::npos) << r.err;

    // While the keyring hangs, the new key is what tokens give.
    new_key = state(standin)["keys"][1]["key"];
    EXPECT_EQ(token("it-held"), new_key);
    EXPECT_NE(daemon.log().find("NEW KEY NOT IN THE KEYRING"), std::string::npos) << daemon.log();

    // Once the keyring answers again, the daemon stores it by itself.
    keyring.resume();
    ASSERT_TRUE(eventually(
        [&] {
          const auto status = cred(socket(), {"status", "--json"});
          const auto j = json::parse(status.out, nullptr, false);
          return status.exit_code == 0 && j.is_object() && j["waiting_keys"].empty() && j["profiles"] == 1;
        },
        std::chrono::seconds(60)))
        << daemon.log();
    EXPECT_EQ(daemon.stop(), 0);
    expect_no_keys_logged(daemon, {old_key, new_key});
    EXPECT_EQ(daemon.log().find("LOST"), std::string::npos) << daemon.log();
  }
  {
    Daemon daemon(socket(), args, no_proxy({keyring.bus_env()}));
    EXPECT_EQ(token("it-held"), new_key) << "the new key did not reach the keyring";
  }
}

// ---- expiry ------------------------------------------------------------------------

TEST_F(KosliApiTest, ExpiringKeysWarnOnStderrAndExpiredKeysGetNoToken) {
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const std::string soon = unique_key(), later = unique_key(), expired = unique_key();
  const std::string host = "https://app.kosli.com";
  ASSERT_EQ(store("it-soon", soon, host, {"--expires-at", rfc3339(now_s() + 3 * 86400 - 60)}).exit_code, 0);
  ASSERT_EQ(store("it-later", later, host, {"--expires-at", rfc3339(now_s() + 30 * 86400 - 60)}).exit_code, 0);
  ASSERT_EQ(store("it-expired", expired, host, {"--expires-at", rfc3339(now_s() - 3600)}).exit_code, 0);

  // Within the window: the token on stdout, one warning line on stderr.
  for (int round = 0; round < 2; ++round) {  // from the store, then from the cache
    const auto t = cred(socket(), {"token", "--profile", "it-soon"});
    EXPECT_EQ(t.exit_code, 0);
    EXPECT_EQ(t.out, soon + "\n");
    EXPECT_EQ(std::count(t.err.begin(), t.err.end(), '\n'), 1) << t.err;
    EXPECT_NE(t.err.find("warning: the key of profile 'it-soon' expires in 2 days"), std::string::npos) << t.err;
  }
  const auto h = cred(socket(), {"header", "--profile", "it-soon"});
  EXPECT_EQ(h.out, "Authorization: Bearer " + soon + "\n");
  EXPECT_EQ(std::count(h.err.begin(), h.err.end(), '\n'), 1) << h.err;
  const auto e = cred(socket(), {"exec", "--profile", "it-soon", "--", "sh", "-c", "printf %s \"$KOSLI_API_TOKEN\""});
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_EQ(e.out, soon);
  EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;

  // Outside it: silence.
  const auto quiet = cred(socket(), {"token", "--profile", "it-later"});
  EXPECT_EQ(quiet.out, later + "\n");
  EXPECT_EQ(quiet.err, "");

  // Past it: no token at all.
  for (const std::vector<std::string>& args : {std::vector<std::string>{"token", "--profile", "it-expired"},
                                               {"token", "--profile", "it-expired", "--json"},
                                               {"header", "--profile", "it-expired"},
                                               {"exec", "--profile", "it-expired", "--", "true"}}) {
    const auto r = cred(socket(), args);
    EXPECT_EQ(r.exit_code, 7) << args[0] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << args[0];
    EXPECT_NE(r.err.find("expired at"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kosli-cred rotate --profile it-expired"), std::string::npos) << r.err;
  }

  // list and status show the days left.
  const auto list = cred(socket(), {"list"});
  EXPECT_NE(list.out.find("in 2 days"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("in 29 days"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("expired"), std::string::npos) << list.out;
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("profile 'it-soon': the key expires in 2 days"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("profile 'it-expired': the key expired"), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("it-later"), std::string::npos) << status.out;

  // The audit log records both.
  std::size_t warned = 0, refused = 0;
  for (const auto& r : audit_records(daemon.audit_log())) {
    if (r["event"] != "token") continue;
    const std::string detail = r.value("detail", "");
    warned += r["result"] == "issued" && r["profile"] == "it-soon" && detail.find("expires in 2 days") != std::string::npos;
    refused += r["result"] == "refused" && r["profile"] == "it-expired" && detail == "expired";
  }
  EXPECT_EQ(warned, 4u);
  EXPECT_EQ(refused, 4u);
  expect_no_keys_logged(daemon, {soon, later, expired});
}

TEST_F(KosliApiTest, TheWarningWindowIsConfigurable) {
  write_config(R"({"expiry_warning_days": 40})");
  Daemon daemon(socket(), {"--backend", "memory", "--config", config_path()}, no_proxy());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-window", key, "https://app.kosli.com", {"--expires-at", rfc3339(now_s() + 30 * 86400 - 60)}).exit_code,
            0);
  const auto t = cred(socket(), {"token", "--profile", "it-window"});
  EXPECT_EQ(t.out, key + "\n");
  EXPECT_NE(t.err.find("expires in 29 days"), std::string::npos) << t.err;
}

TEST_F(KosliApiTest, ConfigurationKeysForKosliAreCheckedByName) {
  struct Case {
    const char* text;
    const char* names;
  };
  for (const auto& c : {Case{R"({"expiry_warning_days": "7"})", "'expiry_warning_days'"},
                        Case{R"({"expiry_warning_days": -1})", "'expiry_warning_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_every_days": "90"}}})", "'profiles.ci.rotate_every_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_before_expiry_days": true}}})",
                             "'profiles.ci.rotate_before_expiry_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_grace_hours": 0}}})", "'profiles.ci.rotate_grace_hours'"},
                        Case{R"({"ca_file": 7})", "'ca_file'"}}) {
    write_config(c.text);
    const auto r = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
    EXPECT_EQ(r.exit_code, 1) << c.text;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << c.text << " -> " << r.err;
  }
  write_config(R"({"expiry_warning_days": 14, "profiles": {"ci": {"rotate_every_days": 90,
      "rotate_before_expiry_days": 7.5, "rotate_grace_hours": 48}}})");
  const auto good = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
  EXPECT_EQ(good.exit_code, 0) << good.err;

  // A CA bundle that cannot be read stops the daemon with its name.
  const auto bad_ca = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--ca-file",
                           dir_.path() + "/missing.pem"});
  EXPECT_EQ(bad_ca.exit_code, 1);
  EXPECT_NE(bad_ca.err.find("missing.pem"), std::string::npos) << bad_ca.err;
}

// ---- scheduled rotation ----------------------------------------------------------------

TEST_F(KosliApiTest, ScheduledRotationRotatesDueKeysAndReportsFailuresInStatus) {
  const std::string old_key = unique_key(), other = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  // About 3 s: short enough for a test, long enough to see the key before.
  write_config(R"({"profiles": {"it-sched": {"rotate_every_days": 0.00003, "rotate_grace_hours": 1},
                                "it-sched-bad": {"rotate_before_expiry_days": 7}}})");
  Daemon daemon(socket(), {"--backend", "memory", "--ca-file", pki_.ca_cert, "--config", config_path()}, no_proxy());
  ASSERT_EQ(store("it-sched", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  // Due at once (expires in 2 days), but without a key id Kosli cannot be asked.
  ASSERT_EQ(store("it-sched-bad", other, standin.url(), {"--expires-at", rfc3339(now_s() + 2 * 86400)}).exit_code, 0);
  EXPECT_EQ(token("it-sched"), old_key);

  // The daemon rotates by itself once the key is due.
  ASSERT_TRUE(eventually([&] { return show("it-sched")["key_id"] != "k1"; }, std::chrono::seconds(30)))
      << daemon.log();
  const auto rotations = requests(standin, "POST", "/rotate");
  ASSERT_GE(rotations.size(), 1u);
  EXPECT_EQ(rotations[0]["path"], "/api/v2/service-accounts/acme/ci/api-keys/k1/rotate");
  EXPECT_EQ(rotations[0]["body"]["grace_period_hours"], 1);
  const std::string served = token("it-sched");
  EXPECT_NE(served, old_key);
  EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-sched"}).exit_code, 0) << "the served key works";

  // Audited as the daemon's own doing.
  bool audited = false;
  for (const auto& r : audit_records(daemon.audit_log())) {
    if (r["event"] == "rotate" && r["result"] == "ok" && r["profile"] == "it-sched") {
      audited = true;
      EXPECT_EQ(r["pid"], daemon.pid());
      EXPECT_EQ(r["detail"].get<std::string>().rfind("scheduled", 0), 0u) << r.dump();
    }
  }
  EXPECT_TRUE(audited);

  // The failure is in status, with what to do.
  json failed;
  ASSERT_TRUE(eventually(
      [&] {
        const auto status = json::parse(cred(socket(), {"status", "--json"}).out, nullptr, false);
        for (const auto& r : status.value("rotation", json::array())) {
          if (r["profile"] == "it-sched-bad" && r["last_error"].is_string()) failed = r;
        }
        return !failed.is_null();
      },
      std::chrono::seconds(10)));
  EXPECT_NE(failed["last_error"].get<std::string>().find("--service-account"), std::string::npos) << failed.dump();
  EXPECT_TRUE(failed["next_attempt_at"].is_string());
  const auto text = cred(socket(), {"status"});
  EXPECT_NE(text.out.find("rotation:  profile 'it-sched-bad': the last scheduled rotation FAILED"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("rotation:  profile 'it-sched': next due at"), std::string::npos) << text.out;
  EXPECT_EQ(token("it-sched-bad"), other) << "a failed rotation keeps the key";

  std::vector<std::string> keys = {old_key, other};
  const json last = state(standin);
  for (const auto& k : last["keys"]) keys.push_back(k["key"]);
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, keys);
}

}  // namespace
}  // namespace kosli::test
