// daemon/keys/schedule.cpp: when scheduled rotation makes a key due, seen
// through KeyLifecycle's health answer ("rotation": due_at, last_attempt_at,
// next_attempt_at, last_error). rotate_every_days counts from when the key was
// stored (or last rotated: a rotation stores a new created_at);
// rotate_before_expiry_days counts back from expires_at; the earlier wins. A
// failed scheduled rotation is tried again 15 minutes later, and the key kept.
//
// In process, over a MemoryStore: no key here is due through Kosli, so the
// Kosli client is never asked (a due key without a service account and key id
// fails before any call).
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/answers.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/kosli/kosli_api.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/config.hpp"
#include "daemon/store/memory_store.hpp"
#include "proto/secret.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;
constexpr std::int64_t kDay = 86400;

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

ProfileMeta meta(const std::string& name, std::int64_t created_at, std::int64_t expires_at) {
  ProfileMeta m;
  m.name = name;
  m.org = "acme";
  m.host = "https://app.kosli.com";
  m.created_at = created_at;
  m.expires_at = expires_at;
  m.fingerprint = "sha256:000000000000";
  m.persistent = false;
  return m;
}

class ScheduleUnitTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!lifecycle_) return;
    lifecycle_->stop_timers();
    kosli_->stop();
    lifecycle_->stop();
    worker_.stop();
  }

  void store(const ProfileMeta& m, const std::string& key) {
    ASSERT_FALSE(std::holds_alternative<StoreError>(
        store_.put(m, Secret(key), std::chrono::steady_clock::now() + std::chrono::seconds(5))));
  }

  // Starts the key service with `config` and waits (bounded: the schedule has
  // no readiness signal) until its health answer shows `profile` with `field` set.
  json start_and_wait(const Config& config, const std::string& profile, const std::string& field) {
    auto opened = KosliApi::open(KosliApiOptions{});
    EXPECT_TRUE(std::holds_alternative<std::unique_ptr<KosliApi>>(opened));
    if (!std::holds_alternative<std::unique_ptr<KosliApi>>(opened)) return {};
    kosli_ = std::move(std::get<std::unique_ptr<KosliApi>>(opened));
    lifecycle_ = std::make_unique<KeyLifecycle>(worker_, cache_, audit_, *kosli_, config);
    lifecycle_->start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      const json entry = rotation_of(profile);
      if (!entry.is_null() && !entry[field].is_null()) return entry;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the schedule never set " << field << " for " << profile << ": " << entry.dump();
        return entry;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // After start_and_wait: waits the same way for another profile's due_at.
  json start_and_wait_more(const std::string& profile) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    json entry = rotation_of(profile);
    while ((entry.is_null() || entry["due_at"].is_null()) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      entry = rotation_of(profile);
    }
    EXPECT_TRUE(!entry.is_null() && entry["due_at"].is_string()) << profile << ": " << entry.dump();
    return entry;
  }

  json rotation_of(const std::string& profile) {
    HealthAnswer answer;
    lifecycle_->describe(answer);
    const json health = to_json(answer);  // as it goes on the wire
    for (const auto& r : health["rotation"]) {
      if (r["profile"] == profile) return r;
    }
    return nullptr;
  }

  static std::int64_t time_of(const json& field) {
    const auto parsed = parse_rfc3339(field.get<std::string>());
    EXPECT_TRUE(parsed.has_value()) << field;
    return parsed.value_or(0);
  }

  MemoryStore store_;
  StoreWorker worker_{store_};
  TokenCache cache_{std::chrono::seconds(60)};
  AuditLog audit_{"-"};
  std::unique_ptr<KosliApi> kosli_;
  std::unique_ptr<KeyLifecycle> lifecycle_;
};

Config config_for(const std::string& profile, double every_days, double before_expiry_days) {
  Config c;
  c.profiles[profile].rotate_every_days = every_days;
  c.profiles[profile].rotate_before_expiry_days = before_expiry_days;
  return c;
}

TEST_F(ScheduleUnitTest, RotateEveryDaysCountsFromWhenTheKeyWasStored) {
  const auto stored_at = now_s() - 10 * kDay;
  store(meta("ci", stored_at, 0), "kosli_schedule_key_every");
  const auto entry = start_and_wait(config_for("ci", 30, 0), "ci", "due_at");
  EXPECT_EQ(time_of(entry["due_at"]), stored_at + 30 * kDay) << entry.dump();
  EXPECT_EQ(entry["rotate_every_days"], 30.0);
  EXPECT_TRUE(entry["rotate_before_expiry_days"].is_null());
  EXPECT_TRUE(entry["last_attempt_at"].is_null()) << "not due: nothing tried";
  EXPECT_TRUE(entry["last_error"].is_null());
}

