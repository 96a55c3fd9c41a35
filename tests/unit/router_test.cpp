#include "daemon/handlers/router.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/store/memory_store.hpp"
#include "tests/unit/test_helpers.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;
using test::Mentions;

constexpr const char* kJson = "application/json";

// The router logs every store and erase at info level; keep the test output readable.
[[maybe_unused]] const bool kQuietLogs = (spdlog::set_level(spdlog::level::warn), true);

json put_body(const std::string& key, const std::string& org = "acme") {
  return {{"org", org},
          {"host", "https://App.Kosli.com/"},
          {"kind", "service-account"},
          {"api_key", key},
          {"description", "CI key"}};
}

// A peer of the daemon's own user (Policy lets other uids read only).
Peer owner() { return Peer{0, ::geteuid(), ::getegid()}; }

class RouterTest : public ::testing::Test {
 protected:
  // Sends one request and returns the one reply (the memory store answers inline).
  Response call(const std::string& method, const std::string& target, std::string body = {},
                std::string content_type = kJson) {
    std::optional<Response> reply;
    int replies = 0;
    router_.handle(Request{method, target, std::move(content_type), std::move(body)}, peer_,
                   [&](Response r) {
                     ++replies;
                     reply = std::move(r);
                   });
    EXPECT_EQ(replies, 1) << method << ' ' << target;
    return reply.value_or(Response{-1, {}});
  }

  Response put(const std::string& name, const std::string& key, const std::string& org = "acme") {
    return call("PUT", "/v1/profiles/" + name, put_body(key, org).dump());
  }
  Response token(const std::string& name) { return call("GET", "/v1/profiles/" + name + "/token"); }
  json health() { return json::parse(call("GET", "/v1/health").body); }

  MemoryStore store_;
  TokenCache cache_{std::chrono::minutes(10)};
  Policy policy_;                // no allowed_clients: any program of this user
  AuditLog audit_{"/dev/null"};  // what it records is not under test here
  StoreWorker worker_{store_};
  Metrics metrics_;
  Router router_{worker_, cache_, policy_, audit_, metrics_};
  Peer peer_ = owner();
};

// Checks an error reply: its status and {"error":{"code","message"}}.
::testing::AssertionResult IsError(const Response& r, int status, const std::string& code) {
  const auto j = json::parse(r.body, nullptr, false);
  if (r.status != status || !j.is_object() || !j.contains("error") ||
      j["error"].value("code", "") != code || !j["error"]["message"].is_string() ||
      j["error"]["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure()
           << "want " << status << ' ' << code << ", got " << r.status << ' ' << r.body;
  }
  return ::testing::AssertionSuccess();
}

TEST_F(RouterTest, PutCreatesThenReplaces) {
  EXPECT_EQ(put("ci", "key-123").status, 201);
  EXPECT_EQ(put("ci", "key-456").status, 200);
}

TEST_F(RouterTest, PutAnswersWithMetadataAndNeverTheKey) {
  const Response r = put("ci", "key-123");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_FALSE(r.sensitive);
  EXPECT_TRUE(r.body.find("key-123") == std::string::npos) << r.body;
  const auto j = json::parse(r.body);
  EXPECT_FALSE(j.contains("api_key"));
  EXPECT_EQ(j["name"], "ci");
  EXPECT_EQ(j["org"], "acme");
  EXPECT_EQ(j["host"], "https://app.kosli.com");
  EXPECT_EQ(j["kind"], "service-account");
  EXPECT_EQ(j["description"], "CI key");
  EXPECT_EQ(j["fingerprint"], "sha256:65803be0872f");  // sha256("key-123")
  EXPECT_EQ(j["persistent"], false);
  EXPECT_TRUE(j["expires_at"].is_null());
  EXPECT_TRUE(j["created_at"].is_string());
}

TEST_F(RouterTest, PutNeedsAJsonContentType) {
  for (const char* type :
       {"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"}) {
    EXPECT_TRUE(IsError(call("PUT", "/v1/profiles/ci", put_body("k").dump(), type), 415,
                        "unsupported_media_type"))
        << type;
  }
  EXPECT_EQ(call("GET", "/v1/health").status, 200);
  EXPECT_EQ(json::parse(call("GET", "/v1/health").body)["profiles"], 0);
  EXPECT_EQ(call("PUT", "/v1/profiles/ci", put_body("k").dump(), "Application/JSON; charset=utf-8")
                .status,
            201);
}

TEST_F(RouterTest, PutWithABadBodyIsABadRequestNamingTheProblem) {
  EXPECT_TRUE(IsError(call("PUT", "/v1/profiles/ci", "{not json"), 400, "bad_request"));
  json no_org = put_body("k");
  no_org.erase("org");
  const Response r = call("PUT", "/v1/profiles/ci", no_org.dump());
  EXPECT_TRUE(IsError(r, 400, "bad_request"));
  EXPECT_TRUE(Mentions(r.body, "'org'"));
  EXPECT_EQ(health()["profiles"], 0);
}

TEST_F(RouterTest, TokenAnswersWithTheBearerTokenMarkedSensitive) {
  put("ci", "key-123");
  cache_.clear();  // the first answer comes from the store, the second from the cache
  for (int i = 0; i < 2; ++i) {
    const Response r = token("ci");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.sensitive);
    const auto j = json::parse(r.body);
    EXPECT_EQ(j, (json{{"token", "key-123"},
                       {"token_type", "Bearer"},
                       {"org", "acme"},
                       {"host", "https://app.kosli.com"},
                       {"expires_at", nullptr}}));
  }
}

