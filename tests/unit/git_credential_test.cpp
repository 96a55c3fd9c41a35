// git's credential protocol as the helper reads and answers it.
#include "client/git_credential.hpp"

#include <gtest/gtest.h>

namespace kosli::client {
namespace {

GitCredential parsed(std::string_view input) {
  auto result = parse_git_credential(input);
  EXPECT_TRUE(std::holds_alternative<GitCredential>(result));
  return std::get<GitCredential>(std::move(result));
}

TEST(GitCredential, TheAuthtypeCapabilityIsReadOnlyWhenOffered) {
  EXPECT_TRUE(parsed("capability[]=authtype\nprotocol=https\nhost=app.kosli.com\n\n").authtype);
  EXPECT_TRUE(parsed("capability[]=state\ncapability[]=authtype\nhost=app.kosli.com\n\n").authtype);
  EXPECT_FALSE(parsed("protocol=https\nhost=app.kosli.com\n\n").authtype);
  EXPECT_FALSE(parsed("capability[]=state\nhost=app.kosli.com\n\n").authtype);
  EXPECT_FALSE(parsed("capability[]=authtypes\nauthtype=Bearer\n\n").authtype);
  // After the blank line, nothing is the request's.
  EXPECT_FALSE(parsed("host=app.kosli.com\n\ncapability[]=authtype\n").authtype);
}

TEST(GitCredential, ThePlainAnswerWorksAsBasicAndAsBearer) {
  // Kosli's Basic rule: the key is the username; the password is ignored.
  EXPECT_EQ(git_answer(false, "k3y", 0), "username=k3y\npassword=k3y\n");
  EXPECT_EQ(git_answer(false, "k3y", 1924992000), "username=k3y\npassword=k3y\npassword_expiry_utc=1924992000\n");
}

TEST(GitCredential, TheAuthtypeAnswerIsABearerCredentialNoOtherHelperKeeps) {
  EXPECT_EQ(git_answer(true, "k3y", 0), "capability[]=authtype\nauthtype=Bearer\ncredential=k3y\nephemeral=1\n");
  EXPECT_EQ(git_answer(true, "k3y", 7),
            "capability[]=authtype\nauthtype=Bearer\ncredential=k3y\nephemeral=1\npassword_expiry_utc=7\n");
}

TEST(GitCredential, CapabilityNamesTheVersionThenAuthtype) {
  EXPECT_EQ(kGitCapabilities, "version 0\ncapability authtype\n");
}

}  // namespace
}  // namespace kosli::client
