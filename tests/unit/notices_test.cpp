#include "daemon/ops/notices.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kExpires = kNow + 3 * kDay;

struct Sent {
  std::vector<std::string> summaries, bodies;
  Notices::Send sink() {
    return [this](std::string summary, std::string body) {
      summaries.push_back(std::move(summary));
      bodies.push_back(std::move(body));
    };
  }
};

TEST(NoticesTest, AnExpiringKeyIsToldOnceADay) {
  Sent sent;
  Notices notices;
  notices.connect(sent.sink());
  notices.key_expiring("ci", kExpires, kNow);
  notices.key_expiring("ci", kExpires, kNow + 3600);
  ASSERT_EQ(sent.summaries.size(), 1u);
  EXPECT_EQ(sent.summaries[0], "Kosli key 'ci' expires in 3 days");
  EXPECT_NE(sent.bodies[0].find("kosli-cred rotate --profile ci"), std::string::npos) << sent.bodies[0];

  notices.key_expiring("other", kExpires, kNow + 3600);  // another key: its own day
  notices.key_expiring("ci", kExpires, kNow + kDay);      // the next day
  notices.key_expiring("ci", kExpires + kDay, kNow + kDay);  // a new key the same day
  EXPECT_EQ(sent.summaries.size(), 4u);
}

TEST(NoticesTest, NothingIsSentUntilConnected) {
  Notices notices;
  notices.key_expiring("ci", kExpires, kNow);  // not connected: nothing to call, and not remembered
  notices.rotation_failed("ci", "Kosli answered 500");
  notices.key_waiting("ci", "kosli-cred token --profile ci | kosli-cred store --profile ci");
  Sent sent;
  notices.connect(sent.sink());
  notices.key_expiring("ci", kExpires, kNow);
  EXPECT_EQ(sent.summaries.size(), 1u);
}

TEST(NoticesTest, AFailedRotationAndAWaitingKeySayWhatToDo) {
  Sent sent;
  Notices notices;
  notices.connect(sent.sink());
  notices.rotation_failed("ci", "Kosli answered 500");
  notices.key_waiting("ci", "kosli-cred token --profile ci | kosli-cred store --profile ci --org acme");
  ASSERT_EQ(sent.summaries.size(), 2u);
  EXPECT_EQ(sent.summaries[0], "Kosli key 'ci' was not rotated");
  EXPECT_NE(sent.bodies[0].find("Kosli answered 500"), std::string::npos);
  EXPECT_EQ(sent.summaries[1], "New Kosli key 'ci' is not in the keyring");
  EXPECT_NE(sent.bodies[1].find("kosli-cred store --profile ci --org acme"), std::string::npos);
}

}  // namespace
}  // namespace kosli::daemon
