#include "proto/profile.hpp"

#include <set>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/test_helpers.hpp"

namespace kosli {
namespace {

using nlohmann::json;
using test::Mentions;

// --- profile names -----------------------------------------------------------

TEST(ProfileName, AcceptsNamesOfTheDocumentedShape) {
  for (const std::string& name :
       std::vector<std::string>{"default", "a", "0", "ci-eu.1_x", std::string(64, 'a')}) {
    EXPECT_EQ(profile_name_problem(name), std::nullopt) << name;
  }
}

TEST(ProfileName, RefusesEverythingElse) {
  for (const std::string& name :
       std::vector<std::string>{"", std::string(65, 'a'), "Upper", "-x", ".x", "_x", "a/b", "a%2fb",
                                "..", "a b", "\xc3\xa9" /* é */, "x\n"}) {
    const auto problem = profile_name_problem(name);
    ASSERT_TRUE(problem.has_value()) << '"' << name << '"';
    EXPECT_NE(problem->find("profile name"), std::string::npos) << *problem;
  }
}

// --- PUT /v1/profiles/{name} bodies ---------------------------------------------

json valid_put() {
  return {{"org", "acme"},
          {"host", "https://app.kosli.com"},
          {"kind", "service-account"},
          {"api_key", "key-123"}};
}

// The parsed request; an error fails the test.
PutProfileRequest parse_put_ok(const json& body) {
  std::string text = body.dump();
  auto parsed = parse_put_profile(text);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    ADD_FAILURE() << body.dump() << ": " << e->message;
    return {};
  }
  return std::move(std::get<PutProfileRequest>(parsed));
}

// The error message for `text`, or "" (and a failure) when it parses.
std::string parse_put_error(std::string text) {
  auto parsed = parse_put_profile(text);
  if (auto* e = std::get_if<CodecError>(&parsed)) return e->message;
  ADD_FAILURE() << "accepted: " << text;
  return "";
}
std::string parse_put_error(const json& body) { return parse_put_error(body.dump()); }

json with(json body, const std::string& field, json value) {
  body[field] = std::move(value);
  return body;
}
json without(json body, const std::string& field) {
  body.erase(field);
  return body;
}

// The error for a valid body with `field` set to `value`.
std::string error_with(const std::string& field, json value) {
  return parse_put_error(with(valid_put(), field, std::move(value)));
}

TEST(ParsePutProfile, ParsesAValidBody) {
  const auto r = parse_put_ok(json{{"org", "acme"},
                                   {"host", "HTTPS://App.Kosli.com/"},
                                   {"kind", "personal"},
                                   {"api_key", "key-123"},
                                   {"description", "laptop"},
                                   {"service_account", "ci-bot"},
                                   {"key_id", "k1"}});
  EXPECT_EQ(r.org, "acme");
  EXPECT_EQ(r.host, "https://app.kosli.com");
  EXPECT_EQ(r.kind, KeyKind::personal);
  EXPECT_EQ(r.api_key.reveal(), "key-123");
  EXPECT_EQ(r.description, "laptop");
  EXPECT_EQ(r.service_account, "ci-bot");
  EXPECT_EQ(r.key_id, "k1");
  EXPECT_EQ(r.expires_at, 0);
}

TEST(ParsePutProfile, ReadsExpiresAtAsRfc3339UnixSecondsOrNull) {
  const auto expires_at = [](json value) {
    return parse_put_ok(with(valid_put(), "expires_at", std::move(value))).expires_at;
  };
  EXPECT_EQ(expires_at("2026-11-26T11:19:46Z"), 1795691986);
  EXPECT_EQ(expires_at("2026-11-26T13:19:46+02:00"), 1795691986);
  EXPECT_EQ(expires_at(1795691986), 1795691986);
  EXPECT_EQ(expires_at(nullptr), 0);
}

// 0 was once "never"; as an expiry it is a mistake that would read as "never".
TEST(ParsePutProfile, RefusesTheEpochAsAnExpiry) {
  EXPECT_TRUE(Mentions(error_with("expires_at", 0), "'expires_at' is 1970-01-01T00:00:00Z"));
  EXPECT_TRUE(Mentions(error_with("expires_at", "1970-01-01T00:00:00Z"), "not when a key expires"));
  EXPECT_TRUE(Mentions(error_with("expires_at", "1970-01-01T01:00:00+01:00"), "not when a key expires"));
}

TEST(ParsePutProfile, RefusesAFieldGivenTwice) {
  // nlohmann alone keeps the last: the empty key would pass its check, then "x" be stored.
  const std::string twice = R"({"org":"acme","host":"https://app.kosli.com","kind":"personal",)"
                            R"("api_key":"","api_key":"key-123"})";
  EXPECT_TRUE(Mentions(parse_put_error(twice), "the field 'api_key' is given twice"));
  const std::string org_twice = R"({"org":"acme","org":"evil","host":"https://app.kosli.com",)"
                                R"("kind":"personal","api_key":"key-123"})";
  EXPECT_TRUE(Mentions(parse_put_error(org_twice), "the field 'org' is given twice"));
  // The same name in two objects is not a duplicate.
  std::string rotate = R"({"via_api":{"expires_at":null},"expires_at":null})";
  auto parsed = parse_rotate(rotate);
  ASSERT_TRUE(std::holds_alternative<CodecError>(parsed));
  EXPECT_FALSE(Mentions(std::get<CodecError>(parsed).message, "twice"));
}

TEST(ParsePutProfile, WipesTheInputBody) {
  std::string body = valid_put().dump();
  parse_put_profile(body);
  EXPECT_TRUE(body.empty());

  std::string bad = "{\"api_key\": \"key-123\", \"org\": 5}";
  parse_put_profile(bad);
  EXPECT_TRUE(bad.empty());
}

TEST(ParsePutProfile, RefusesBodiesThatAreNotAJsonObject) {
  EXPECT_TRUE(Mentions(parse_put_error(std::string("not json")), "JSON"));
  EXPECT_TRUE(Mentions(parse_put_error(std::string("")), "JSON"));
  EXPECT_TRUE(Mentions(parse_put_error(json::array({valid_put()})), "object"));
}

TEST(ParsePutProfile, RefusesAMissingOrMistypedApiKey) {
  EXPECT_TRUE(Mentions(parse_put_error(without(valid_put(), "api_key")), "'api_key' is required"));
  EXPECT_TRUE(Mentions(error_with("api_key", 42), "'api_key' must be a string"));
  EXPECT_TRUE(Mentions(error_with("api_key", nullptr), "'api_key'"));
}

TEST(ParsePutProfile, RefusesAnApiKeyThatCannotBeReal) {
  EXPECT_TRUE(Mentions(error_with("api_key", ""), "API key is empty"));
  EXPECT_TRUE(Mentions(error_with("api_key", "key\n"), "control character"));
  // nlohmann writes the NUL as the JSON escape \u0000.
  EXPECT_TRUE(Mentions(error_with("api_key", std::string("ke\0y", 4)), "control character"));
  EXPECT_TRUE(Mentions(error_with("api_key", std::string(5000, 'k')), "API key"));
}

// What a copy and paste brings along, and no Kosli key holds; the message
// never repeats the key.
TEST(ParsePutProfile, RefusesStowawaysFromACopyAndPaste) {
  for (const std::string key : {"key-123 ", " key-123", "key 123", "key-123\u00a0", "key\u200b-123",
                                "key-123\u2028", "key\u0085-123", "key\u009b-123", "key\u00e9-123",
                                "key-123\\t"}) {
    const auto error = parse_put_error(R"({"org":"acme","host":"https://app.kosli.com","kind":"personal",)"
                                       R"("api_key":")" + key + R"("})");
    EXPECT_TRUE(Mentions(error, "no Kosli key does")) << key;
    EXPECT_FALSE(Mentions(error, "key-123")) << error;
    EXPECT_FALSE(Mentions(error, "123")) << error;
  }
}

TEST(ParsePutProfile, NamesTheMissingField) {
  for (const char* field : {"org", "host", "kind"}) {
    const std::string error = parse_put_error(without(valid_put(), field));
    EXPECT_TRUE(Mentions(error, std::string("'") + field + "' is required"));
  }
}

TEST(ParsePutProfile, NamesTheMistypedField) {
  for (const char* field : {"org", "host", "kind", "description", "service_account", "key_id"}) {
    EXPECT_TRUE(Mentions(error_with(field, 7), std::string("'") + field + "' must be a string"));
    EXPECT_TRUE(Mentions(error_with(field, json::array()), std::string("'") + field + "'"));
  }
  EXPECT_TRUE(Mentions(error_with("expires_at", true), "'expires_at'"));
  EXPECT_TRUE(Mentions(error_with("expires_at", 1.5), "'expires_at'"));
}

TEST(ParsePutProfile, NamesAnUnknownField) {
  EXPECT_TRUE(Mentions(error_with("apikey", "x"), "unknown field 'apikey'"));
}

TEST(ParsePutProfile, NamesTheFieldWithABadValue) {
  EXPECT_TRUE(Mentions(error_with("kind", "robot"), "'kind'"));
  EXPECT_TRUE(Mentions(error_with("org", ""), "'org'"));
  EXPECT_TRUE(Mentions(error_with("org", "ac me"), "'org'"));
  EXPECT_TRUE(Mentions(error_with("host", "http://app.kosli.com"), "'host'"));
  EXPECT_TRUE(Mentions(error_with("host", "app.kosli.com"), "'host'"));
  EXPECT_TRUE(Mentions(error_with("expires_at", -1), "'expires_at'"));
  EXPECT_TRUE(Mentions(error_with("expires_at", "2027-02-30T00:00:00Z"), "'expires_at'"));
  EXPECT_TRUE(Mentions(error_with("expires_at", "tomorrow"), "'expires_at'"));
  EXPECT_TRUE(Mentions(error_with("description", "two\nlines"), "'description'"));
  EXPECT_TRUE(Mentions(error_with("key_id", "a/b"), "'key_id'"));
}

TEST(ParsePutProfile, EveryAcceptedExpiryCanBeReadBackByTheClient) {
  for (const char* seconds :
       {"253402300799", "253402300800", "9223372036854775807", "18446744073709551615"}) {
    std::string body = with(valid_put(), "expires_at", nullptr).dump();
    body.replace(body.find("null"), 4, seconds);
    auto parsed = parse_put_profile(body);
    const auto* put = std::get_if<PutProfileRequest>(&parsed);
    if (put == nullptr) continue;  // refusing it is fine
    EXPECT_GT(put->expires_at, 0) << seconds;
    ProfileMeta meta;
    meta.kind = KeyKind::personal;
    meta.expires_at = put->expires_at;
    const auto back = profile_from_json(to_json(meta));
    EXPECT_TRUE(back.has_value()) << seconds << ": " << to_json(meta)["expires_at"];
    if (back) {
      EXPECT_EQ(back->expires_at, put->expires_at) << seconds;
    }
  }
}

TEST(ParsePutProfile, AcceptsALoopbackHttpHost) {
  EXPECT_EQ(parse_put_ok(with(valid_put(), "host", "http://localhost:8080")).host,
            "http://localhost:8080");
}

TEST(SerializePutProfile, RoundTripsThroughTheParser) {
  PutProfileRequest in;
  in.org = "acme";
  in.host = "https://app.us.kosli.com";
  in.kind = KeyKind::personal;
  in.api_key = Secret("key-\"quoted\"-123");
  in.expires_at = 1795691986;
  in.description = "CI key";
  in.service_account = "ci";
  in.key_id = "k-1";

  std::string body = serialize_put_profile(in);
  auto parsed = parse_put_profile(body);
  ASSERT_TRUE(std::holds_alternative<PutProfileRequest>(parsed))
      << std::get<CodecError>(parsed).message;
  const auto& out = std::get<PutProfileRequest>(parsed);
  EXPECT_EQ(out.org, in.org);
  EXPECT_EQ(out.host, in.host);
  EXPECT_EQ(out.kind, in.kind);
  EXPECT_TRUE(out.api_key.equals(in.api_key));
  EXPECT_EQ(out.expires_at, in.expires_at);
  EXPECT_EQ(out.description, in.description);
  EXPECT_EQ(out.service_account, in.service_account);
  EXPECT_EQ(out.key_id, in.key_id);
}

// --- token bodies ---------------------------------------------------------------

TEST(TokenBody, HasTheDocumentedFields) {
  std::string body = serialize_token(Secret("tok"), TokenInfo{"acme", "https://app.kosli.com", 0});
  const auto j = json::parse(body);
  EXPECT_EQ(j, (json{{"token", "tok"},
                     {"token_type", "Bearer"},
                     {"org", "acme"},
                     {"host", "https://app.kosli.com"},
                     {"expires_at", nullptr}}));
}

TEST(TokenBody, RoundTripsThroughTheParserAndIsWiped) {
  const TokenInfo info{"acme", "https://app.kosli.com", 1795691986};
  std::string body = serialize_token(Secret("tok-\\-123"), info);
  EXPECT_NE(body.find("2026-11-26T11:19:46Z"), std::string::npos) << body;
  auto parsed = parse_token(body);
  EXPECT_TRUE(body.empty());
  ASSERT_TRUE(std::holds_alternative<TokenResponse>(parsed))
      << std::get<CodecError>(parsed).message;
  const auto& r = std::get<TokenResponse>(parsed);
  EXPECT_EQ(r.token.reveal(), "tok-\\-123");
  EXPECT_EQ(r.info.org, info.org);
  EXPECT_EQ(r.info.host, info.host);
  EXPECT_EQ(r.info.expires_at, info.expires_at);
}

TEST(TokenBody, ParserRefusesAnswersWithoutAToken) {
  for (std::string body : {"", "[]", R"({"org":"acme"})", R"({"token":5})"}) {
    EXPECT_TRUE(std::holds_alternative<CodecError>(parse_token(body))) << body;
  }
}

// --- profile metadata -------------------------------------------------------------

ProfileMeta sample_meta() {
  ProfileMeta m;
  m.name = "ci";
  m.org = "acme";
  m.host = "https://app.kosli.com";
  m.kind = KeyKind::service_account;
  m.description = "CI key";
  m.created_at = 1764155986;  // 2025-11-26T11:19:46Z
  m.expires_at = 1795691986;  // 2026-11-26T11:19:46Z
  m.expiry_source = "kosli";
  m.fingerprint = "sha256:0123456789ab";
  m.service_account = "ci-bot";
  m.key_id = "k1";
  m.persistent = false;
  return m;
}

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> keys;
  for (const auto& item : j.items()) keys.insert(item.key());
  return keys;
}

