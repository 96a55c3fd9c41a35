// proto/answers.hpp: the daemon's answers as both programs read and write them.
// The expected JSON is spelled out by hand: it is the contract kosli-cred and
// scripts reading `status --json` rely on.
#include "proto/answers.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proto/time_format.hpp"

namespace kosli {
namespace {

using nlohmann::json;

constexpr std::int64_t kT1 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kT2 = 1767312000;  // 2026-01-02T00:00:00Z

ProfileMeta sample_profile() {
  ProfileMeta m;
  m.name = "ci";
  m.org = "acme";
  m.host = "https://app.kosli.com";
  m.created_at = kT1;
  m.fingerprint = "sha256:0123456789ab";
  return m;
}

HealthAnswer full_health() {
  HealthAnswer h;
  h.version = "1.2.3";
  h.backend = "memory";
  h.persistent = false;
  h.uptime_s = 42;
  h.cached = 2;
  h.profiles = 3;
  h.expiry_warning_days = 14;
  h.expiring = {{"ci", kT2, 1, false}};
  h.expiry_unknown = {{"me", "give it with --expires-at"}};
  h.rotates = true;
  h.rotation = {{"ci", 30, 0, kT2, kT1, kT1, "Kosli answered 500", kT2}};
  h.waiting_keys = {{"ci", "sha256:0123456789ab", "", kT1, 3, "the keyring is locked", kT2,
                     "kosli-cred rotate --profile ci --no-verify < new-key"}};
  h.audit_log = AuditLogHealth{"file", "/var/log/kosli.log", false, "disk full", kT1};
  return h;
}

TEST(AnswersTest, HealthNamesEveryFieldAsTheDaemonSends) {
  const json expected = json::parse(R"({
    "status": "ok", "version": "1.2.3", "backend": "memory", "persistent": false, "uptime_s": 42, "cached": 2,
    "profiles": 3, "expiry_warning_days": 14,
    "expiring": [{"profile": "ci", "expires_at": "2026-01-02T00:00:00Z", "days_left": 1, "expired": false}],
    "expiry_unknown": [{"profile": "me", "how_to_learn": "give it with --expires-at"}],
    "rotation": [{"profile": "ci", "rotate_every_days": 30, "rotate_before_expiry_days": null,
                  "due_at": "2026-01-02T00:00:00Z", "last_rotated_at": "2026-01-01T00:00:00Z",
                  "last_attempt_at": "2026-01-01T00:00:00Z", "last_error": "Kosli answered 500",
                  "next_attempt_at": "2026-01-02T00:00:00Z"}],
    "waiting_keys": [{"profile": "ci", "fingerprint": "sha256:0123456789ab", "key_id": null,
                      "since": "2026-01-01T00:00:00Z", "attempts": 3, "last_error": "the keyring is locked",
                      "old_key_works_until": "2026-01-02T00:00:00Z",
                      "save_by_hand": "kosli-cred rotate --profile ci --no-verify < new-key"}],
    "audit_log": {"kind": "file", "path": "/var/log/kosli.log", "ok": false, "error": "disk full",
                  "failing_since": "2026-01-01T00:00:00Z"}
  })");
  EXPECT_EQ(to_json(full_health()), expected);
  EXPECT_EQ(json::parse(serialize(full_health())), expected);
}

TEST(AnswersTest, HealthReadsBackWhatItWrites) {
  const auto read = health_from_json(to_json(full_health()));
  ASSERT_TRUE(read);
  EXPECT_EQ(to_json(*read), to_json(full_health()));
  EXPECT_EQ(read->waiting_keys.at(0).save_by_hand, "kosli-cred rotate --profile ci --no-verify < new-key");
  EXPECT_EQ(read->rotation.at(0).rotate_before_expiry_days, 0);
  EXPECT_EQ(read->audit_log->failing_since, kT1);
}

// The configuration allows a fraction of a day; the daemon sends the days as
// configured (30 as 30.0), and the reader keeps them.
TEST(AnswersTest, RotationDaysKeepTheirFraction) {
  HealthAnswer h;
  h.rotates = true;
  h.rotation.push_back(RotationSchedule{"ci", 30.0, 7.5, kT1, 0, 0, "", 0});
  const json j = to_json(h);
  EXPECT_EQ(j["rotation"][0]["rotate_every_days"].dump(), "30.0");
  EXPECT_EQ(j["rotation"][0]["rotate_before_expiry_days"].dump(), "7.5");
  const auto read = health_from_json(j);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->rotation.at(0).rotate_every_days, 30.0);
  EXPECT_EQ(read->rotation.at(0).rotate_before_expiry_days, 7.5);
}

TEST(AnswersTest, HealthWithoutStoreOrRotationSendsNeither) {
  HealthAnswer h;
  h.version = "1";
  h.backend = "secret-service";
  h.store_error = "the keyring is locked";
  h.audit_log = AuditLogHealth{"journal", "/ignored", true, "", 0};
  const json j = to_json(h);
  EXPECT_TRUE(j.at("profiles").is_null());
  EXPECT_EQ(j.at("store_error"), "the keyring is locked");
  EXPECT_FALSE(j.contains("expiring"));
  EXPECT_FALSE(j.contains("rotation"));
  EXPECT_FALSE(j.contains("waiting_keys"));
  EXPECT_EQ(j.at("audit_log"), json::parse(R"({"kind":"journal","ok":true})"));

  const auto read = health_from_json(j);
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->profiles);
  EXPECT_FALSE(read->rotates);
  EXPECT_EQ(read->store_error, "the keyring is locked");
}

