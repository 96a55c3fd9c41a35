#include "proto/display.hpp"

#include <gtest/gtest.h>

namespace kosli {
namespace {

TEST(DisplayTest, KeepsPrintableTextAsItIs) {
  EXPECT_EQ(display_safe("/usr/local/bin/kosli"), "/usr/local/bin/kosli");
  EXPECT_EQ(display_safe("Prod – Zürich ✓"), "Prod – Zürich ✓");
  EXPECT_EQ(display_safe(""), "");
}

TEST(DisplayTest, ALineCannotBeForged) {
  EXPECT_EQ(display_safe("/tmp/x\n[2026-12-01 00:00:00] [info] fake"), "/tmp/x\\x0a[2026-12-01 00:00:00] [info] fake");
  EXPECT_EQ(display_safe("a\rb"), "a\\x0db");
  EXPECT_EQ(display_safe("a\u2028b\u2029c"), "a\\u{2028}b\\u{2029}c");
}

TEST(DisplayTest, TerminalControlsAreShownNotObeyed) {
  EXPECT_EQ(display_safe("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(display_safe("\x7f"), "\\x7f");
  EXPECT_EQ(display_safe("\u009b31m"), "\\u{009b}31m");  // C1 CSI
  EXPECT_EQ(display_safe("\u0085"), "\\u{0085}");
}

TEST(DisplayTest, BidiControlsCannotReorderText) {
  EXPECT_EQ(display_safe("abc\u202edcb"), "abc\\u{202e}dcb");
  EXPECT_EQ(display_safe("\u2066\u2069\u200e\u200f\u061c"), "\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{061c}");
}

TEST(DisplayTest, InvalidUtf8AndBackslashesAreUnambiguous) {
  EXPECT_EQ(display_safe("\xff\xc3"), "\\xff\\xc3");
  EXPECT_EQ(display_safe("\xc0\xaf"), "\\xc0\\xaf");       // an overlong '/'
  EXPECT_EQ(display_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(display_safe("a\\x0ab"), "a\\\\x0ab");
}

}  // namespace
}  // namespace kosli
