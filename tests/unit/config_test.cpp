#include "daemon/ops/config.hpp"

#include <string>

#include <gtest/gtest.h>

#include "tests/unit/test_helpers.hpp"

namespace kosli::daemon {
namespace {

using test::Mentions;

const std::string kOrigin = "/home/u/.config/kosli-cred/config.json";

TEST(ConfigTest, AllowUidAccessIsReadUnlessSetToManage) {
  const auto none = parse_config("{}", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(none));
  EXPECT_EQ(std::get<Config>(none).allow_uid_access, UidAccess::read);

  const auto read = parse_config(R"({"allow_uid_access": "read"})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(read));
  EXPECT_EQ(std::get<Config>(read).allow_uid_access, UidAccess::read);

  const auto manage = parse_config(R"({"allow_uids": [4301], "allow_uid_access": "manage"})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(manage));
  EXPECT_EQ(std::get<Config>(manage).allow_uid_access, UidAccess::manage);
}

TEST(ConfigTest, AllowUidAccessOfAWrongTypeOrUnknownValueNamesTheKeyAndTheChoices) {
  for (const char* text : {R"({"allow_uid_access": true})", R"({"allow_uid_access": 1})",
                           R"({"allow_uid_access": ["manage"]})", R"({"allow_uid_access": "write"})",
                           R"({"allow_uid_access": "Manage"})", R"({"allow_uid_access": ""})"}) {
    const auto parsed = parse_config(text, kOrigin);
    ASSERT_TRUE(std::holds_alternative<ConfigError>(parsed)) << text;
    const auto& message = std::get<ConfigError>(parsed).message;
    EXPECT_TRUE(Mentions(message, kOrigin + ": 'allow_uid_access' must be \"read\""));
    EXPECT_TRUE(Mentions(message, "\"manage\""));
  }
}

TEST(ConfigTest, AnUnknownKeyListsAllowUidAccessAmongTheKnownOnes) {
  const auto parsed = parse_config(R"({"allow_uid_acess": "manage"})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(parsed));
  EXPECT_TRUE(Mentions(std::get<ConfigError>(parsed).message, "'allow_uid_acess' is not a known setting"));
  EXPECT_TRUE(Mentions(std::get<ConfigError>(parsed).message, "allow_uid_access"));
}

TEST(ConfigTest, LockOnIsEverythingUnlessListedAndNotifyIsOnUnlessFalse) {
  const auto none = parse_config("{}", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(none));
  const auto& defaults = std::get<Config>(none);
  EXPECT_TRUE(defaults.lock_on.screen && defaults.lock_on.sleep && defaults.lock_on.keyring);
  EXPECT_TRUE(defaults.notify);

  const auto some = parse_config(R"({"lock_on": ["sleep", "keyring"], "notify": false})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(some));
  const auto& c = std::get<Config>(some);
  EXPECT_FALSE(c.lock_on.screen);
  EXPECT_TRUE(c.lock_on.sleep && c.lock_on.keyring);
  EXPECT_FALSE(c.notify);

  const auto never = parse_config(R"({"lock_on": []})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<Config>(never));
  const auto& n = std::get<Config>(never).lock_on;
  EXPECT_FALSE(n.screen || n.sleep || n.keyring);
}

TEST(ConfigTest, LockOnAndNotifyOfAWrongTypeOrUnknownValueNameTheKey) {
  for (const char* text : {R"({"lock_on": "screen"})", R"({"lock_on": ["screen", "lid"]})",
                           R"({"lock_on": [1]})", R"({"lock_on": null})"}) {
    const auto parsed = parse_config(text, kOrigin);
    ASSERT_TRUE(std::holds_alternative<ConfigError>(parsed)) << text;
    EXPECT_TRUE(Mentions(std::get<ConfigError>(parsed).message,
                         kOrigin + ": 'lock_on' must be a list among \"screen\", \"sleep\" and \"keyring\""));
  }
  for (const char* text : {R"({"notify": "yes"})", R"({"notify": 1})"}) {
    const auto parsed = parse_config(text, kOrigin);
    ASSERT_TRUE(std::holds_alternative<ConfigError>(parsed)) << text;
    EXPECT_TRUE(Mentions(std::get<ConfigError>(parsed).message, kOrigin + ": 'notify' must be true or false"));
  }
  const auto unknown = parse_config(R"({"lock_onn": []})", kOrigin);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(unknown));
  EXPECT_TRUE(Mentions(std::get<ConfigError>(unknown).message, "lock_on, notify"));
}

}  // namespace
}  // namespace kosli::daemon