TEST(ProfileMetaJson, HasExactlyTheDocumentedFields) {
  const auto j = to_json(sample_meta());
  EXPECT_EQ(keys_of(j), (std::set<std::string>{"name", "org", "host", "kind", "description",
                                               "created_at", "expires_at", "expiry_source", "fingerprint",
                                               "service_account", "key_id", "persistent",
                                               "last_verified_at", "last_verify_result"}));
  EXPECT_EQ(j["kind"], "service-account");
  EXPECT_EQ(j["created_at"], "2025-11-26T11:19:46Z");
  EXPECT_EQ(j["expires_at"], "2026-11-26T11:19:46Z");
  EXPECT_EQ(j["expiry_source"], "kosli");
  EXPECT_EQ(j["fingerprint"], "sha256:0123456789ab");
  EXPECT_EQ(j["persistent"], false);
}

TEST(ProfileMetaJson, WritesNullForNeverExpiresAndForMissingOptionalNames) {
  ProfileMeta m = sample_meta();
  m.kind = KeyKind::personal;
  m.expires_at = 0;
  m.service_account.clear();
  m.key_id.clear();
  const auto j = to_json(m);
  EXPECT_EQ(j["kind"], "personal");
  EXPECT_TRUE(j["expires_at"].is_null());
  EXPECT_TRUE(j["expiry_source"].is_null()) << "an unknown expiry has no source";
  EXPECT_TRUE(j["service_account"].is_null());
  EXPECT_TRUE(j["key_id"].is_null());
}

