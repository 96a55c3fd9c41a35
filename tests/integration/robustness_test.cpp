// Whatever arrives on the socket, the daemon keeps serving its owner: every
// limit answers with its status and a JSON error, every bad input gets a clear
// 4xx (or, where HTTP framing itself is broken, a closed connection), a
// half-sent request is cut off, and hundreds of idle or stalled connections
// from one misbehaving process do not keep `kosli-cred token` waiting.
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/limits.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// How quickly the owner must be answered while the socket is under abuse.
constexpr milliseconds kOwnerAnswerBudget{2000};
// How many connections the misbehaving process holds open: more than the cap.
constexpr std::size_t kAbusiveConnections = 300;
static_assert(kAbusiveConnections > limits::kMaxOpenConnections);

std::string valid_put_body(const std::string& key) {
  return json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "service-account"}, {"api_key", key}}
      .dump();
}

class RobustnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.emplace(socket(), std::vector<std::string>{"--backend", "memory"});
    const auto stored = cred(socket(), {"store", "--profile", "it-robust", "--org", "acme"}, RunOptions{key_});
    ASSERT_EQ(stored.exit_code, 0) << stored.err;
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  // What a user sees afterwards: the daemon answers health and hands out the
  // token, within `budget`.
  void expect_still_serving(milliseconds budget = milliseconds(5000)) {
    const auto started = Clock::now();
    const auto token = cred(socket(), {"token", "--profile", "it-robust"});
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    EXPECT_EQ(token.exit_code, 0) << token.err;
    EXPECT_EQ(token.out, key_ + "\n");
    EXPECT_LE(took.count(), budget.count()) << "kosli-cred token took " << took.count() << " ms";
    const auto health = exchange(socket(), http_request("GET", "/v1/health"));
    ASSERT_TRUE(health.has_value()) << "GET /v1/health got no answer";
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(json::parse(health->body)["status"], "ok");
  }

  TempDir dir_;
  std::string key_ = unique_key();
  std::optional<Daemon> daemon_;
};

// --- Framing ------------------------------------------------------------------

