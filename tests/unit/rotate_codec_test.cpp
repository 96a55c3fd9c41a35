// The rotate body (proto/rotate.cpp): the two shapes, refused shapes, and a
// body that is wiped and never echoes the key.
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

}  // namespace
}  // namespace kosli