void expect_same_meta(const ProfileMeta& a, const ProfileMeta& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.org, b.org);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.expires_at, b.expires_at);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(a.service_account, b.service_account);
  EXPECT_EQ(a.key_id, b.key_id);
  EXPECT_EQ(a.persistent, b.persistent);
}

TEST(ProfileMetaJson, RoundTripsThroughProfileFromJson) {
  ProfileMeta never = sample_meta();
  never.expires_at = 0;
  never.key_id.clear();
  never.persistent = true;
  never.kind = KeyKind::personal;
  for (const auto& m : {sample_meta(), never}) {
    const auto back = profile_from_json(to_json(m));
    ASSERT_TRUE(back.has_value()) << to_json(m).dump();
    expect_same_meta(*back, m);
  }
}

TEST(ProfileMetaJson, ProfileFromJsonRefusesMistypedFields) {
  EXPECT_FALSE(profile_from_json(json::array()).has_value());
  EXPECT_FALSE(profile_from_json(with(to_json(sample_meta()), "org", 5)).has_value());
  EXPECT_FALSE(profile_from_json(with(to_json(sample_meta()), "kind", "robot")).has_value());
  EXPECT_FALSE(profile_from_json(with(to_json(sample_meta()), "expires_at", "soon")).has_value());
}

TEST(ProfileMetaJson, ProfileFromJsonRefusesMissingOrMistypedFields) {
  EXPECT_FALSE(profile_from_json(without(to_json(sample_meta()), "name")).has_value());
  EXPECT_FALSE(profile_from_json(without(to_json(sample_meta()), "org")).has_value());
  EXPECT_FALSE(profile_from_json(with(to_json(sample_meta()), "persistent", "no")).has_value());
}

// ---- verification fields, the token's warning window, the day arithmetic --------

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