// A request need not arrive in one piece: a body larger than the daemon's first
// read, a header and body written apart, a body trickling in. Each is stored
// whole, and the bytes that follow on the same connection are the next request.
TEST_F(RobustnessTest, ARequestArrivingInPiecesIsReadWhole) {
  const std::string long_key = "kosli_" + std::string(3000, 'k');  // a legal key, past the first 1 KiB read
  const std::string big = http_request("PUT", "/v1/profiles/it-pieces-big", valid_put_body(long_key));
  ASSERT_GT(big.size(), 2048u);
  const auto stored = exchange(socket(), big);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->status, 201) << stored->body;
  const auto token = cred(socket(), {"token", "--profile", "it-pieces-big"});
  EXPECT_EQ(token.out, long_key + "\n");

  // Header, then the body in two writes, then a second request on the same
  // connection: the body must not be cut at the first write, nor the second
  // request taken for part of it.
  const std::string body = valid_put_body("kosli_split_" + unique_key());
  std::string head = http_request("PUT", "/v1/profiles/it-pieces-split", body);
  head.resize(head.size() - body.size());
  head.replace(head.find("Connection: close\r\n"), 19, "");
  RawConnection c(socket());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(head));
  EXPECT_FALSE(c.response(milliseconds(200)).has_value()) << "answered before the body arrived";
  ASSERT_TRUE(c.send(body.substr(0, body.size() / 2)));
  EXPECT_FALSE(c.response(milliseconds(200)).has_value()) << "answered with half the body";
  ASSERT_TRUE(c.send(body.substr(body.size() / 2) + "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  const auto split = c.response(seconds(5));
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ(split->status, 201) << split->body;
  const auto next = c.response(seconds(5));
  ASSERT_TRUE(next.has_value()) << "the request after the body got no answer";
  EXPECT_EQ(next->status, 200) << next->body;
  EXPECT_EQ(json::parse(next->body)["status"], "ok");
  expect_still_serving();
}

// --- Limits -----------------------------------------------------------------

TEST_F(RobustnessTest, EachLimitAnswersWithItsStatusAndTheDaemonKeepsServing) {
  struct Case {
    const char* what;
    std::string request;
    int status;
    const char* code;
  };
  const std::string deep = std::string(limits::kMaxJsonDepth + 1, '[') + std::string(limits::kMaxJsonDepth + 1, ']');
  const std::vector<Case> cases = {
      {"headers over 8 KiB",
       "GET /v1/health HTTP/1.1\r\nX-Padding: " + std::string(limits::kMaxHeaderBytes, 'h') + "\r\n\r\n", 431,
       "headers_too_large"},
      // Only the header is sent: the declared length alone is refused, nothing is buffered.
      {"a body over 64 KiB",
       "PUT /v1/profiles/it-big HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(limits::kMaxBodyBytes + 1) + "\r\n\r\n",
       413, "payload_too_large"},
      {"a URL over the limit", http_request("GET", "/v1/profiles/" + std::string(limits::kMaxTargetBytes, 'u')), 414,
       "uri_too_long"},
      {"JSON nested too deep", http_request("PUT", "/v1/profiles/it-deep", deep), 400, "bad_request"},
  };
  for (const auto& c : cases) {
    const auto started = Clock::now();
    const auto answer = exchange(socket(), c.request);
    ASSERT_TRUE(answer.has_value()) << c.what << ": no answer";
    EXPECT_EQ(answer->status, c.status) << c.what << ": " << answer->body;
    EXPECT_EQ(answer->error_code(), c.code) << c.what << ": " << answer->body;
    EXPECT_FALSE(answer->error_message().empty()) << c.what;
    EXPECT_LT(Clock::now() - started, seconds(2)) << c.what << " was not refused at once";
  }
  expect_still_serving();
}

TEST_F(RobustnessTest, AHalfSentRequestIsCutOffAtTheReadDeadline) {
  // One peer stops halfway; another dribbles a byte a second, which must not
  // reset the deadline: both get 408 once the request deadline has passed.
  RawConnection stalled(socket()), dribbling(socket());
  ASSERT_TRUE(stalled.connected() && dribbling.connected());
  const auto started = Clock::now();
  ASSERT_TRUE(stalled.send("GET /v1/health HTTP/1.1\r\nHost: loc"));
  const std::string slow = "GET /v1/health HTTP/1.1\r\nX-Slow: " + std::string(64, 's');
  std::size_t sent = 0;
  std::optional<RawResponse> cut;
  while (!cut && sent < slow.size() && Clock::now() - started < limits::kRequestReadDeadline + seconds(5)) {
    dribbling.send(slow.substr(sent++, 1));
    cut = dribbling.response(milliseconds(1000));  // the pace of the dribble
  }
  ASSERT_TRUE(cut.has_value()) << "a request dribbled a byte a second was never cut off";
  EXPECT_EQ(cut->status, 408);
  EXPECT_EQ(cut->error_code(), "timeout");
  const auto dribble_cut_after = Clock::now() - started;
  EXPECT_GE(dribble_cut_after, limits::kRequestReadDeadline - seconds(1));
  EXPECT_LE(dribble_cut_after, limits::kRequestReadDeadline + seconds(3));

  const auto answer = stalled.response(seconds(5));
  ASSERT_TRUE(answer.has_value()) << "the stalled request got no answer";
  EXPECT_EQ(answer->status, 408);
  EXPECT_EQ(answer->error_code(), "timeout");
  EXPECT_TRUE(stalled.closed_within(seconds(2)));
  EXPECT_TRUE(dribbling.closed_within(seconds(2)));
  expect_still_serving();
}

// --- The connection cap -------------------------------------------------------

class ConnectionCapTest : public RobustnessTest {
 protected:
  void SetUp() override {
    // The test holds more descriptors than some default soft limits allow.
    rlimit files{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
    if (files.rlim_cur < 2 * kAbusiveConnections && files.rlim_max >= 2 * kAbusiveConnections) {
      files.rlim_cur = 2 * kAbusiveConnections;
      ::setrlimit(RLIMIT_NOFILE, &files);
    }
    RobustnessTest::SetUp();
  }

  // Opens kAbusiveConnections connections, each sent `first_bytes` (maybe none).
  std::vector<RawConnection> flood(const std::string& first_bytes) {
    std::vector<RawConnection> held;
    held.reserve(kAbusiveConnections);
    for (std::size_t i = 0; i < kAbusiveConnections; ++i) {
      held.emplace_back(socket());
      EXPECT_TRUE(held.back().connected()) << "connection " << i;
      if (!first_bytes.empty()) held.back().send(first_bytes);
    }
    return held;
  }
};

TEST_F(ConnectionCapTest, HundredsOfIdleConnectionsDoNotLockTheOwnerOut) {
  auto idle = flood("");
  expect_still_serving(kOwnerAnswerBudget);

  // The daemon made room by closing the connections that had idled longest;
  // the newest are still open.
  std::size_t closed = 0;
  for (auto& c : idle) closed += c.closed_within(milliseconds(0)) ? 1 : 0;
  EXPECT_GE(closed, kAbusiveConnections - limits::kMaxOpenConnections);
  EXPECT_TRUE(idle.front().closed_within(milliseconds(2000))) << "the oldest idle connection is still open";
  EXPECT_FALSE(idle.back().closed_within(milliseconds(0))) << "the newest idle connection was closed";

  // The newest connection still works: a request on it is answered.
  ASSERT_TRUE(idle.back().send("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto answer = idle.back().response(seconds(5));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200);
}

TEST_F(ConnectionCapTest, HundredsOfStalledRequestsDoNotLockTheOwnerOut) {
  // Slowloris: each connection sends half a request and stops.
  auto stalled = flood("GET /v1/health HTTP/1.1\r\nHost: ");
  expect_still_serving(kOwnerAnswerBudget);
  std::size_t closed = 0;
  for (auto& c : stalled) closed += c.closed_within(milliseconds(0)) ? 1 : 0;
  EXPECT_GE(closed, kAbusiveConnections - limits::kMaxOpenConnections);
}

// --- Bad input --------------------------------------------------------------

TEST_F(RobustnessTest, EveryBadInputGetsAClearErrorAndTheDaemonKeepsServing) {
  struct Case {
    const char* what;
    std::string request;
    int status;  // 0: the daemon may instead close without a word
    const char* code;
  };
  const auto put = [](const std::string& name, const std::string& body) {
    return http_request("PUT", "/v1/profiles/" + name, body);
  };
  const auto with = [](json body) { return body.dump(); };
  const json good = json::parse(valid_put_body("k-123"));
  auto but = [&](const char* field, json value) {
    json j = good;
    if (value.is_discarded()) {
      j.erase(field);
    } else {
      j[field] = std::move(value);
    }
    return j.dump();
  };

  const std::vector<Case> cases = {
      // The body.
      {"malformed JSON", put("it-bad", R"({"org": "acme",)"), 400, "bad_request"},
      {"a JSON array", put("it-bad", "[1,2,3]"), 400, "bad_request"},
      {"a JSON string", put("it-bad", R"("just a string")"), 400, "bad_request"},
      {"a missing field", put("it-bad", but("org", json::value_t::discarded)), 400, "bad_request"},
      {"a missing key", put("it-bad", but("api_key", json::value_t::discarded)), 400, "bad_request"},
      {"a number for a string", put("it-bad", but("org", 42)), 400, "bad_request"},
      {"an object for the key", put("it-bad", but("api_key", json::object())), 400, "bad_request"},
      {"an unknown field", put("it-bad", but("colour", "blue")), 400, "bad_request"},
      {"invalid UTF-8", put("it-bad", "{\"org\":\"ac\xff\xfeme\"}"), 400, "bad_request"},
      {"a NUL inside the key", put("it-bad", but("api_key", std::string("abc\0def", 7))), 400, "bad_request"},
      {"a newline inside the key", put("it-bad", but("api_key", "abc\ndef")), 400, "bad_request"},
      {"an http:// host", put("it-bad", but("host", "http://app.kosli.com")), 400, "bad_request"},
      {"an ftp:// host", put("it-bad", but("host", "ftp://app.kosli.com")), 400, "bad_request"},
      {"a host with a path", put("it-bad", but("host", "https://app.kosli.com/evil")), 400, "bad_request"},
      {"an unknown kind", put("it-bad", but("kind", "admin")), 400, "bad_request"},
      {"a bad expiry", put("it-bad", but("expires_at", "next tuesday")), 400, "bad_request"},
      {"not JSON at all", http_request("PUT", "/v1/profiles/it-bad", "org=acme", "text/plain"), 415,
       "unsupported_media_type"},
      // Names.
      {"an upper-case name", put("IT-BAD", with(good)), 400, "bad_request"},
      {"a name starting with '-'", put("-it", with(good)), 400, "bad_request"},
      {"a name of 65 characters", put(std::string(65, 'a'), with(good)), 400, "bad_request"},
      {"a percent-encoded traversal", http_request("GET", "/v1/profiles/..%2F..%2Fetc/token"), 400, "bad_request"},
      {"an encoded dot-dot", http_request("GET", "/v1/profiles/%2e%2e/token"), 400, "bad_request"},
      {"a plain dot-dot", http_request("GET", "/v1/profiles/../token"), 400, "bad_request"},
      {"a space in the name", http_request("GET", "/v1/profiles/it%20bad"), 400, "bad_request"},
      // Routes and methods.
      {"an unknown route", http_request("GET", "/v1/secrets"), 404, "not_found"},
      {"another API version", http_request("GET", "/v2/health"), 404, "not_found"},
      {"a route with bytes that are not UTF-8", http_request("GET", "/v1/\xff\xfe"), 404, "not_found"},
      {"a wrong method", http_request("PATCH", "/v1/profiles/it-robust"), 405, "method_not_allowed"},
      {"DELETE on health", http_request("DELETE", "/v1/health"), 405, "method_not_allowed"},
      // HTTP framing.
      {"Content-Length with Transfer-Encoding",
       "PUT /v1/profiles/it-bad HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "bad_request"},
      {"two Content-Lengths", "PUT /v1/profiles/it-bad HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
       400, "bad_request"},
      {"a negative length", "PUT /v1/profiles/it-bad HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"},
      {"a length that is not a number", "PUT /v1/profiles/it-bad HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400,
       "bad_request"},
      {"a length past 64 bits", "PUT /v1/profiles/it-bad HTTP/1.1\r\nContent-Length: 184467440737095516160\r\n\r\n",
       400, "bad_request"},
      {"HTTP/0.9", "GET /v1/health\r\n\r\n", 400, "bad_request"},
      {"HTTP/2.0", "GET /v1/health HTTP/2.0\r\n\r\n", 400, "bad_request"},
      {"HTTP/1.7", "GET /v1/health HTTP/1.7\r\n\r\n", 400, "bad_request"},
      {"the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request"},
      {"a TLS ClientHello",
       std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11) + std::string(32, '\x42') +
           std::string("\x00\x00\x20\xc0\x2b\xc0\x2f", 7),
       0, "bad_request"},
      {"a NUL in the request line", std::string("GET /v1/he\0alth HTTP/1.1\r\n\r\n", 28), 0, "bad_request"},
  };
  for (const auto& c : cases) {
    const auto answer = exchange(socket(), c.request);
    if (!answer) {
      EXPECT_EQ(c.status, 0) << c.what << ": the daemon closed without an answer";
      continue;
    }
    EXPECT_TRUE(c.status == 0 ? answer->status >= 400 && answer->status < 500 : answer->status == c.status)
        << c.what << ": " << answer->status << " " << answer->body;
    EXPECT_EQ(answer->error_code(), c.code) << c.what << ": " << answer->body;
    EXPECT_FALSE(answer->error_message().empty()) << c.what;
    if (c.status == 405) {
      EXPECT_FALSE(answer->header("Allow").empty()) << c.what;
    }
  }

  // Random bytes, many times over: a 4xx JSON error or a closed connection.
  std::mt19937 random(20240611);
  for (int i = 0; i < 200; ++i) {
    std::string noise(1 + random() % 600, '\0');
    for (auto& ch : noise) ch = static_cast<char>(random());
    if (i % 2 == 0) noise.insert(0, "PUT /v1/profiles/it-noise HTTP/1.1\r\n");
    const auto answer = exchange(socket(), noise, seconds(limits::kRequestReadDeadline) + seconds(5));
    if (answer) {
      EXPECT_TRUE(answer->status >= 400 && answer->status < 500) << answer->status << " " << answer->body;
      EXPECT_FALSE(answer->error_code().empty()) << answer->body;
    }
  }

  // A valid loopback http:// host is the one exception, and is accepted.
  const auto loopback = exchange(socket(), put("it-loopback", but("host", "http://127.0.0.1:8080")));
  ASSERT_TRUE(loopback.has_value());
  EXPECT_EQ(loopback->status, 201) << loopback->body;

  // Nothing bad was stored, and the daemon still serves its owner.
  const auto list = exchange(socket(), http_request("GET", "/v1/profiles"));
  ASSERT_TRUE(list.has_value());
  std::vector<std::string> names;
  const auto listed = json::parse(list->body);
  for (const auto& p : listed["profiles"]) names.push_back(p["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"it-loopback", "it-robust"})) << list->body;
  expect_still_serving();
}

// The debug log names each request's target, which the HTTP parser lets hold
// C1 controls and bidi overrides (UTF-8): they are escaped, not written raw.
TEST(RequestLog, ATargetCannotRecolourOrReorderTheDebugLog) {
  TempDir dir;
  const std::string path = dir.path() + "/kosli-cred/sock";
  Daemon daemon(path, {"--backend", "memory", "--log-level", "debug"});
  const std::string target = std::string("/v1/x\xc2\x9b") + "2J" + "\xe2\x80\xae" + "evil";  // CSI 2J; RLO
  const auto answer = kosli::test::exchange(path, http_request("GET", target));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 404) << answer->body;
  const std::string log = daemon.log();
  EXPECT_NE(log.find("GET /v1/x\\u{009b}2J\\u{202e}evil -> 404"), std::string::npos) << log;
  EXPECT_EQ(log.find("\xc2\x9b"), std::string::npos) << log;
  EXPECT_EQ(log.find("\xe2\x80\xae"), std::string::npos) << log;
}

// --- Descriptors --------------------------------------------------------------

// Out of descriptors, accept fails (EMFILE). The daemon must not stop accepting
// for good, alive but deaf, where systemd's Restart=on-failure never fires.
TEST_F(RobustnessTest, RunningOutOfDescriptorsDoesNotStopTheDaemonAccepting) {
  // 64 descriptors for the daemon, as `ulimit -n 64` would give it, and more
  // connections at once than it can hold.
  const rlimit few{64, 64};
  ASSERT_EQ(::prlimit(daemon_->pid(), RLIMIT_NOFILE, &few, nullptr), 0) << std::strerror(errno);
  constexpr std::size_t kConnections = 120;
  {
    std::vector<RawConnection> held;
    for (std::size_t i = 0; i < kConnections; ++i) {
      held.emplace_back(socket());
      ASSERT_TRUE(held.back().connected()) << "connection " << i;
    }
    // The log is the only sign the daemon ran out; wait for it to say so.
    const auto deadline = Clock::now() + seconds(10);
    while (daemon_->log().find("accept failed: Too many open files") == std::string::npos && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_NE(daemon_->log().find("accept failed: Too many open files"), std::string::npos) << daemon_->log();
    // Idle connections make room: the owner is served while they are held ...
    expect_still_serving();
  }
  // ... and once they are closed.
  expect_still_serving();
  const std::string log = daemon_->log();
  std::size_t failures_logged = 0;
  for (auto at = log.find("accept failed"); at != std::string::npos; at = log.find("accept failed", at + 1)) {
    ++failures_logged;
  }
  EXPECT_LE(failures_logged, 2u) << "logged at each attempt:\n" << log;
  EXPECT_NE(log.find("accepting connections again"), std::string::npos) << log;
}

// --- HTTP, strictly -----------------------------------------------------------

// A transfer coding the parser does not frame would be read as no body at all,
// and the request executed: anything but exactly "chunked" is refused.
TEST_F(RobustnessTest, ATransferCodingOtherThanChunkedIsRefusedAndNotExecuted) {
  for (const std::string coding : {"xchunked", "gzip, chunked", "identity"}) {
    const auto answer = exchange(socket(), "POST /v1/lock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
                                               "\r\nConnection: close\r\n\r\n0\r\n\r\n");
    ASSERT_TRUE(answer.has_value()) << coding << ": no answer";
    EXPECT_EQ(answer->status, 501) << coding << ": " << answer->body;
    EXPECT_EQ(answer->error_code(), "not_implemented") << coding << ": " << answer->body;
    EXPECT_NE(answer->error_message().find("chunked"), std::string::npos) << answer->body;
  }
  EXPECT_EQ(count_records(audit_records(daemon_->audit_log()), "lock", "ok"), 0u) << "a refused lock was executed";
  expect_still_serving();

  // Chunked itself is read, and the lock done (and audited: the check above can see one).
  const auto chunked =
      exchange(socket(), "POST /v1/lock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         "0\r\n\r\n");
  ASSERT_TRUE(chunked.has_value());
  EXPECT_EQ(chunked->status, 204) << chunked->body;
  EXPECT_EQ(count_records(audit_records(daemon_->audit_log()), "lock", "ok"), 1u);
}

// A client that sends `Expect: 100-continue` waits for "100 Continue" (curl a
// second) before it sends the body.
TEST_F(RobustnessTest, ExpectContinueGetsA100BeforeTheBodyIsSent) {
  const std::string key = "kosli_" + std::string(2000, 'e');
  const std::string body = valid_put_body(key);
  RawConnection c(socket());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("PUT /v1/profiles/it-expect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: " + std::to_string(body.size()) + "\r\nExpect: 100-continue\r\n\r\n"));
  const auto interim = c.response(seconds(3));
  ASSERT_TRUE(interim.has_value()) << "no 100 Continue while the body is held back";
  EXPECT_EQ(interim->head, "HTTP/1.1 100 Continue");
  ASSERT_TRUE(c.send(body));
  const auto stored = c.response(seconds(5));
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->status, 201) << stored->body;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-expect"}).out, key + "\n");

  // A body over the limit gets its 413 on the header alone, with no 100 first;
  // so does a header refused for what it says.
  for (const std::string& header : {"Content-Length: " + std::to_string(limits::kMaxBodyBytes + 1),
                                   std::string("Transfer-Encoding: xchunked")}) {
    RawConnection refused(socket());
    ASSERT_TRUE(refused.send("PUT /v1/profiles/it-expect HTTP/1.1\r\nHost: x\r\n" + header +
                             "\r\nExpect: 100-continue\r\n\r\n"));
    const auto answer = refused.response(seconds(3));
    ASSERT_TRUE(answer.has_value()) << header;
    EXPECT_EQ(answer->status, header.rfind("Content", 0) == 0 ? 413 : 501) << header << ": " << answer->head;
  }
}

TEST_F(RobustnessTest, CurlSendingABodyWithExpectContinueDoesNotWait) {
  if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "needs curl";
  const std::string key = "kosli_" + std::string(2000, 'c');  // a body over 1 KiB, as curl sends Expect for
  const auto started = Clock::now();
  // The key goes in on stdin, never in argv. Without a 100, curl would wait
  // the whole --expect100-timeout before sending the body.
  const auto r = run({"curl", "-sS", "-v", "--unix-socket", socket(), "--expect100-timeout", "5", "-X", "PUT", "-H",
                      "Content-Type: application/json", "-H", "Expect: 100-continue", "--data-binary", "@-", "-o",
                      "/dev/null", "-w", "%{http_code}", "http://localhost/v1/profiles/it-curl"},
                     RunOptions{valid_put_body(key)});
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "201") << r.err;
  EXPECT_NE(r.err.find("Expect: 100-continue"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("HTTP/1.1 100 Continue"), std::string::npos) << r.err;
  EXPECT_LT(took.count(), 2000) << "curl waited " << took.count() << " ms";
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-curl"}).out, key + "\n");
}

// --- Refused peers ------------------------------------------------------------

// A daemon serving two more uids, its socket reachable by everyone; uid 65534
// is not one of them.
class RefusedPeerTest : public ::testing::Test {
 protected:
  static constexpr uid_t kStranger = 65534;

  void SetUp() override {
    if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0 || ::access("/usr/bin/curl", X_OK) != 0) {
      GTEST_SKIP() << "needs root, setpriv and curl";
    }
    daemon_.emplace(socket(),
                    std::vector<std::string>{"--backend", "memory", "--allow-uid", "1001", "--allow-uid", "1002"});
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  static RunResult as_stranger(std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"setpriv", "--reuid=" + std::to_string(kStranger),
                               "--regid=" + std::to_string(kStranger), "--clear-groups"});
    return run(argv, RunOptions{.timeout = seconds(60)});
  }

  static constexpr const char* kServed = "this kosli-credd serves uids 0, 1001 and 1002 only";

  TempDir dir_;
  std::optional<Daemon> daemon_;
};

// The daemon used to answer and close before the request arrived: the peer's
// write then failed, or the connection was reset, and the 403 went unread.
TEST_F(RefusedPeerTest, ARefusedUidReadsTheWholeAnswerEveryTime) {
  for (int i = 0; i < 50; ++i) {
    const auto r = as_stranger({"curl", "-sS", "--unix-socket", socket(), "http://localhost/v1/health"});
    ASSERT_EQ(r.exit_code, 0) << "attempt " << i << ": " << r.err;
    const auto body = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << "attempt " << i << ": " << r.out;
    EXPECT_EQ(body["error"]["code"], "forbidden") << r.out;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(kServed), std::string::npos) << r.out;
  }
  // (The stranger names the daemon's uid, or its own client refuses first.)
  const auto token = as_stranger({bin("kosli-cred"), "--socket", socket(), "--daemon-uid",
                                  std::to_string(::geteuid()), "token", "--profile", "p"});
  EXPECT_EQ(token.exit_code, 5) << token.err;
  EXPECT_NE(token.err.find(kServed), std::string::npos) << token.err;
}

// A peer slow to send its request (here: a third of a second) still gets the
// answer, not a broken pipe.
TEST_F(RefusedPeerTest, ARefusedUidSlowToSendItsRequestStillGetsTheAnswer) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kStranger, kStranger, kStranger) != 0 ||
        ::setresuid(kStranger, kStranger, kStranger) != 0) {
      ::_exit(10);
    }
    RawConnection c(socket()), silent(socket());
    if (!c.connected() || !silent.connected()) ::_exit(11);
    ::usleep(300 * 1000);  // a slow client, not a synchronisation
    if (!c.send(http_request("GET", "/v1/health"))) ::_exit(12);
    const auto answer = c.response(seconds(5));
    if (!answer) ::_exit(13);
    if (answer->status != 403 || answer->error_message().find(kServed) == std::string::npos) ::_exit(14);
    // A peer that sends nothing is answered and closed soon all the same: a
    // refused uid cannot hold connections open.
    const auto started = Clock::now();
    const auto unasked = silent.response(seconds(5));
    if (!unasked || unasked->status != 403 || !silent.closed_within(seconds(5))) ::_exit(15);
    ::_exit(Clock::now() - started < seconds(3) ? 0 : 16);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no setuid, 11: no connection, 12: the request could not be sent, "
                                       "13: no answer, 14: a wrong answer, 15: the silent peer was not answered "
                                       "and closed, 16: only after 3 s";
}

