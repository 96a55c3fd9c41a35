#include "daemon/transport/refused_peers.hpp"

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

using Clock = RefusalLimiter::Clock;
using std::chrono::seconds;

TEST(RefusedPeers, TheRefusalNamesEveryUidServed) {
  EXPECT_EQ(served_uids(1000, {}), "uid 1000");
  EXPECT_EQ(served_uids(1000, {1001}), "uids 1000 and 1001");
  EXPECT_EQ(served_uids(0, {1001, 1002}), "uids 0, 1001 and 1002");
  EXPECT_EQ(served_uids(0, {1001, 0, 1001, 7}), "uids 0, 1001 and 7");
}

TEST(RefusedPeers, AFloodFromOneUidIsRecordedAFewTimesThenCounted) {
  RefusalLimiter limiter;
  const auto start = Clock::now();
  std::size_t recorded = 0, report_ats = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto d = limiter.refused(65534, start + std::chrono::milliseconds(i));
    recorded += d.record ? 1 : 0;
    report_ats += d.report_at ? 1 : 0;
    EXPECT_FALSE(d.dropped.has_value());
    if (d.report_at) {
      EXPECT_EQ(*d.report_at, start + RefusalLimiter::kWindow);
    }
  }
  EXPECT_EQ(recorded, RefusalLimiter::kRecordedPerWindow);
  EXPECT_EQ(report_ats, 1u) << "one report is scheduled, not one a refusal";

  // Nothing is due before the minute is over; then the count, once.
  EXPECT_TRUE(limiter.take_dropped(start + seconds(30)).dropped.empty());
  const auto taken = limiter.take_dropped(start + seconds(60));
  ASSERT_EQ(taken.dropped.size(), 1u);
  EXPECT_EQ(taken.dropped[0].uid, 65534u);
  EXPECT_EQ(taken.dropped[0].count, 2000 - RefusalLimiter::kRecordedPerWindow);
  EXPECT_EQ(describe(taken.dropped[0]), "... and 1995 more refused connections from uid 65534 in the last 60 s");
  EXPECT_FALSE(taken.next.has_value());

  // A flood that goes on is counted on: one record a minute.
  const auto more = limiter.refused(65534, start + seconds(61));
  EXPECT_FALSE(more.record);
  ASSERT_TRUE(more.report_at.has_value());
  EXPECT_EQ(*more.report_at, start + seconds(120));
  const auto next = limiter.take_dropped(start + seconds(120));
  ASSERT_EQ(next.dropped.size(), 1u);
  EXPECT_EQ(next.dropped[0].count, 1u);

  // Once a quiet minute has passed, refusals are recorded again; a count the
  // timer has not taken yet comes with the next refusal.
  for (std::size_t i = 0; i < RefusalLimiter::kRecordedPerWindow; ++i) {
    EXPECT_TRUE(limiter.refused(65534, start + seconds(400)).record);
  }
  EXPECT_FALSE(limiter.refused(65534, start + seconds(400)).record);
  const auto late = limiter.refused(65534, start + seconds(500));
  EXPECT_TRUE(late.record);
  ASSERT_TRUE(late.dropped.has_value());
  EXPECT_EQ(late.dropped->count, 1u);
}

TEST(RefusedPeers, EachUidHasItsOwnFewAndTheTableIsBounded) {
  RefusalLimiter limiter;
  const auto now = Clock::now();
  EXPECT_TRUE(limiter.refused(1, now).record);
  for (std::size_t i = 0; i < RefusalLimiter::kRecordedPerWindow; ++i) limiter.refused(2, now);
  EXPECT_FALSE(limiter.refused(2, now).record);
  EXPECT_TRUE(limiter.refused(1, now).record) << "uid 2's flood silenced uid 1";

  // Thousands of uids share one count past the table's bound.
  std::size_t recorded = 0;
  for (uid_t uid = 10000; uid < 13000; ++uid) recorded += limiter.refused(uid, now).record ? 1 : 0;
  EXPECT_LE(recorded, RefusalLimiter::kMaxTrackedUids + RefusalLimiter::kRecordedPerWindow);
  const auto taken = limiter.take_dropped(now, true);
  std::size_t others = 0;
  for (const auto& d : taken.dropped) {
    if (!d.uid) others = d.count;
  }
  EXPECT_EQ(others + recorded, 3000u);
  EXPECT_GT(others, 0u);

  // An unknown peer counts with them.
  RefusalLimiter fresh;
  EXPECT_TRUE(fresh.refused(std::nullopt, now).record);
  EXPECT_EQ(describe({std::nullopt, 3, seconds(60)}),
            "... and 3 more refused connections from other uids in the last 60 s");
  EXPECT_EQ(describe({7, 1, seconds(12)}), "... and 1 more refused connection from uid 7 in the last 12 s");
}

}  // namespace
}  // namespace kosli::daemon
