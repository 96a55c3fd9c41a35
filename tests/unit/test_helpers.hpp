// Small helpers shared by the unit tests.
#pragma once

#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace kosli::test {

// Passes when `text` contains `part`; otherwise prints both.
inline ::testing::AssertionResult Mentions(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << '"' << text << "\" does not mention \"" << part << '"';
}

}  // namespace kosli::test
