// The wire limits a user can read in README's Limits table, pinned to their
// values: raising or lowering one is a change of the contract, not a refactor.
// (The integration tests in tests/integration/slip_test.cpp check the ones a
// request can reach at their boundaries through the real daemon.)
#include "proto/limits.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace kosli {
namespace {

using std::chrono::seconds;

TEST(LimitsPinnedTest, SizesAreTheDocumentedOnes) {
  EXPECT_EQ(limits::kMaxHeaderBytes, 8u * 1024);  // request line and headers: 8 KiB
  EXPECT_EQ(limits::kMaxBodyBytes, 64u * 1024);   // request body: 64 KiB
  EXPECT_EQ(limits::kMaxTargetBytes, 1024u);      // request target: 1 KiB
  EXPECT_EQ(limits::kMaxJsonDepth, 8u);           // JSON nesting: 8 levels
  EXPECT_EQ(limits::kMaxKeyBytes, 4u * 1024);     // API key: 4 KiB
}

TEST(LimitsPinnedTest, DeadlinesAreTheDocumentedOnes) {
  EXPECT_EQ(limits::kRequestReadDeadline, seconds(10));           // reading one request
  EXPECT_EQ(limits::kIdleKeepAliveDeadline, seconds(60));         // an idle keep-alive connection
  EXPECT_EQ(limits::kStoreCallDeadline, seconds(5));              // one keyring call
  EXPECT_EQ(limits::kClientRequestDeadline, seconds(15));         // the client waiting for an answer
  EXPECT_EQ(limits::kClientKosliRequestDeadline, seconds(45));    // ... for verify and rotate
  EXPECT_EQ(limits::kKosliCallDeadline, seconds(12));             // one Kosli call, retries included
}

TEST(LimitsPinnedTest, OpenConnectionsAreCappedAt256) { EXPECT_EQ(limits::kMaxOpenConnections, 256u); }

}  // namespace
}  // namespace kosli
