// Which profiles `kosli-cred exec` may hand one command (client/exec_targets.hpp).
#include "client/exec_targets.hpp"

#include <gtest/gtest.h>

#include "proto/errors.hpp"

namespace kosli::client {
namespace {

TEST(ExecTargets, ProfilesOfOneOrgGoTogether) {
  EXPECT_FALSE(exec_targets_problem({{"eu", "acme", "https://app.kosli.com"}}));
  EXPECT_FALSE(exec_targets_problem(
      {{"eu", "acme", "https://app.kosli.com"}, {"us", "acme", "https://app.us.kosli.com"}}));
}

TEST(ExecTargets, DifferentOrgsAreAUsageErrorNamingBoth) {
  const auto problem = exec_targets_problem({{"eu", "acme", "https://app.kosli.com"},
                                             {"us", "acme", "https://app.us.kosli.com"},
                                             {"other", "zeta", "https://app.us.kosli.com"}});
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->exit_code, exit_code::usage);
  EXPECT_NE(problem->message.find("'eu' (org acme) and 'other' (org zeta)"), std::string::npos) << problem->message;
}

// Stored before stores refused them: one profile must not read as several hosts.
TEST(ExecTargets, AStoredOrgOrHostWithACommaIsRefusedEvenAlone) {
  for (const auto& target : {ExecTarget{"old", "acme,zeta", "https://app.kosli.com"},
                             ExecTarget{"old", "acme", "https://app.kosli.com,https://app.us.kosli.com"}}) {
    const auto problem = exec_targets_problem({target});
    ASSERT_TRUE(problem) << target.org << " " << target.host;
    EXPECT_EQ(problem->exit_code, exit_code::error);
    EXPECT_NE(problem->message.find("with a comma"), std::string::npos) << problem->message;
    EXPECT_NE(problem->message.find("nothing was run"), std::string::npos) << problem->message;
  }
}

TEST(ExecTargets, AProfileGivenTwiceIsAUsageError) {
  EXPECT_FALSE(repeated_profile_problem({"eu", "us"}));
  const auto problem = repeated_profile_problem({"eu", "us", "eu"});
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->exit_code, exit_code::usage);
  EXPECT_NE(problem->message.find("'eu' is given twice"), std::string::npos);
}

}  // namespace
}  // namespace kosli::client
