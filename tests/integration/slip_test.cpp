// Tests that would notice a slip (issue #17): behaviour a user sees that no other
// test pinned, so a restructure of daemon/, proto/ or client/ cannot change it
// unnoticed. Only the built binaries, the wire and proto/ headers are used, so
// these tests stay valid whatever moves inside.
//   - every token handed out from the store, not only from the cache, is audited;
//   - a key given as an argument is refused even when a valid one is on stdin;
//   - a shared (--allow-uid) socket directory that others may write is refused;
//   - a rotated key held in memory (the keyring cannot take it) expires like any other;
//   - the wire limits hold at their documented values, on both sides of each.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <functional>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;


// Waits for `condition` (checked every 100 ms) for at most `limit`.
bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a condition, not a guess
  }
  return condition();
}

// Every daemon here ignores a proxy the environment may set.
std::vector<std::pair<std::string, std::string>> no_proxy(std::vector<std::pair<std::string, std::string>> env = {}) {
  env.insert(env.begin(), {{"HTTPS_PROXY", ""}, {"https_proxy", ""}, {"NO_PROXY", ""}, {"no_proxy", ""}});
  return env;
}

class SlipTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  RunResult store(const std::string& profile, const std::string& key, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", "acme"};
    args.insert(args.end(), extra.begin(), extra.end());
    return cred(socket(), args, RunOptions{key + "\n"});
  }

  // The `token`/`issued` records of the audit log for `profile`.
  static std::vector<json> issued(const Daemon& daemon, const std::string& profile) {
    std::vector<json> out;
    for (const auto& r : audit_records(daemon.audit_log())) {
      if (r.value("event", "") == "token" && r.value("result", "") == "issued" && r.value("profile", "") == profile) {
        out.push_back(r);
      }
    }
    return out;
  }

  TempDir dir_;
};

// ---- 1. a token loaded from the store is audited -------------------------------