TEST_F(ScheduleUnitTest, FractionsOfADayAreRoundedToTheSecond) {
  const auto stored_at = now_s() - kDay;
  store(meta("ci", stored_at, 0), "kosli_schedule_key_fraction");
  const auto entry = start_and_wait(config_for("ci", 2.5, 0), "ci", "due_at");
  EXPECT_EQ(time_of(entry["due_at"]), stored_at + 2 * kDay + kDay / 2) << entry.dump();
}

TEST_F(ScheduleUnitTest, RotateBeforeExpiryCountsBackFromExpiresAt) {
  const auto now = now_s();
  store(meta("ci", now - kDay, now + 60 * kDay), "kosli_schedule_key_expiry");
  const auto entry = start_and_wait(config_for("ci", 0, 7), "ci", "due_at");
  EXPECT_EQ(time_of(entry["due_at"]), now + 60 * kDay - 7 * kDay) << entry.dump();
}

TEST_F(ScheduleUnitTest, TheEarlierOfAgeAndExpiryWins) {
  const auto now = now_s();
  // Age first: stored 25 days ago, every 30 (due in 5 days); expires in 60, 7 before (due in 53).
  store(meta("age", now - 25 * kDay, now + 60 * kDay), "kosli_schedule_key_age");
  // Expiry first: stored 1 day ago, every 30 (due in 29 days); expires in 10, 7 before (due in 3).
  store(meta("expiry", now - kDay, now + 10 * kDay), "kosli_schedule_key_exp");
  Config c = config_for("age", 30, 7);
  c.profiles["expiry"] = c.profiles["age"];
  const auto age = start_and_wait(c, "age", "due_at");
  const auto expiry = start_and_wait_more("expiry");
  EXPECT_EQ(time_of(age["due_at"]), now - 25 * kDay + 30 * kDay) << age.dump();
  EXPECT_EQ(time_of(expiry["due_at"]), now + 10 * kDay - 7 * kDay) << expiry.dump();
}

TEST_F(ScheduleUnitTest, AKeyWithoutExpiryIsNeverDueBeforeExpiry) {
  const auto now = now_s();
  store(meta("never", now - 400 * kDay, 0), "kosli_schedule_key_never");
  store(meta("marker", now - kDay, now + 60 * kDay), "kosli_schedule_key_marker");
  Config c = config_for("never", 0, 7);
  c.profiles["marker"] = c.profiles["never"];
  start_and_wait(c, "marker", "due_at");  // the check has run over both
  const auto never = rotation_of("never");
  ASSERT_FALSE(never.is_null());
  EXPECT_TRUE(never["due_at"].is_null()) << never.dump();
  EXPECT_TRUE(never["last_attempt_at"].is_null()) << never.dump();
}

TEST_F(ScheduleUnitTest, AFailedScheduledRotationIsTriedAgainIn15MinutesAndTheKeyKept) {
  const auto stored_at = now_s() - 40 * kDay;
  store(meta("ci", stored_at, 0), "kosli_schedule_key_failing");  // no service account nor key id
  const auto entry = start_and_wait(config_for("ci", 30, 0), "ci", "next_attempt_at");
  EXPECT_EQ(time_of(entry["due_at"]), stored_at + 30 * kDay);
  ASSERT_TRUE(entry["last_attempt_at"].is_string()) << entry.dump();
  EXPECT_EQ(time_of(entry["next_attempt_at"]) - time_of(entry["last_attempt_at"]), 15 * 60) << entry.dump();
  ASSERT_TRUE(entry["last_error"].is_string()) << entry.dump();
  EXPECT_NE(entry["last_error"].get<std::string>().find("--service-account"), std::string::npos) << entry.dump();
  EXPECT_TRUE(entry["last_rotated_at"].is_null());

  auto loaded = store_.load("ci", std::chrono::steady_clock::now() + std::chrono::seconds(5));
  auto* key = std::get_if<std::optional<StoredKey>>(&loaded);
  ASSERT_TRUE(key != nullptr && key->has_value());
  EXPECT_EQ((*key)->key.reveal(), "kosli_schedule_key_failing") << "a failed rotation keeps the key";
  EXPECT_FALSE(lifecycle_->holds_waiting_keys());
}

}  // namespace
}  // namespace kosli::daemon
