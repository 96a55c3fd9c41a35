// kosli-cred verify, end to end: valid, rejected and forbidden keys told apart
// and remembered; the client's longer wait for a verify.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "proto/limits.hpp"
#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class VerifyTest : public KosliTest {};

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

TEST_F(VerifyTest, VerifyTellsValidRejectedAndForbiddenApartAndRemembersIt) {
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

// The daemon answers a verify only once Kosli has (up to 12 s, retries included)
// and the keyring has: the client waits longer for it than for other requests.
TEST_F(VerifyTest, TheClientWaitsForAVerifyLongerThanForOtherRequests) {
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

}  // namespace
}  // namespace kosli::test