TEST_F(RouterTest, TokenCarriesTheExpiry) {
  json body = put_body("key-123");
  body["expires_at"] = 4102444800;  // a key already expired gets no token at all
  ASSERT_EQ(call("PUT", "/v1/profiles/ci", body.dump()).status, 201);
  cache_.clear();
  const auto token_body = json::parse(token("ci").body);
  EXPECT_EQ(token_body["expires_at"], "2100-01-01T00:00:00Z");
  EXPECT_EQ(token_body["expiry_warning_days"], 7) << "clients warn this close to the expiry";
}

TEST_F(RouterTest, AnExpiredKeyGetsNoToken) {
  json body = put_body("key-123");
  body["expires_at"] = 1000000000;  // 2001
  ASSERT_EQ(call("PUT", "/v1/profiles/ci", body.dump()).status, 201);
  for (int i = 0; i < 2; ++i) {  // from the cache, then from the store
    const Response r = token("ci");
    EXPECT_TRUE(IsError(r, 410, "key_expired"));
    EXPECT_TRUE(Mentions(r.body, "expired at 2001-09-09T01:46:40Z"));
    EXPECT_EQ(r.body.find("key-123"), std::string::npos);
    cache_.clear();
  }
}

TEST_F(RouterTest, TokenFollowsAReplacedKey) {
  put("ci", "key-123");
  ASSERT_EQ(json::parse(token("ci").body)["token"], "key-123");
  put("ci", "key-456", "other");
  const auto j = json::parse(token("ci").body);
  EXPECT_EQ(j["token"], "key-456");
  EXPECT_EQ(j["org"], "other");
}

TEST_F(RouterTest, TokenGoesOnlyToAllowedProgramsWhenTheConfigListsThem) {
  Config config;
  config.path = "/home/u/.config/kosli-cred/config.json";
  config.profiles["ci"].allowed_clients = {"/usr/bin/kosli"};
  policy_ = Policy(config);
  peer_.requester = "/usr/bin/kosli";  // a guarded profile is stored by a listed program too
  put("ci", "key-123");                // also caches the key: the check must come first

  peer_.requester = "/usr/bin/curl";
  const Response refused = token("ci");
  EXPECT_TRUE(IsError(refused, 403, "policy_refused"));
  EXPECT_TRUE(Mentions(refused.body, "/usr/bin/curl"));
  EXPECT_TRUE(Mentions(refused.body, "profiles.ci.allowed_clients"));
  EXPECT_EQ(refused.body.find("key-123"), std::string::npos);

  peer_.requester = "/usr/bin/kosli";
  EXPECT_EQ(token("ci").status, 200);
}

TEST_F(RouterTest, TokenOfAnUnknownProfileIsNotFound) {
  const Response r = token("nope");
  EXPECT_TRUE(IsError(r, 404, "not_found"));
  EXPECT_FALSE(r.sensitive);
  EXPECT_TRUE(Mentions(r.body, "kosli-cred store --profile nope"));
}

TEST_F(RouterTest, DeleteErasesOnceThenIsNotFound) {
  put("ci", "key-123");
  const Response r = call("DELETE", "/v1/profiles/ci");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(IsError(call("DELETE", "/v1/profiles/ci"), 404, "not_found"));
  EXPECT_TRUE(IsError(call("GET", "/v1/profiles/ci"), 404, "not_found"));
}

