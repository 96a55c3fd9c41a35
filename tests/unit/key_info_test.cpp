// Kosli's answer about a service-account key (GET …/api-keys/<key_id>): epoch
// seconds that may be fractional; and how a profile's unknown expiry is said.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/kosli/kosli_api.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {
namespace {

TEST(KeyInfo, FractionalEpochSecondsParseToWholeSeconds) {
  const auto info = parse_key_info(
      R"({"id":"k1","description":"ci","created_at":1764547200.918273,"expires_at":1796083200.5,"last_used_at":null})");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->id, "k1");
  EXPECT_EQ(info->created_at, 1764547200);
  EXPECT_EQ(info->expires_at, 1796083200);
  EXPECT_EQ(info->last_used_at, 0);
}

TEST(KeyInfo, WholeSecondsRfc3339AndNonsense) {
  EXPECT_EQ(parse_key_info(R"({"id":7,"expires_at":1796083200})")->expires_at, 1796083200);
  EXPECT_EQ(parse_key_info(R"({"id":7,"expires_at":1796083200})")->id, "7");
  EXPECT_EQ(parse_key_info(R"({"expires_at":"2026-12-01T00:00:00Z"})")->expires_at, 1796083200);
  EXPECT_EQ(parse_key_info(R"({"expires_at":-5})")->expires_at, 0);
  EXPECT_EQ(parse_key_info(R"({"expires_at":1e300})")->expires_at, 0);
  EXPECT_EQ(parse_key_info(R"({"expires_at":true})")->expires_at, 0);
  EXPECT_FALSE(parse_key_info("[]").has_value());
  EXPECT_FALSE(parse_key_info("<html>").has_value());
}

TEST(KeyInfo, AnUnknownExpiryIsNullOnTheWireWithHowToLearnIt) {
  ProfileMeta meta{};
  meta.name = "me";
  meta.org = "acme";
  meta.host = "https://app.kosli.com";
  meta.kind = KeyKind::personal;
  auto j = to_json(meta);
  EXPECT_TRUE(j["expires_at"].is_null());
  EXPECT_TRUE(j["expiry_source"].is_null());
  EXPECT_NE(how_to_learn_expiry(meta).find("--kind personal --expires-at TIME"), std::string::npos);
  meta.kind = KeyKind::service_account;
  EXPECT_NE(how_to_learn_expiry(meta).find("--service-account SA --key-id ID"), std::string::npos);
  meta.service_account = "ci";
  meta.key_id = "k1";
  EXPECT_NE(how_to_learn_expiry(meta).find("kosli-cred verify --profile me"), std::string::npos);

  meta.expires_at = 1796083200;
  meta.expiry_source = std::string(kExpiryFromKosli);
  j = to_json(meta);
  EXPECT_EQ(j["expires_at"], "2026-12-01T00:00:00Z");
  EXPECT_EQ(j["expiry_source"], "kosli");
  const auto back = profile_from_json(j);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->expiry_source, "kosli");
  EXPECT_EQ(back->expires_at, 1796083200);
}

}  // namespace
}  // namespace kosli::daemon
