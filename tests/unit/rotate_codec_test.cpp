// The wire pieces of verify, rotate and expiry: the rotate body, the profile's
// verification fields, the token's warning window and the day arithmetic.
#include <string>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/profile.hpp"
#include "tests/unit/test_helpers.hpp"

namespace kosli {
namespace {

using nlohmann::json;
using test::Mentions;

RotateRequest parse_ok(const std::string& text) {
  std::string body = text;
  auto parsed = parse_rotate(body);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    ADD_FAILURE() << text << ": " << e->message;
    return {};
  }
  return std::move(std::get<RotateRequest>(parsed));
}

std::string parse_error(const std::string& text) {
  std::string body = text;
  auto parsed = parse_rotate(body);
  if (auto* e = std::get_if<CodecError>(&parsed)) return e->message;
  ADD_FAILURE() << text << " parsed";
  return {};
}

TEST(ParseRotate, ByHandTakesTheKeyAndOptions) {
  const auto r = parse_ok(R"({"api_key":"new-key","verify":false,"key_id":"k2","expires_at":"2027-01-01T00:00:00Z"})");
  EXPECT_FALSE(r.via_api);
  EXPECT_EQ(r.api_key.reveal(), "new-key");
  EXPECT_FALSE(r.verify);
  EXPECT_EQ(r.key_id, "k2");
  EXPECT_EQ(r.expires_at, 1798761600);
  const auto plain = parse_ok(R"({"api_key":"new-key"})");
  EXPECT_TRUE(plain.verify) << "a new key is checked unless asked not to";
  EXPECT_EQ(plain.expires_at, std::nullopt);
}

TEST(ParseRotate, ViaApiTakesGraceAndExpiry) {
  const auto r = parse_ok(R"({"via_api":{"grace_period_hours":2,"expires_at":1798761600}})");
  EXPECT_TRUE(r.via_api);
  EXPECT_TRUE(r.api_key.empty());
  EXPECT_EQ(r.grace_period_hours, 2);
  EXPECT_EQ(r.expires_at, 1798761600);
  const auto defaults = parse_ok(R"({"via_api":{}})");
  EXPECT_EQ(defaults.grace_period_hours, 24);
  EXPECT_EQ(defaults.expires_at, std::nullopt);
}

TEST(ParseRotate, RefusesWhatIsNotOneOfTheTwoShapes) {
  EXPECT_TRUE(Mentions(parse_error("{}"), "either"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":"k","via_api":{}})"), "not both"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":""})"), "empty"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":"a\nb"})"), "control character"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":7})"), "'api_key'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":"k","verify":"no"})"), "'verify'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":"k","key_id":"a/b"})"), "'key_id'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"api_key":"k","colour":1})"), "'colour'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{"grace_period_hours":0}})"), "1 to 720"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{"grace_period_hours":721}})"), "1 to 720"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{"grace_period_hours":1.5}})"), "grace_period_hours"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{"expires_at":"soon"}})"), "via_api.expires_at"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{},"expires_at":1})"), "inside 'via_api'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":{"x":1}})"), "'via_api.x'"));
  EXPECT_TRUE(Mentions(parse_error(R"({"via_api":[]})"), "object"));
  EXPECT_TRUE(Mentions(parse_error("[1]"), "object"));
  EXPECT_TRUE(Mentions(parse_error("{"), "JSON"));
}

TEST(ParseRotate, WipesTheBodyAndNeverEchoesTheKey) {
  std::string body = R"({"api_key":"secret-key-123","colour":1})";
  auto parsed = parse_rotate(body);
  ASSERT_TRUE(std::holds_alternative<CodecError>(parsed));
  EXPECT_EQ(std::get<CodecError>(parsed).message.find("secret-key-123"), std::string::npos);
  EXPECT_TRUE(body.empty());
}