TEST(AnswersTest, HealthReaderIsLenientButNeedsAnObject) {
  EXPECT_FALSE(health_from_json(json::array()));
  const auto read = health_from_json(json::parse(R"({"version": 7, "cached": "x", "waiting_keys": [1, {}]})"));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->version, "");
  EXPECT_EQ(read->cached, 0);
  EXPECT_TRUE(read->rotates);
  EXPECT_EQ(read->waiting_keys.size(), 1u);
}

TEST(AnswersTest, ListCountsWhatItCannotRead) {
  ListAnswer list;
  list.profiles = {sample_profile()};
  json j = to_json(list);
  ASSERT_EQ(j.at("profiles").size(), 1u);
  EXPECT_EQ(j.at("profiles")[0], to_json(sample_profile()));
  j["profiles"].push_back(json{{"name", "broken"}});
  const auto read = list_from_json(j);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->profiles.size(), 1u);
  EXPECT_EQ(read->unreadable, 1u);
  EXPECT_EQ(list_from_json(json::object())->profiles.size(), 0u);
}

TEST(AnswersTest, VerifySaysValidUnlessKosliRefusedTheKey) {
  VerifyAnswer v{"ci", "acme", "https://app.kosli.com", "sha256:0123456789ab", std::string(kVerifyForbidden),
                 403, kT1, "no access to org 'acme'", ""};
  json j = to_json(v);
  EXPECT_EQ(j, json::parse(R"({"profile":"ci","org":"acme","host":"https://app.kosli.com",
    "fingerprint":"sha256:0123456789ab","valid":true,"result":"forbidden","kosli_status":403,
    "checked_at":"2026-01-01T00:00:00Z","message":"no access to org 'acme'",
    "expires_at":null,"expiry_source":null})"));
  v.expires_at = kT2;
  v.expiry_source = "kosli";
  EXPECT_EQ(to_json(v).at("expires_at"), "2026-01-02T00:00:00Z");
  EXPECT_EQ(to_json(v).at("expiry_source"), "kosli");
  v.result = kVerifyInvalid;
  v.warning = "the result could not be saved with the profile: locked";
  j = to_json(v);
  EXPECT_EQ(j.at("valid"), false);
  EXPECT_EQ(j.at("warning"), "the result could not be saved with the profile: locked");
  const auto read = verify_from_json(j);
  ASSERT_TRUE(read);
  EXPECT_EQ(to_json(*read), j);
}

TEST(AnswersTest, RotateAnswerCarriesTheNewProfile) {
  RotateAnswer r{sample_profile(), "sha256:ffffffffffff", true, std::string(kVerifyValid), kT2, ""};
  json j = to_json(r);
  EXPECT_EQ(j.at("profile"), to_json(sample_profile()));
  EXPECT_EQ(j.at("previous_fingerprint"), "sha256:ffffffffffff");
  EXPECT_EQ(j.at("via_api"), true);
  EXPECT_EQ(j.at("verified"), true);
  EXPECT_EQ(j.at("verify_result"), "valid");
  EXPECT_EQ(j.at("grace_period_expires_at"), "2026-01-02T00:00:00Z");
  EXPECT_EQ(j.at("stored"), true);
  EXPECT_FALSE(j.contains("warning"));
  auto read = rotate_answer_from_json(j);
  ASSERT_TRUE(read);
  EXPECT_EQ(to_json(*read), j);

  r.verify_result.clear();
  r.grace_period_expires_at = 0;
  j = to_json(r);
  EXPECT_TRUE(j.at("verify_result").is_null());
  EXPECT_EQ(j.at("verified"), false);
  EXPECT_TRUE(j.at("grace_period_expires_at").is_null());

  j["profile"] = json::object();
  EXPECT_FALSE(rotate_answer_from_json(j));
}

// "session": what the daemon forgets on, and when it last did; null before it has.
TEST(AnswersTest, SessionSaysWhatIsWatchedAndTheLastForget) {
  HealthAnswer h;
  h.session = SessionHealth{{"screen", "sleep"}, true, kT1, "screen_locked"};
  const json j = to_json(h);
  EXPECT_EQ(j.at("session"), json::parse(R"({"forget_on": ["screen", "sleep"], "notify": true,
      "last_forgot_at": "2026-01-01T00:00:00Z", "last_forgot_reason": "screen_locked"})"));
  const auto read = health_from_json(j);
  ASSERT_TRUE(read && read->session);
  EXPECT_EQ(to_json(*read), j);

  h.session = SessionHealth{};
  EXPECT_EQ(to_json(h).at("session"), json::parse(R"({"forget_on": [], "notify": false,
      "last_forgot_at": null, "last_forgot_reason": null})"));
  EXPECT_FALSE(to_json(HealthAnswer{}).contains("session")) << "a daemon without a session watch sends none";
}

}  // namespace
}  // namespace kosli