// With --cache-ttl 0 nothing is cached: every token is read from the store, and
// each one handed out must leave its own record, the first one included.
TEST_F(SlipTest, EveryTokenReadFromTheMemoryStoreIsAudited) {
  Daemon daemon(socket(), {"--backend", "memory", "--cache-ttl", "0"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-audited", key).exit_code, 0);
  for (int i = 0; i < 3; ++i) {
    const auto t = cred(socket(), {"token", "--profile", "it-audited"});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    EXPECT_EQ(t.out, key + "\n");
  }
  const auto records = issued(daemon, "it-audited");
  EXPECT_EQ(records.size(), 3u) << daemon.audit_log();
  for (const auto& r : records) {
    // None came from the cache: these are the store's records.
    EXPECT_EQ(r.value("detail", "").find("cached"), std::string::npos) << r.dump();
  }
  EXPECT_EQ(daemon.audit_log().find(key), std::string::npos) << "the audit log holds the key";
}

// The keyring: `lock` empties the cache, so the token after it is read from the
// Secret Service, and is audited like the cached ones.
TEST_F(SlipTest, ATokenReadFromTheKeyringAfterALockIsAudited) {
  if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
  Daemon daemon(socket(), {"--backend", "secret-service"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-audited-keyring", key).exit_code, 0);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);  // the next token is a cache miss
    const auto t = cred(socket(), {"token", "--profile", "it-audited-keyring"});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    EXPECT_EQ(t.out, key + "\n");
  }
  const auto cached = cred(socket(), {"token", "--profile", "it-audited-keyring"});  // and one from the cache
  EXPECT_EQ(cached.out, key + "\n");
  const auto records = issued(daemon, "it-audited-keyring");
  ASSERT_EQ(records.size(), 3u) << daemon.audit_log();
  EXPECT_EQ(records[0].value("detail", "").find("cached"), std::string::npos) << records[0].dump();
  EXPECT_EQ(records[1].value("detail", "").find("cached"), std::string::npos) << records[1].dump();
  EXPECT_NE(records[2].value("detail", "").find("cached"), std::string::npos) << records[2].dump();
  cred(socket(), {"erase", "--profile", "it-audited-keyring"});
}

// ---- 3. a key given as an argument -------------------------------------------------

// A valid key on stdin must not make a key given as an argument acceptable:
// exit 2, nothing stored, and the argument never echoed.
TEST_F(SlipTest, AKeyGivenAsAnArgumentIsRefusedEvenWithAValidKeyOnStdin) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string argument = unique_key(), on_stdin = unique_key();

  const auto stored = cred(socket(), {"store", "--profile", "it-arg", "--org", "acme", argument},
                           RunOptions{on_stdin + "\n"});
  EXPECT_EQ(stored.exit_code, 2) << stored.err;
  EXPECT_EQ(stored.err.find(argument), std::string::npos) << stored.err;
  EXPECT_EQ(stored.out.find(argument), std::string::npos) << stored.out;
  EXPECT_NE(stored.err.find("a key is never given as an argument"), std::string::npos) << stored.err;
  const auto shown = cred(socket(), {"show", "--profile", "it-arg"});
  EXPECT_EQ(shown.exit_code, 3) << "the profile was stored: " << shown.out;

  // rotate: the profile exists, and keeps its key.
  const std::string first = unique_key();
  ASSERT_EQ(store("it-arg-rotate", first).exit_code, 0);
  const auto rotated = cred(socket(), {"rotate", "--profile", "it-arg-rotate", "--no-verify", argument},
                            RunOptions{on_stdin + "\n"});
  EXPECT_EQ(rotated.exit_code, 2) << rotated.err;
  EXPECT_EQ(rotated.err.find(argument), std::string::npos) << rotated.err;
  EXPECT_EQ(rotated.out.find(argument), std::string::npos) << rotated.out;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-arg-rotate"}).out, first + "\n");

  const std::string log = daemon.log() + daemon.audit_log();
  EXPECT_EQ(log.find(argument), std::string::npos);
  EXPECT_EQ(log.find(on_stdin), std::string::npos);
}

// ---- 4. a shared socket directory others may write -----------------------------------

TEST_F(SlipTest, ADaemonServingOtherUidsRefusesASocketDirectoryOthersMayWrite) {
  for (const mode_t mode : {mode_t{0777}, mode_t{0775}, mode_t{0757}}) {
    SCOPED_TRACE(mode);
    const std::string dir = dir_.path() + "/shared-" + std::to_string(mode);
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    // Never started: when a slip lets it serve, it is killed at the timeout and the exit code says so.
    RunOptions options;
    options.timeout = std::chrono::seconds(10);
    const auto r = run({bin("kosli-credd"), "--backend", "memory", "--allow-uid", "4242", "--socket", dir + "/sock",
                        "--audit-log", dir_.path() + "/audit-" + std::to_string(mode)},
                       options);
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_LT(r.exit_code, 128) << "it did not refuse, it was killed: " << r.err;
    EXPECT_NE(r.err.find("the socket directory " + dir + " has mode"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("open to other users"), std::string::npos) << r.err;
    struct stat st {};
    EXPECT_NE(::lstat((dir + "/sock").c_str(), &st), 0) << "a socket was made in " << dir;
  }
  // 0711 and 0755 are what a shared directory may be: the daemon serves.
  for (const mode_t mode : {mode_t{0711}, mode_t{0755}}) {
    SCOPED_TRACE(mode);
    const std::string dir = dir_.path() + "/ok-" + std::to_string(mode);
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    Daemon daemon(dir + "/sock", {"--backend", "memory", "--allow-uid", "4242"});
    EXPECT_EQ(cred(dir + "/sock", {"status"}).exit_code, 0);
    EXPECT_EQ(daemon.stop(), 0);
  }
}

// ---- 5. expiry of a key held in memory --------------------------------------------

// A rotation through Kosli's API whose new key the keyring cannot take leaves
// that key in memory, served as the current one. When it has expired, it gets
// the same refusal as any expired key (exit 7), never a token.
TEST_F(SlipTest, AnExpiredKeyHeldInMemoryGetsNoToken) {
  if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
  const TestPki pki = make_test_pki(dir_.path());
  PrivateKeyring keyring;  // this test's own, so it can hang it
  const std::string old_key = unique_key();
  KosliStandIn standin(pki,
                       json{{"keys",
                             {{{"key", old_key},
                               {"org", "acme"},
                               {"service_account", "ci"},
                               {"key_id", "k1"},
                               {"expires_at", 0}}}},
                            {"hold_rotate", true}}
                           .dump());
  const auto state = [&] { return json::parse(standin.state(pki.ca_cert)); };
  Daemon daemon(socket(), {"--backend", "secret-service", "--ca-file", pki.ca_cert}, no_proxy({keyring.bus_env()}));
  ASSERT_EQ(store("it-held-expired", old_key, {"--host", standin.url(), "--service-account", "ci", "--key-id", "k1"})
                .exit_code,
            0);

  // Kosli issues the new key with the expiry asked for, already past.
  const std::string past = rfc3339(static_cast<std::int64_t>(std::time(nullptr)) - 3600);
  std::future<RunResult> rotation = std::async(std::launch::async, [&] {
    return cred(socket(), {"rotate", "--profile", "it-held-expired", "--via-api", "--expires-at", past});
  });
  ASSERT_TRUE(eventually([&] { return state()["held"] == 1; }, std::chrono::seconds(10)));
  keyring.pause();
  standin.control(pki.ca_cert, "release");
  const auto r = rotation.get();
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("holds the new key in memory"), std::string::npos) << r.err;
  const auto keys = state()["keys"];
  ASSERT_EQ(keys.size(), 2u) << keys.dump();
  const std::string new_key = keys[1]["key"];

  for (const std::vector<std::string>& args : {std::vector<std::string>{"token", "--profile", "it-held-expired"},
                                               {"header", "--profile", "it-held-expired"}}) {
    const auto t = cred(socket(), args);
    EXPECT_EQ(t.exit_code, 7) << args[0] << ": " << t.err;
    EXPECT_TRUE(t.out.empty()) << args[0];
    EXPECT_EQ(t.out.find(new_key), std::string::npos) << args[0];
    EXPECT_NE(t.err.find("expired at"), std::string::npos) << t.err;
  }
  const auto raw = exchange(socket(), http_request("GET", "/v1/profiles/it-held-expired/token"));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->status, 410) << raw->body;
  EXPECT_EQ(raw->error_code(), "key_expired") << raw->body;
  EXPECT_EQ(raw->body.find(new_key), std::string::npos);

  keyring.resume();  // the daemon stores the key by itself, then stops cleanly
  ASSERT_TRUE(eventually(
      [&] {
        const auto status = cred(socket(), {"status", "--json"});
        const auto j = json::parse(status.out, nullptr, false);
        return status.exit_code == 0 && j.is_object() && j["waiting_keys"].empty();
      },
      std::chrono::seconds(60)))
      << daemon.log();
  EXPECT_EQ(daemon.stop(), 0);
  EXPECT_EQ(daemon.log().find(new_key), std::string::npos);
}

// ---- 6. the wire limits, at their boundaries -------------------------------------

// A PUT /v1/profiles/NAME body of exactly `size` bytes (padded with JSON
// whitespace) that stores `key`.
std::string profile_body(const std::string& key, std::size_t size) {
  std::string body = R"({"org":"acme","host":"https://app.kosli.com","kind":"personal","api_key":")" + key + "\"";
  if (body.size() + 1 < size) body.append(size - body.size() - 1, ' ');
  return body + "}";
}

// A GET whose request line and headers, up to and including the blank line, are
// exactly `size` bytes.
std::string request_with_head_of(std::size_t size) {
  const std::string start = "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(size - start.size() - end.size(), 'a') + end;
}

class WireLimitsTest : public SlipTest {
 protected:
  void SetUp() override { daemon_.emplace(socket(), std::vector<std::string>{"--backend", "memory"}); }
  std::optional<Daemon> daemon_;
};

TEST_F(WireLimitsTest, ABodyOfExactly64KiBIsReadAndOneByteMoreGets413) {
  const std::string key = unique_key();
  const auto at = exchange(socket(), http_request("PUT", "/v1/profiles/it-64k", profile_body(key, 64 * 1024)));
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->status / 100, 2) << at->status << " " << at->body;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-64k"}).out, key + "\n");

  const std::string other = unique_key();
  const auto over =
      exchange(socket(), http_request("PUT", "/v1/profiles/it-64k-1", profile_body(other, 64 * 1024 + 1)));
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(over->status, 413) << over->body;
  EXPECT_EQ(over->error_code(), "payload_too_large") << over->body;
  EXPECT_NE(over->error_message().find("64 KiB"), std::string::npos) << over->body;
  EXPECT_EQ(cred(socket(), {"show", "--profile", "it-64k-1"}).exit_code, 3);

  // Refused on the Content-Length alone, before any of the body is sent.
  RawConnection c(socket());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("PUT /v1/profiles/it-big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: 65537\r\n\r\n"));
  const auto early = c.response(std::chrono::seconds(5));
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->status, 413);
}

