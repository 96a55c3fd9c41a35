#include "proto/time_format.hpp"

#include <gtest/gtest.h>

namespace kosli {
namespace {

constexpr std::int64_t kNoon = 1795694400;  // 2026-11-26T12:00:00Z

TEST(FormatRfc3339, WritesUtcWithZ) {
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(1795691986), "2026-11-26T11:19:46Z");
  EXPECT_EQ(format_rfc3339(951782400), "2000-02-29T00:00:00Z");
}

TEST(ParseRfc3339, ReadsUtc) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("2026-11-26T12:00:00Z"), kNoon);
}

TEST(ParseRfc3339, AppliesTheOffset) {
  EXPECT_EQ(parse_rfc3339("2026-11-26T14:00:00+02:00"), kNoon);
  EXPECT_EQ(parse_rfc3339("2026-11-26T06:30:00-05:30"), kNoon);
  EXPECT_EQ(parse_rfc3339("2026-11-26T12:00:00+00:00"), kNoon);
  EXPECT_EQ(parse_rfc3339("2026-11-27T01:00:00+13:00"), kNoon);  // across a date line
}

TEST(ParseRfc3339, IgnoresFractionalSeconds) {
  EXPECT_EQ(parse_rfc3339("2026-11-26T12:00:00.5Z"), kNoon);
  EXPECT_EQ(parse_rfc3339("2026-11-26T12:00:00.123456789+00:00"), kNoon);
}

TEST(ParseRfc3339, AcceptsLowerCaseTAndZAndASpace) {
  EXPECT_EQ(parse_rfc3339("2026-11-26t12:00:00z"), kNoon);
  EXPECT_EQ(parse_rfc3339("2026-11-26 12:00:00Z"), kNoon);
}

TEST(ParseRfc3339, RoundTripsWithFormat) {
  for (const std::int64_t t :
       {std::int64_t{0}, std::int64_t{951782400}, kNoon, std::int64_t{4102444799}}) {
    EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t) << t;
  }
}

TEST(ParseRfc3339, RefusesDatesThatDoNotExist) {
  for (const char* text :
       {"2027-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T12:60:00Z", "2026-01-01T12:00:61Z"}) {
    EXPECT_EQ(parse_rfc3339(text), std::nullopt) << text;
  }
  EXPECT_EQ(parse_rfc3339("2028-02-29T00:00:00Z"), 1835395200);  // a leap year
}

TEST(ParseRfc3339, RefusesGarbage) {
  for (const char* text :
       {"", "tomorrow", "2026-11-26", "2026-11-26T12:00:00", "2026-11-26T12:00Z",
        "26-11-26T12:00:00Z", "2026/11/26T12:00:00Z", "2026-11-26T12:00:00.Z",
        "2026-11-26T12:00:00+0200", "2026-11-26T12:00:00+24:00", "2026-11-26T12:00:00Z ",
        " 2026-11-26T12:00:00Z", "2026-11-26X12:00:00Z", "1795694400"}) {
    EXPECT_EQ(parse_rfc3339(text), std::nullopt) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace kosli
