#include "daemon/keys/token_cache.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <variant>

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

using std::chrono::seconds;

const TokenInfo kInfo{"acme", "https://app.kosli.com", 0};

void put(TokenCache& cache, const std::string& name, const std::string& key) {
  cache.put(name, Secret(key), kInfo, cache.generation());
}

// The token the cache would answer with for `name`, or "" when it has none.
std::string cached_token(TokenCache& cache, const std::string& name) {
  auto body = cache.token_body(name);
  if (!body) return "";
  auto parsed = parse_token(*body);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    ADD_FAILURE() << "the cache's body is not a token: " << e->message;
    return "";
  }
  return std::string(std::get<TokenResponse>(parsed).token.reveal());
}

TEST(TokenCache, AnswersWithTheCachedTokenAndItsInfo) {
  TokenCache cache(seconds(600));
  EXPECT_EQ(cache.token_body("ci"), std::nullopt);
  cache.put("ci", Secret("key-1"), TokenInfo{"acme", "https://app.us.kosli.com", 1795691986},
            cache.generation());

  auto body = cache.token_body("ci");
  ASSERT_TRUE(body.has_value());
  auto parsed = parse_token(*body);
  ASSERT_TRUE(std::holds_alternative<TokenResponse>(parsed));
  const auto& token = std::get<TokenResponse>(parsed);
  EXPECT_EQ(token.token.reveal(), "key-1");
  EXPECT_EQ(token.info.org, "acme");
  EXPECT_EQ(token.info.host, "https://app.us.kosli.com");
  EXPECT_EQ(token.info.expires_at, 1795691986);
  EXPECT_EQ(cached_token(cache, "other"), "");
}

TEST(TokenCache, ATtlOfZeroNeverCaches) {
  TokenCache cache(seconds(0));
  put(cache, "ci", "key-1");
  EXPECT_EQ(cache.token_body("ci"), std::nullopt);
  EXPECT_EQ(cache.sweep(), 0u);
}

TEST(TokenCache, PutReplacesAnEntry) {
  TokenCache cache(seconds(600));
  put(cache, "ci", "key-1");
  put(cache, "ci", "key-2");
  EXPECT_EQ(cached_token(cache, "ci"), "key-2");
  EXPECT_EQ(cache.sweep(), 1u);
}

TEST(TokenCache, DropForgetsOneProfile) {
  TokenCache cache(seconds(600));
  put(cache, "ci", "key-1");
  put(cache, "prod", "key-2");
  cache.drop("ci");
  EXPECT_EQ(cached_token(cache, "ci"), "");
  EXPECT_EQ(cached_token(cache, "prod"), "key-2");
}

TEST(TokenCache, ClearForgetsEverything) {
  TokenCache cache(seconds(600));
  put(cache, "ci", "key-1");
  put(cache, "prod", "key-2");
  cache.clear();
  EXPECT_EQ(cache.sweep(), 0u);
  EXPECT_EQ(cached_token(cache, "prod"), "");
}

TEST(TokenCache, IgnoresAFillLoadedBeforeADrop) {
  TokenCache cache(seconds(600));
  const auto loaded_at = cache.generation();
  cache.drop("ci");  // an erase finished while the key was being loaded
  cache.put("ci", Secret("key-1"), kInfo, loaded_at);
  EXPECT_EQ(cache.token_body("ci"), std::nullopt);
}

TEST(TokenCache, IgnoresAFillLoadedBeforeALock) {
  TokenCache cache(seconds(600));
  const auto loaded_at = cache.generation();
  cache.clear();
  cache.put("ci", Secret("key-1"), kInfo, loaded_at);
  EXPECT_EQ(cache.token_body("ci"), std::nullopt);
  put(cache, "ci", "key-2");  // a fill with the current generation still works
  EXPECT_EQ(cached_token(cache, "ci"), "key-2");
}

TEST(TokenCache, ForgetsEntriesPastTheirTtl) {
  TokenCache cache(seconds(1));
  put(cache, "ci", "key-1");
  put(cache, "prod", "key-2");
  EXPECT_EQ(cache.sweep(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(cache.token_body("ci"), std::nullopt);
  EXPECT_EQ(cache.sweep(), 0u);  // "prod" too, without being asked for
}

}  // namespace
}  // namespace kosli::daemon
