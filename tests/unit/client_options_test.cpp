// client/options.hpp: the one grammar both of kosli-cred's entry points read.
// The fast recogniser must take each option the table lists, in each form the
// table allows, and nothing the table does not give the command.
#include "client/options.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "client/fast_path.hpp"
#include "proto/socket_path.hpp"

namespace kosli::client {
namespace {

std::optional<FastArgs> recognise(std::vector<std::string> words, const char* env_profile = nullptr,
                                  const char* env_uid = nullptr) {
  std::vector<char*> args;
  for (auto& word : words) args.push_back(word.data());
  return recognise_fast(args, env_profile, env_uid);
}

TEST(ClientOptionsTest, Cli11NamesComeFromTheTable) {
  EXPECT_EQ(options::cli11_names(options::kProfile), "--profile,-p");
  EXPECT_EQ(options::cli11_names(options::kSocket), "--socket");
  EXPECT_EQ(options::cli11_names(options::kJson), "--json");
  EXPECT_EQ(options::kDaemonUid.env, kDaemonUidEnv);
}

TEST(ClientOptionsTest, EveryPlainFormIsACommandAndServedFast) {
  for (const auto& form : options::kPlainForms) {
    EXPECT_NE(std::find(std::begin(options::kCommands), std::end(options::kCommands), form.command),
              std::end(options::kCommands));
    std::vector<std::string> words{std::string(form.command)};
    if (form.exec_command) words.insert(words.end(), {std::string(options::kEndOfOptions), "true"});
    EXPECT_TRUE(recognise(words)) << form.command;
  }
  // A command the table does not list as plain goes to the full command line.
  EXPECT_FALSE(recognise({"status"}));
  EXPECT_FALSE(recognise({"list"}));
}

TEST(ClientOptionsTest, GlobalOptionsStandBeforeAndAfterTheCommandInEachForm) {
  for (const auto& option : options::kGlobal) {
    const std::string name(option.name);
    const std::string value = option.name == options::kDaemonUid.name ? "1001" : "/run/s";
    for (const auto& words : std::vector<std::vector<std::string>>{{name, value, "token"},
                                                                    {"token", name, value},
                                                                    {name + "=" + value, "token"},
                                                                    {"header", name + "=" + value}}) {
      const auto fast = recognise(words);
      ASSERT_TRUE(fast) << words[0] << " " << words[1];
      if (option.name == options::kSocket.name) {
        EXPECT_EQ(fast->socket, value);
      } else {
        EXPECT_EQ(fast->daemon_uid, 1001u);
      }
    }
    // Given twice, or without a value: the full command line says what is wrong.
    EXPECT_FALSE(recognise({name, value, "token", name, value}));
    EXPECT_FALSE(recognise({"token", name}));
  }
}

TEST(ClientOptionsTest, ProfileTakesEachNameAndItsVariable) {
  for (const auto& words : std::vector<std::vector<std::string>>{
           {"token", std::string(options::kProfile.name), "ci"},
           {"token", std::string(options::kProfile.short_name), "ci"},
           {"token", std::string(options::kProfile.name) + "=ci"}}) {
    const auto fast = recognise(words);
    ASSERT_TRUE(fast);
    EXPECT_EQ(fast->profile, "ci");
  }
  EXPECT_EQ(recognise({"token"}, "from-env")->profile, "from-env");
  EXPECT_EQ(recognise({"token"}, "")->profile, "default");
  EXPECT_EQ(recognise({"token"}, nullptr, "1002")->daemon_uid, 1002u);
  EXPECT_FALSE(recognise({"token"}, nullptr, "not-a-uid"));
  // Not before the command: there it is no option of any command.
  EXPECT_FALSE(recognise({std::string(options::kProfile.name), "ci", "token"}));
}

TEST(ClientOptionsTest, JsonOnlyWhereTheTableGivesIt) {
  for (const auto& form : options::kPlainForms) {
    std::vector<std::string> words{std::string(form.command), std::string(options::kJson.name)};
    if (form.exec_command) words.insert(words.end(), {std::string(options::kEndOfOptions), "true"});
    EXPECT_EQ(recognise(words).has_value(), form.json) << form.command;
  }
}

}  // namespace
}  // namespace kosli::client