TEST_F(RouterTest, DeleteAlsoForgetsTheCachedToken) {
  put("ci", "key-123");
  ASSERT_EQ(token("ci").status, 200);  // now cached
  ASSERT_EQ(call("DELETE", "/v1/profiles/ci").status, 204);
  EXPECT_TRUE(IsError(token("ci"), 404, "not_found"));
}

TEST_F(RouterTest, LockForgetsCachedKeysButNotStoredOnes) {
  put("ci", "key-123");
  ASSERT_EQ(health()["cached"], 1);
  const Response r = call("POST", "/v1/lock");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(health()["cached"], 0);
  EXPECT_EQ(token("ci").status, 200);  // read again from the store
}

TEST_F(RouterTest, HealthReportsBackendAndProfileCount) {
  const Response r = call("GET", "/v1/health");
  ASSERT_EQ(r.status, 200);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["version"], KOSLI_VERSION);
  EXPECT_EQ(j["backend"], "memory");
  EXPECT_EQ(j["persistent"], false);
  EXPECT_EQ(j["profiles"], 0);
  EXPECT_TRUE(j["uptime_s"].is_number_integer());
  put("ci", "k1");
  put("prod", "k2");
  EXPECT_EQ(health()["profiles"], 2);
}

TEST_F(RouterTest, ListAndGetShowMetadataOnly) {
  put("prod", "key-prod");
  put("ci", "key-ci");
  const Response list = call("GET", "/v1/profiles");
  ASSERT_EQ(list.status, 200);
  const auto profiles = json::parse(list.body)["profiles"];
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_EQ(profiles[0]["name"], "ci");
  EXPECT_EQ(profiles[1]["name"], "prod");
  EXPECT_EQ(list.body.find("key-"), std::string::npos) << list.body;

  const Response one = call("GET", "/v1/profiles/ci");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body), profiles[0]);
  EXPECT_TRUE(IsError(call("GET", "/v1/profiles/nope"), 404, "not_found"));
}

TEST_F(RouterTest, UnknownRouteIsNotFound) {
  EXPECT_TRUE(IsError(call("GET", "/v1/nope"), 404, "not_found"));
  EXPECT_TRUE(IsError(call("GET", "/"), 404, "not_found"));
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  Response r = call("DELETE", "/v1/health");
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  EXPECT_EQ(r.allow, "GET");
  r = call("POST", "/v1/profiles/ci");
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  EXPECT_EQ(r.allow, "GET, PUT, DELETE");
}

// A router built without a Kosli API client (a KeyLifecycle) cannot verify or rotate.
TEST_F(RouterTest, VerifyAndRotateWithoutAKosliClientAreNotImplemented) {
  put("ci", "key-123");
  EXPECT_TRUE(IsError(call("POST", "/v1/profiles/ci/verify"), 501, "not_implemented"));
  EXPECT_TRUE(IsError(call("POST", "/v1/profiles/ci/rotate", R"({"api_key":"key-456"})"), 501,
                      "not_implemented"));
  EXPECT_EQ(json::parse(token("ci").body)["token"], "key-123");  // rotate changed nothing
}

// GET /v1/metrics counts what the router answered, in Prometheus' text format.
TEST_F(RouterTest, MetricsCountRequestsCacheHitsAndTokensByProfile) {
  put("ci", "key-123");
  token("ci");         // served from the cache the store filled
  token("missing");    // a miss, then 404
  call("GET", "/nope");  // no route
  call("DELETE", "/v1/lock");  // wrong method

  const Response r = call("GET", "/v1/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_FALSE(r.sensitive);
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_requests_total{route=\"put_profile\",status=\"201\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_requests_total{route=\"token\",status=\"200\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_requests_total{route=\"token\",status=\"404\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_requests_total{route=\"unmatched\",status=\"405\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_cache_hits_total 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_cache_misses_total 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_tokens_issued_total{profile=\"ci\"} 1\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_request_duration_seconds_bucket{le=\"+Inf\"} 5\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_request_duration_seconds_count 5\n"));
  EXPECT_TRUE(Mentions(r.body, "# TYPE kosli_credd_request_duration_seconds histogram\n"));
  EXPECT_TRUE(Mentions(r.body, "kosli_credd_open_connections 0\n"));
  EXPECT_EQ(r.body.find("key-123"), std::string::npos);
}

