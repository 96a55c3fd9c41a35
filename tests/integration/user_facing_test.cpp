// What users read must be true: the daemon's own sentences, and what scripts
// get from --json when things go wrong.
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

class UserFacingTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  TempDir dir_;
};

// Days as a person writes them, not "every 90.000000 days".
TEST_F(UserFacingTest, TheScheduleLogLineWritesDaysAsAPersonDoes) {
  const std::string config = dir_.path() + "/config.json";
  std::ofstream(config) << R"({"profiles": {"ci": {"rotate_every_days": 90, "rotate_before_expiry_days": 0.5}}})";
  Daemon daemon(socket(), {"--backend", "memory", "--config", config});
  ASSERT_EQ(cred(socket(), {"status"}).exit_code, 0);
  const std::string log = daemon.log();
  EXPECT_NE(log.find("profile 'ci' is rotated through Kosli's API every 90 days and 0.5 days before it expires"),
            std::string::npos)
      << log;
}

// A script reads one JSON object from verify --json whatever happened.
TEST_F(UserFacingTest, VerifyJsonSaysTheKeyWasNotCheckedWhenKosliCannotBeReached) {
  Daemon daemon(socket(), {"--backend", "memory"}, {{"HTTPS_PROXY", ""}, {"https_proxy", ""}});
  const std::string key = unique_key();
  ASSERT_EQ(cred(socket(), {"store", "--profile", "far", "--org", "acme", "--host", "http://127.0.0.1:1"},
                 RunOptions{key})
                .exit_code,
            0);
  const auto r = cred(socket(), {"verify", "--profile", "far", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto j = nlohmann::json::parse(r.out);  // throws (and fails) when it is not JSON
  EXPECT_EQ(j["profile"], "far");
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["result"], "not_checked");
  EXPECT_TRUE(j["checked_at"].is_null());
  EXPECT_NE(j["message"].get<std::string>().find("127.0.0.1"), std::string::npos) << j.dump();
  EXPECT_EQ(r.out.find(key), std::string::npos);
  EXPECT_NE(r.err.find("127.0.0.1"), std::string::npos) << r.err;  // and said on stderr, as without --json

  // No daemon at all: still JSON, exit 4.
  daemon.stop();
  const auto down = cred(socket(), {"verify", "--profile", "far", "--json"});
  EXPECT_EQ(down.exit_code, 4) << down.err;
  const auto d = nlohmann::json::parse(down.out);
  EXPECT_EQ(d["result"], "not_checked");
  EXPECT_NE(d["message"].get<std::string>().find("not running"), std::string::npos) << d.dump();
}

// Profile names, and only those: not the words of list's git section.
TEST_F(UserFacingTest, TheBashCompletionOffersProfileNamesOnly) {
  Daemon daemon(socket(), {"--backend", "memory"});
  for (const auto& [profile, region] : {std::pair{"eu", "eu"}, {"us-prod", "us"}}) {
    ASSERT_EQ(cred(socket(), {"store", "--profile", profile, "--org", "acme", "--region", region},
                   RunOptions{unique_key()})
                  .exit_code,
              0);
  }
  const std::string bin_dir = bin("kosli-cred").substr(0, bin("kosli-cred").rfind('/'));
  const auto r = run({"bash", "-c", "source \"$1\" && _kosli_cred_profiles", "_",
                      std::string(KOSLI_TEST_SOURCE_DIR) + "/docs/completion/kosli-cred.bash"},
                     RunOptions{"", {{"PATH", bin_dir + ":/usr/bin:/bin"}, {"KOSLI_CRED_SOCKET", socket()}}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "eu\nus-prod\n");
}

}  // namespace
}  // namespace kosli::test
