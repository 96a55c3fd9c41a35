// Input that nlohmann or a lenient reading would take, and that must not be
// taken: a field named twice (the last would win past a check of the first),
// 0 as an expiry (it read as "never"), and what a copy and paste brings along
// with a key. Each gets a 4xx or exit 2 that names the problem without
// repeating the key, and nothing is stored.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;

class StrictInputTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.emplace(socket(), std::vector<std::string>{"--backend", "memory"}); }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  // The answer to a PUT of `body` to profile `name`.
  RawResponse put(const std::string& name, const std::string& body) {
    const auto r = exchange(socket(), http_request("PUT", "/v1/profiles/" + name, body));
    EXPECT_TRUE(r.has_value());
    return r.value_or(RawResponse{});
  }

  void expect_not_stored(const std::string& name) {
    EXPECT_EQ(cred(socket(), {"show", "--profile", name}).exit_code, 3) << name << " was stored";
  }

  TempDir dir_;
  std::optional<Daemon> daemon_;
};

TEST_F(StrictInputTest, AFieldGivenTwiceIsRefusedAndNothingIsStored) {
  const std::string key = unique_key();
  const auto r = put("twice", R"({"org":"acme","host":"https://app.kosli.com","kind":"personal",)"
                              R"("api_key":"","api_key":")" + key + R"("})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("the field 'api_key' is given twice"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(key), std::string::npos);
  expect_not_stored("twice");

  const auto host_twice = put("host-twice", R"({"org":"acme","host":"https://app.kosli.com",)"
                                            R"("host":"https://evil.example","kind":"personal","api_key":")" +
                                                key + R"("})");
  EXPECT_EQ(host_twice.status, 400) << host_twice.body;
  expect_not_stored("host-twice");

  const auto rotated = exchange(socket(), http_request("POST", "/v1/profiles/twice/rotate",
                                                       R"({"api_key":"a","api_key":"b"})"));
  ASSERT_TRUE(rotated.has_value());
  EXPECT_EQ(rotated->status, 400);
  EXPECT_NE(rotated->body.find("given twice"), std::string::npos) << rotated->body;
}

TEST_F(StrictInputTest, TheEpochIsNotAnExpiry) {
  for (const json expiry : {json(0), json("1970-01-01T00:00:00Z")}) {
    const auto r = put("epoch", json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "personal"},
                                     {"api_key", unique_key()}, {"expires_at", expiry}}
                                    .dump());
    EXPECT_EQ(r.status, 400) << expiry;
    EXPECT_NE(r.body.find("not when a key expires"), std::string::npos) << r.body;
  }
  expect_not_stored("epoch");

  const auto stored = cred(socket(), {"store", "--profile", "epoch", "--org", "acme", "--expires-at",
                                      "1970-01-01T00:00:00Z"},
                           RunOptions{unique_key()});
  EXPECT_EQ(stored.exit_code, 2) << stored.err;
  EXPECT_NE(stored.err.find("not when a key expires"), std::string::npos) << stored.err;
  expect_not_stored("epoch");

  // null still means "not known".
  EXPECT_EQ(put("epoch", json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "personal"},
                              {"api_key", unique_key()}, {"expires_at", nullptr}}
                             .dump())
                .status,
            201);
}

TEST_F(StrictInputTest, CopyAndPasteStowawaysInAKeyAreRefusedWithoutRepeatingIt) {
  const std::string key = unique_key();
  for (const std::string& stowaway : {std::string(" "), std::string("\u00a0"), std::string("\u200b"),
                                      std::string("\u2028"), std::string("\u0085"), std::string("\u009b")}) {
    const auto r = cred(socket(), {"store", "--profile", "pasted", "--org", "acme"}, RunOptions{key + stowaway});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("no Kosli key does"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(key), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find(key), std::string::npos);
  }
  expect_not_stored("pasted");
  // The newline a shell or a file adds is not part of the key.
  EXPECT_EQ(cred(socket(), {"store", "--profile", "pasted", "--org", "acme"}, RunOptions{key + "\n"}).exit_code, 0);
  EXPECT_EQ(cred(socket(), {"token", "--profile", "pasted"}).out, key + "\n");
}

}  // namespace
}  // namespace kosli::test