TEST_F(RouterTest, BadProfileNameIsABadRequest) {
  EXPECT_TRUE(IsError(put("Bad", "key-123"), 400, "bad_request"));
  EXPECT_TRUE(IsError(token(".."), 400, "bad_request"));
  EXPECT_TRUE(IsError(call("DELETE", "/v1/profiles/a%2F.."), 400, "bad_request"));
  EXPECT_EQ(health()["profiles"], 0);
}

// A store that says it may block, so StoreWorker runs it on its own thread.
class ThreadedStore final : public Store {
 public:
  std::string_view backend_name() const override { return inner_.backend_name(); }
  bool persistent() const override { return inner_.persistent(); }
  bool may_block() const override { return true; }
  StoreResult<std::vector<ProfileMeta>> list(Deadline d) override { return inner_.list(d); }
  StoreResult<std::optional<ProfileMeta>> find(std::string_view n, Deadline d) override {
    return inner_.find(n, d);
  }
  StoreResult<std::optional<StoredKey>> load(std::string_view n, Deadline d) override {
    return inner_.load(n, d);
  }
  StoreResult<bool> put(const ProfileMeta& m, const Secret& k, Deadline d) override {
    return inner_.put(m, k, d);
  }
  StoreResult<bool> erase(std::string_view n, Deadline d) override { return inner_.erase(n, d); }

 private:
  MemoryStore inner_;
};

TEST(RouterAudit, ATokenLeavesOnlyOnceItsRecordIsWritten) {
  char dir[] = "/tmp/kosli-router-audit.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/audit.log";
  const auto records_on_disk = [&] {
    std::ifstream in(path);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  };
  {
    MemoryStore store;
    TokenCache cache(std::chrono::minutes(10));
    Policy policy;
    AuditLog audit(path);
    StoreWorker worker(store);
    Metrics metrics;
    Router router(worker, cache, policy, audit, metrics);
    int flushes_scheduled = 0;
    audit.defer_writes([&] { ++flushes_scheduled; });  // as the server does; flushed by hand below
    std::vector<int> statuses;
    std::vector<std::size_t> records_when_sent;
    const auto send = [&](std::string method, std::string target, std::string body = {}) {
      router.handle(Request{std::move(method), std::move(target), kJson, std::move(body)}, owner(),
                    [&](Response r) {
                      statuses.push_back(r.status);
                      records_when_sent.push_back(records_on_disk());
                    });
    };
    send("PUT", "/v1/profiles/ci", put_body("key-123").dump());  // no key in the answer: sent at once
    EXPECT_EQ(statuses, (std::vector<int>{201}));
    audit.flush();
    send("GET", "/v1/profiles/ci/token");
    send("GET", "/v1/profiles/ci/token");
    EXPECT_EQ(statuses, (std::vector<int>{201}));  // both tokens wait for their records
    EXPECT_EQ(flushes_scheduled, 2);
    audit.flush();
    EXPECT_EQ(statuses, (std::vector<int>{201, 200, 200}));
    EXPECT_EQ(records_when_sent, (std::vector<std::size_t>{0, 3, 3}));  // the store's, then both tokens' together
  }
  std::remove(path.c_str());
  ::rmdir(dir);
}

TEST(RouterThreaded, QueuedRequestsAreAnsweredInOrderBeforeStopReturns) {
  ThreadedStore store;
  TokenCache cache(std::chrono::seconds(0));
  Policy policy;
  AuditLog audit("/dev/null");
  StoreWorker worker(store);
  Metrics metrics;
  Router router(worker, cache, policy, audit, metrics);
  std::vector<int> statuses;  // written only by the store thread until stop() joins it
  const auto send = [&](std::string method, std::string target, std::string body = {}) {
    router.handle(Request{std::move(method), std::move(target), kJson, std::move(body)}, owner(),
                  [&](Response r) { statuses.push_back(r.status); });
  };
  send("PUT", "/v1/profiles/ci", put_body("key-123").dump());
  send("GET", "/v1/profiles/ci/token");
  send("DELETE", "/v1/profiles/ci");
  send("GET", "/v1/profiles/ci/token");
  worker.stop();
  EXPECT_EQ(statuses, (std::vector<int>{201, 200, 204, 404}));
}

}  // namespace
}  // namespace kosli::daemon
