// `kosli-cred exec --profile eu --profile us -- CMD`: the Kosli CLI's multi-host
// mode (KOSLI_HOST and KOSLI_API_TOKEN as comma-separated lists in one order,
// KOSLI_ORG once), and nothing that could make one profile read as several.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

namespace fs = std::filesystem;

// What the command sees: every Kosli variable, set or not.
const std::string kShowEnv =
    R"(for v in KOSLI_API_TOKEN KOSLI_ORG KOSLI_HOST KOSLI_API_URL KOSLI_BASE_URL; do )"
    R"(eval "printf '%s=%s|' $v \"\${$v-unset}\""; done)";

class MultiHostExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store("eu", "acme", {}, eu_key_);
    store("us", "acme", {"--region", "us"}, us_key_);
    store("other", "zeta", {"--region", "us"}, unique_key());
  }
  void store(const std::string& profile, const std::string& org, std::vector<std::string> more,
             const std::string& key) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", org};
    args.insert(args.end(), more.begin(), more.end());
    const auto r = cred(socket(), args, RunOptions{key});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  TempDir dir_;
  Daemon daemon_{socket(), {"--backend", "memory"}};
  std::string eu_key_ = unique_key();
  std::string us_key_ = unique_key();
};

TEST_F(MultiHostExecTest, TwoProfilesGiveTheKosliCliItsMultiHostVariablesInTheOrderGiven) {
  const auto both = cred(socket(), {"exec", "-p", "eu", "--profile", "us", "--", "sh", "-c", kShowEnv},
                         RunOptions{"", {{"KOSLI_API_URL", "https://stale.example"}}});
  EXPECT_EQ(both.exit_code, 0) << both.err;
  EXPECT_EQ(both.out, "KOSLI_API_TOKEN=" + eu_key_ + "," + us_key_ +
                          "|KOSLI_ORG=acme|KOSLI_HOST=https://app.kosli.com,https://app.us.kosli.com"
                          "|KOSLI_API_URL=unset|KOSLI_BASE_URL=unset|");

  const auto reversed = cred(socket(), {"exec", "-p", "us", "-p", "eu", "--", "sh", "-c", kShowEnv});
  EXPECT_EQ(reversed.out, "KOSLI_API_TOKEN=" + us_key_ + "," + eu_key_ +
                              "|KOSLI_ORG=acme|KOSLI_HOST=https://app.us.kosli.com,https://app.kosli.com"
                              "|KOSLI_API_URL=unset|KOSLI_BASE_URL=unset|");

  // One profile: today's environment exactly, no comma anywhere.
  const auto one = cred(socket(), {"exec", "-p", "us", "--", "sh", "-c", kShowEnv});
  EXPECT_EQ(one.out, "KOSLI_API_TOKEN=" + us_key_ +
                         "|KOSLI_ORG=acme|KOSLI_HOST=https://app.us.kosli.com"
                         "|KOSLI_API_URL=https://app.us.kosli.com|KOSLI_BASE_URL=https://app.us.kosli.com|");
}

TEST_F(MultiHostExecTest, ProfilesOfDifferentOrgsAreAUsageErrorNamingBoth) {
  const auto r = cred(socket(), {"exec", "-p", "eu", "-p", "other", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "kosli-cred: exec: profiles 'eu' (org acme) and 'other' (org zeta) are of different orgs; the Kosli "
            "CLI takes one KOSLI_ORG for every host, so give profiles of one org, or run the command once per org\n");
  EXPECT_EQ(r.err.find(eu_key_), std::string::npos);

  const auto twice = cred(socket(), {"exec", "-p", "eu", "-p", "eu", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(twice.exit_code, 2);
  EXPECT_EQ(twice.out, "");
  EXPECT_NE(twice.err.find("profile 'eu' is given twice"), std::string::npos) << twice.err;
}

TEST_F(MultiHostExecTest, AnOrgOrHostWithACommaIsRefusedAtStore) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--org", "acme,zeta"},
           {"--org", "acme", "--host", "https://app.kosli.com,https://app.us.kosli.com"},
       }) {
    std::vector<std::string> all = {"store", "--profile", "comma"};
    all.insert(all.end(), args.begin(), args.end());
    const auto r = cred(socket(), all, RunOptions{unique_key()});
    EXPECT_EQ(r.exit_code, 2) << args.back();
    EXPECT_NE(r.err.find("comma"), std::string::npos) << r.err;
  }
  EXPECT_EQ(cred(socket(), {"show", "--profile", "comma"}).exit_code, 3);

  // The daemon refuses it too, for any other client.
  const auto put = run({"curl", "-s", "--unix-socket", socket(), "-X", "PUT", "-H", "Content-Type: application/json",
                        "--data", R"({"org":"acme,zeta","host":"https://app.kosli.com","kind":"personal","api_key":"k"})",
                        "http://localhost/v1/profiles/comma"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_NE(put.out.find("bad_request"), std::string::npos) << put.out;
  EXPECT_NE(put.out.find("comma"), std::string::npos) << put.out;
}

// bin/kosli-cred serves one profile itself and hands the repeated form to the
// full command line: a copy without it says so rather than serving one profile.
TEST_F(MultiHostExecTest, TheFastPathHandsRepeatedProfilesToTheFullCommandLine) {
  const std::string lone = dir_.path() + "/bin/kosli-cred";
  fs::create_directories(dir_.path() + "/bin");
  fs::copy_file(bin("kosli-cred"), lone);
  const auto one = run({lone, "--socket", socket(), "exec", "-p", "eu", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "ran\n");
  const auto two = run({lone, "--socket", socket(), "exec", "-p", "eu", "-p", "us", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(two.exit_code, 1);
  EXPECT_EQ(two.out, "");
  EXPECT_EQ(two.err.rfind("kosli-cred: cannot run its full command line ", 0), 0) << two.err;
}

}  // namespace
}  // namespace kosli::test