TEST(SerializeRotate, RoundTrips) {
  RotateRequest by_hand;
  by_hand.api_key = Secret("key-abc");
  by_hand.verify = false;
  by_hand.key_id = "k7";
  by_hand.expires_at = 1798761600;
  std::string text = serialize_rotate(by_hand);
  const auto back = parse_ok(text);
  EXPECT_EQ(back.api_key.reveal(), "key-abc");
  EXPECT_FALSE(back.verify);
  EXPECT_EQ(back.key_id, "k7");
  EXPECT_EQ(back.expires_at, 1798761600);

  RotateRequest via;
  via.via_api = true;
  via.grace_period_hours = 48;
  via.expires_at = 1798761600;
  const auto j = json::parse(serialize_rotate(via));
  EXPECT_EQ(j, (json{{"via_api", {{"grace_period_hours", 48}, {"expires_at", "2027-01-01T00:00:00Z"}}}}));
  EXPECT_EQ(j.dump().find("api_key"), std::string::npos);
}

TEST(ProfileMetaJson, VerificationFieldsAreOptionalAndRoundTrip) {
  ProfileMeta m;
  m.name = "ci";
  m.org = "acme";
  m.host = "https://app.kosli.com";
  auto j = to_json(m);
  EXPECT_TRUE(j["last_verified_at"].is_null());
  EXPECT_TRUE(j["last_verify_result"].is_null());
  m.last_verified_at = 1798761600;
  m.last_verify_result = std::string(kVerifyForbidden);
  const auto back = profile_from_json(to_json(m));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->last_verified_at, 1798761600);
  EXPECT_EQ(back->last_verify_result, "forbidden");
  // A profile from a daemon that predates them still parses.
  j.erase("last_verified_at");
  j.erase("last_verify_result");
  const auto old = profile_from_json(j);
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->last_verified_at, 0);
  EXPECT_EQ(old->last_verify_result, "");
}

TEST(TokenBody, CarriesTheWarningWindowOnlyForAKeyThatExpires) {
  const Secret key("key-123");
  auto with_expiry = json::parse(serialize_token(key, TokenInfo{"acme", "https://app.kosli.com", 1798761600, 7}));
  EXPECT_EQ(with_expiry["expiry_warning_days"], 7);
  auto without = json::parse(serialize_token(key, TokenInfo{"acme", "https://app.kosli.com", 0, 7}));
  EXPECT_FALSE(without.contains("expiry_warning_days"));

  std::string body = with_expiry.dump();
  auto parsed = parse_token(body);
  ASSERT_TRUE(std::holds_alternative<TokenResponse>(parsed));
  EXPECT_EQ(std::get<TokenResponse>(parsed).info.expiry_warning_days, 7);
  body = without.dump();
  parsed = parse_token(body);
  EXPECT_EQ(std::get<TokenResponse>(parsed).info.expiry_warning_days, 0);
}

TEST(Expiry, DaysLeftRoundsTowardsThePast) {
  const std::int64_t now = 1798761600, day = 86400;
  EXPECT_EQ(days_left(now + 3 * day, now), 3);
  EXPECT_EQ(days_left(now + 3 * day - 1, now), 2);
  EXPECT_EQ(days_left(now + 1, now), 0);
  EXPECT_EQ(days_left(now, now), 0);
  EXPECT_EQ(days_left(now - 1, now), -1);
  EXPECT_EQ(days_left(now - day, now), -1);
  EXPECT_EQ(days_left(now - day - 1, now), -2);
}

TEST(Expiry, WithinTheWindowOrPast) {
  const std::int64_t now = 1798761600, day = 86400;
  EXPECT_FALSE(expiring_within(0, 7, now)) << "0 is never";
  EXPECT_TRUE(expiring_within(now + 7 * day, 7, now));
  EXPECT_FALSE(expiring_within(now + 7 * day + 1, 7, now));
  EXPECT_TRUE(expiring_within(now - 1, 7, now));
  EXPECT_TRUE(expiring_within(now - 1, 0, now)) << "an expired key is always reported";
  EXPECT_FALSE(expiring_within(now + 1, 0, now));
}

}  // namespace
}  // namespace kosli
