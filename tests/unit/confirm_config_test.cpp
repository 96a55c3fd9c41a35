// The approval settings in the configuration: a profile's confirm, askpass and
// confirm_timeout_s, each refused with a message naming the key and the choices.
#include <string>

#include <gtest/gtest.h>

#include "daemon/ops/config.hpp"

namespace kosli::daemon {
namespace {

const std::string kOrigin = "/home/u/.config/kosli-cred/config.json";

std::string error_of(const std::string& text) {
  const auto parsed = parse_config(text, kOrigin);
  const auto* e = std::get_if<ConfigError>(&parsed);
  return e != nullptr ? e->message : "(accepted)";
}

TEST(ConfirmConfigTest, ConfirmIsNeverUnlessSetAndTakesItsThreeValues) {
  const auto parsed = parse_config(
      R"({"askpass": "/usr/bin/ssh-askpass", "confirm_timeout_s": 5,
          "profiles": {"me": {"confirm": "per-program"}, "al": {"confirm": "always"},
                       "no": {"confirm": "never"}, "ci": {"rotate_every_days": 90}}})",
      kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(parsed)) << std::get<ConfigError>(parsed).message;
  const auto& config = std::get<Config>(parsed);
  EXPECT_EQ(config.profiles.at("me").confirm, Confirm::per_program);
  EXPECT_EQ(config.profiles.at("al").confirm, Confirm::always);
  EXPECT_EQ(config.profiles.at("no").confirm, Confirm::never);
  EXPECT_EQ(config.profiles.at("ci").confirm, Confirm::never);
  EXPECT_EQ(config.askpass, "/usr/bin/ssh-askpass");
  EXPECT_EQ(config.confirm_timeout_s, 5);

  const auto none = parse_config("{}", kOrigin);
  EXPECT_EQ(std::get<Config>(none).confirm_timeout_s, 30);
  EXPECT_FALSE(std::get<Config>(none).askpass);
}

TEST(ConfirmConfigTest, BadValuesNameTheKeyAndWhatItTakes) {
  EXPECT_EQ(error_of(R"({"profiles": {"me": {"confirm": "sometimes"}}})"),
            kOrigin + ": 'profiles.me.confirm' must be \"never\", \"per-program\" (ask once per program) or \"always\"");
  EXPECT_EQ(error_of(R"({"profiles": {"me": {"confirm": true}}})").find("'profiles.me.confirm' must be"),
            kOrigin.size() + 2);
  EXPECT_EQ(error_of(R"({"askpass": "ssh-askpass"})"),
            kOrigin + ": 'askpass' must be the absolute path of an askpass program");
  EXPECT_EQ(error_of(R"({"confirm_timeout_s": 0})"),
            kOrigin + ": 'confirm_timeout_s' must be a whole number of seconds from 1 to 30");
  EXPECT_EQ(error_of(R"({"confirm_timeout_s": 31})"),
            kOrigin + ": 'confirm_timeout_s' must be a whole number of seconds from 1 to 30");
}

TEST(ConfirmConfigTest, TheKnownListsNameTheNewKeys) {
  EXPECT_NE(error_of(R"({"nope": 1})").find("askpass, confirm_timeout_s"), std::string::npos);
  EXPECT_NE(error_of(R"({"profiles": {"me": {"nope": 1}}})").find("confirm"), std::string::npos);
}

}  // namespace
}  // namespace kosli::daemon