// A refused peer's program path comes from /proc and may hold a newline or
// escape sequences: it cannot forge a line of the daemon's log.
TEST_F(RefusedPeerTest, ARefusedProgramsPathCannotForgeALogLine) {
  const std::string dir = dir_.path() + "/bin";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string forged = dir + "/curl\n2026-01-01T00:00:00.000 info forged\x1b[2J";
  ASSERT_EQ(run({"cp", "/usr/bin/curl", forged}).exit_code, 0);
  const auto r = as_stranger({forged, "-sS", "--unix-socket", socket(), "http://localhost/v1/health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("curl\\x0a2026-01-01T00:00:00.000 info forged\\x1b[2J"), std::string::npos) << log;
  EXPECT_EQ(log.find("\n2026-01-01T00:00:00.000 info forged"), std::string::npos) << log;
  EXPECT_EQ(log.find("\x1b"), std::string::npos) << log;
}

// With --allow-uid the socket is 0666: any local user could otherwise write
// megabytes a second of refusals into the owner's logs.
TEST_F(RefusedPeerTest, AFloodOfRefusedConnectionsLeavesFewRecords) {
  constexpr int kFlood = 2000;
  const auto r = as_stranger({"curl", "-sS", "--unix-socket", socket(), "-w", "\\n%{http_code}\\n",
                              "http://localhost/v1/health?[1-" + std::to_string(kFlood) + "]"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::size_t forbidden = 0;
  for (auto at = r.out.find("\n403\n"); at != std::string::npos; at = r.out.find("\n403\n", at + 1)) ++forbidden;
  EXPECT_EQ(forbidden, static_cast<std::size_t>(kFlood));

  // What was not recorded one by one is counted; the count is written by the
  // time the daemon stops, if its minute has not ended before.
  ASSERT_EQ(daemon_->stop(), 0);
  const auto records = audit_records(daemon_->audit_log());
  const std::size_t refused = count_records(records, "connection", "refused");
  EXPECT_LE(refused, 10u);
  std::size_t one_by_one = 0, counted = 0;
  for (const auto& record : records) {
    if (record["event"] != "connection" || record["uid"] != kStranger) continue;
    const std::string detail = record.value("detail", "");
    if (detail == "uid not allowed") {
      ++one_by_one;
    } else {
      const auto at = detail.find(" more refused connections from uid 65534 in the last ");
      ASSERT_NE(at, std::string::npos) << detail;
      counted += std::stoul(detail.substr(detail.find("and ") + 4));
    }
  }
  EXPECT_GE(one_by_one, 1u);
  EXPECT_EQ(one_by_one + counted, static_cast<std::size_t>(kFlood));

  const std::string log = daemon_->log();
  std::size_t lines = 0;
  for (auto at = log.find("refused a connection from uid 65534"); at != std::string::npos;
       at = log.find("refused a connection from uid 65534", at + 1)) {
    ++lines;
  }
  EXPECT_LE(lines, 10u);
  EXPECT_LT(log.size(), 16u * 1024) << log;
}

}  // namespace
}  // namespace kosli::test
