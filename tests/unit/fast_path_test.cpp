// What bin/kosli-cred serves itself, and what it hands to the full command line.
// The integration test FastPathTest checks that both give the same answers.
#include "client/fast_path.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace kosli::client {
namespace {

std::optional<FastArgs> recognise(std::initializer_list<const char*> words, const char* env_profile = nullptr) {
  std::vector<std::string> storage(words.begin(), words.end());
  std::vector<char*> args;
  for (auto& word : storage) args.push_back(word.data());
  return recognise_fast(args, env_profile);
}

TEST(FastPathTest, ServesTheFormsScriptsUse) {
  auto plain = recognise({"token"});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->command, FastCommand::token);
  EXPECT_EQ(plain->profile, "default");
  EXPECT_FALSE(plain->json);
  EXPECT_FALSE(plain->socket);

  for (auto args : {recognise({"token", "--profile", "ci"}), recognise({"token", "-p", "ci"}),
                    recognise({"token", "--profile=ci"})}) {
    ASSERT_TRUE(args);
    EXPECT_EQ(args->profile, "ci");
  }

  auto everything = recognise({"--socket", "/s1", "token", "--json", "-p", "ci"});
  ASSERT_TRUE(everything);
  EXPECT_TRUE(everything->json);
  EXPECT_EQ(everything->socket, "/s1");

  auto socket_after = recognise({"header", "--profile", "us", "--socket=/s2"});
  ASSERT_TRUE(socket_after);
  EXPECT_EQ(socket_after->command, FastCommand::header);
  EXPECT_EQ(socket_after->socket, "/s2");
}

TEST(FastPathTest, ExecTakesEverythingAfterTheDoubleDash) {
  auto args = recognise({"exec", "-p", "ci", "--", "kosli", "--profile", "x", "--", "--json"});
  ASSERT_TRUE(args);
  EXPECT_EQ(args->command, FastCommand::exec);
  EXPECT_EQ(args->profile, "ci");
  EXPECT_EQ(args->exec_command, (std::vector<std::string>{"kosli", "--profile", "x", "--", "--json"}));
}

TEST(FastPathTest, TakesTheDaemonsUidFromTheOptionElseTheEnvironment) {
  EXPECT_FALSE(recognise({"token"})->daemon_uid);
  EXPECT_EQ(recognise({"--daemon-uid", "1001", "token"})->daemon_uid, 1001u);
  EXPECT_EQ(recognise({"token", "--daemon-uid=1001", "-p", "ci"})->daemon_uid, 1001u);
  std::vector<std::string> storage = {"exec", "--daemon-uid", "7", "--", "kosli"};
  std::vector<char*> args;
  for (auto& word : storage) args.push_back(word.data());
  EXPECT_EQ(recognise_fast(args, nullptr, "1001")->daemon_uid, 7u) << "the option wins";
  storage = {"token"};
  args = {storage[0].data()};
  EXPECT_EQ(recognise_fast(args, nullptr, "1001")->daemon_uid, 1001u);
  EXPECT_FALSE(recognise_fast(args, nullptr, "")->daemon_uid) << "as CLI11: empty is unset";
  EXPECT_FALSE(recognise_fast(args, nullptr, "someone")) << "a bad uid is CLI11's to report";
}

TEST(FastPathTest, TheEnvironmentNamesTheProfileUnlessAnOptionDoes) {
  EXPECT_EQ(recognise({"token"}, "from-env")->profile, "from-env");
  EXPECT_EQ(recognise({"token", "-p", "flag"}, "from-env")->profile, "flag");
  EXPECT_EQ(recognise({"token"}, "")->profile, "default");  // as CLI11: empty is unset
}

// Each of these goes to the full command line, which gives help, the version,
// the other commands, and the one error message for every mistake.
TEST(FastPathTest, LeavesEverythingElseToTheFullCommandLine) {
  const std::initializer_list<std::initializer_list<const char*>> others = {
      {},
      {"--help"},
      {"--version"},
      {"token", "--help"},
      {"token", "-h"},
      {"list"},
      {"store", "--org", "acme"},
      {"git-credential", "get"},
      {"tokne"},
      {"token", "extra"},
      {"token", "--bogus"},
      {"token", "--profile"},
      {"token", "--profile="},
      {"token", "--profile", ""},
      {"token", "--profile", "--json"},
      {"token", "-p", "a", "-p", "b"},
      {"token", "-pci"},
      {"token", "-p=ci"},
      {"token", "--json", "--json"},
      {"token", "--json=true"},
      {"token", "--profile", "not a name"},
      {"token", "--"},
      {"--profile", "ci", "token"},
      {"--socket", "token"},
      {"--socket", "/a", "token", "--socket", "/b"},
      {"header", "--json"},
      {"exec"},
      {"exec", "--"},
      {"exec", "kosli"},
      {"exec", "--json", "--", "kosli"},
      {"token", "header"},
      {"--daemon-uid", "token"},
      {"token", "--daemon-uid", "x1"},
      {"token", "--daemon-uid", "-1"},
      {"token", "--daemon-uid=", "-p", "ci"},
      {"--daemon-uid", "1", "token", "--daemon-uid", "1"},
  };
  for (const auto& words : others) {
    std::string shown;
    for (const char* word : words) shown += std::string(" '") + word + "'";
    EXPECT_FALSE(recognise(words)) << shown;
  }
  EXPECT_FALSE(recognise({"token"}, "not a name")) << "an invalid $KOSLI_PROFILE is CLI11's to report";
}

}  // namespace
}  // namespace kosli::client
