// The daemon's HTTPS client to Kosli, seen through verify and rotate: the CA
// and the certificate's host, SNI, plain HTTP for loopback only, unreachable
// and silent hosts, bounded retries only where safe, an HTTPS proxy.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class KosliHttpsTest : public KosliTest {};

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

TEST_F(KosliHttpsTest, VerifyWithoutTheCaFailsOnTheCertificateNotOnTheKey) {
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

TEST_F(KosliHttpsTest, VerifyChecksTheCertificateIsForTheHost) {
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

TEST_F(KosliHttpsTest, SniNamesTheHostAndPlainHttpIsForLoopbackOnly) {
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

TEST_F(KosliHttpsTest, VerifyOfAnUnreachableHostSaysWhyWithin15Seconds) {
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

TEST_F(KosliHttpsTest, RetriesAreBoundedAndOnlyWhereSafe) {
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

TEST_F(KosliHttpsTest, HttpsProxyIsUsedThroughConnectUnlessNoProxySaysOtherwise) {
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

}  // namespace
}  // namespace kosli::test