// Beast counts the limit down line by line as lines arrive, so where exactly a
// request whose earlier lines came in an earlier read is cut off varies by the
// length of those lines; a head of 8 KiB is always read, and one whose single
// header line alone is over 8 KiB always gets 431.
TEST_F(WireLimitsTest, HeadersOf8KiBAreReadAndAHeaderLineOver8KiBGets431) {
  const auto at = exchange(socket(), request_with_head_of(8 * 1024));
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->status, 200) << at->body;

  const auto over = exchange(socket(), request_with_head_of(8 * 1024 + 128));
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(over->status, 431) << over->body;
  EXPECT_EQ(over->error_code(), "headers_too_large") << over->body;
}

TEST_F(WireLimitsTest, ATargetOf1KiBIsRoutedAndOneByteMoreGets414) {
  const std::string prefix = "/v1/profiles/";
  const auto target = [&](std::size_t size) { return prefix + std::string(size - prefix.size(), 'p'); };
  const auto at = exchange(socket(), http_request("GET", target(1024)));
  ASSERT_TRUE(at.has_value());
  EXPECT_NE(at->status, 414) << at->body;
  EXPECT_NE(at->error_code(), "uri_too_long") << at->body;

  const auto over = exchange(socket(), http_request("GET", target(1025)));
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(over->status, 414) << over->body;
  EXPECT_EQ(over->error_code(), "uri_too_long") << over->body;
}

