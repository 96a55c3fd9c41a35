#include "proto/secret.hpp"

#include <sstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace kosli {
namespace {

TEST(Secret, RevealReturnsTheBytesItWasGiven) {
  const Secret s("kosli-key-123");
  EXPECT_EQ(s.reveal(), "kosli-key-123");
  EXPECT_EQ(s.size(), 13u);
  EXPECT_FALSE(s.empty());
}

TEST(Secret, DefaultAndEmptyInputAreEmpty) {
  EXPECT_TRUE(Secret().empty());
  EXPECT_TRUE(Secret("").empty());
  EXPECT_EQ(Secret("").reveal(), "");
}

TEST(Secret, KeepsEmbeddedNulBytes) {
  const std::string bytes("a\0b", 3);
  EXPECT_EQ(Secret(bytes).reveal(), bytes);
}

TEST(Secret, MoveConstructionLeavesTheSourceEmpty) {
  Secret a("abc");
  Secret b(std::move(a));
  EXPECT_EQ(b.reveal(), "abc");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_EQ(a.reveal(), "");
}

TEST(Secret, MoveAssignmentReplacesTheTargetAndEmptiesTheSource) {
  Secret a("new-key");
  Secret b("old-key");
  b = std::move(a);
  EXPECT_EQ(b.reveal(), "new-key");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Secret, CloneIsAnEqualIndependentCopy) {
  const Secret original("abc");
  Secret copy = original.clone();
  EXPECT_TRUE(copy.equals(original));
  EXPECT_NE(copy.reveal().data(), original.reveal().data());
  copy = Secret("other");
  EXPECT_EQ(original.reveal(), "abc");
}

TEST(Secret, EqualsComparesWholeContents) {
  const Secret s("abcdef");
  EXPECT_TRUE(s.equals("abcdef"));
  EXPECT_TRUE(s.equals(Secret("abcdef")));
  EXPECT_FALSE(s.equals("abcdeg"));
  EXPECT_FALSE(s.equals("abcde"));    // a prefix of it
  EXPECT_FALSE(s.equals("abcdefg"));  // it is a prefix
  EXPECT_FALSE(s.equals(""));
  EXPECT_FALSE(s.equals(Secret()));
  EXPECT_TRUE(Secret().equals(""));
}

TEST(Secret, EqualsSeesADifferenceAfterAnEmbeddedNul) {
  EXPECT_FALSE(Secret(std::string("a\0b", 3)).equals(std::string("a\0c", 3)));
  EXPECT_FALSE(Secret("a").equals(std::string("a\0", 2)));
}

TEST(Secret, StreamingPrintsAPlaceholderNeverTheBytes) {
  std::ostringstream out;
  out << Secret("hunter2-secret");
  EXPECT_EQ(out.str(), "[redacted]");
  EXPECT_EQ(out.str().find("hunter2"), std::string::npos);
}

TEST(Wipe, EmptiesTheStringAndZeroesItsBuffer) {
  std::string s(100, 'k');
  s.resize(10);  // old bytes remain in the capacity
  wipe(s);
  EXPECT_TRUE(s.empty());
  // wipe() promises to zero the whole capacity, which clear() keeps.
  const char* data = s.data();
  for (std::size_t i = 0; i < s.capacity(); ++i) ASSERT_EQ(data[i], '\0') << "byte " << i;
}

TEST(Wipe, ZeroesARawBuffer) {
  char buf[] = "secret";
  wipe(buf, sizeof buf - 1);
  EXPECT_EQ(std::string(buf, sizeof buf - 1), std::string(6, '\0'));
  wipe(nullptr, 4);  // tolerated
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("same", "same"));
  EXPECT_FALSE(constant_time_equal("same", "sama"));
  EXPECT_FALSE(constant_time_equal("same", "sam"));
  EXPECT_FALSE(constant_time_equal("sam", "same"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}

}  // namespace
}  // namespace kosli