TEST_F(WireLimitsTest, JsonNestedEightLevelsIsParsedAndNineIsRefused) {
  // The depth check runs before the body is parsed: an unknown extra field
  // nested 8 deep is refused for being unknown, 9 deep for its depth.
  const auto nested = [](int levels) {
    std::string v = "1";
    for (int i = 1; i < levels; ++i) v = "{\"a\":" + v + "}";
    return R"({"org":"acme","kind":"personal","api_key":"k","x":)" + v + "}";
  };
  const auto at = exchange(socket(), http_request("PUT", "/v1/profiles/it-deep", nested(8)));
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->error_message().find("nests deeper"), std::string::npos) << at->body;

  const auto over = exchange(socket(), http_request("PUT", "/v1/profiles/it-deep", nested(9)));
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(over->status, 400) << over->body;
  EXPECT_NE(over->error_message().find("the JSON body nests deeper than 8 levels"), std::string::npos) << over->body;
}

TEST_F(WireLimitsTest, AKeyOf4096BytesIsStoredAnd4097IsRefused) {
  std::string at = unique_key();
  at.append(4096 - at.size(), 'k');
  const auto stored = store("it-4k", at);
  EXPECT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-4k"}).out, at + "\n");

  const std::string over = at + "k";
  const auto refused = store("it-4k-1", over);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_EQ(refused.err.find(over), std::string::npos);
  EXPECT_EQ(cred(socket(), {"show", "--profile", "it-4k-1"}).exit_code, 3);

  // The daemon checks it too, whatever the client does.
  const auto raw = exchange(socket(), http_request("PUT", "/v1/profiles/it-4k-1", profile_body(over, 0)));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->status, 400) << raw->body;
  EXPECT_EQ(raw->error_code(), "bad_request") << raw->body;
  EXPECT_EQ(raw->body.find(over), std::string::npos);
  EXPECT_EQ(cred(socket(), {"show", "--profile", "it-4k-1"}).exit_code, 3);
}

}  // namespace
}  // namespace kosli::test
