// Other tools get a Kosli token the way they get secrets already: through the
// real git's credential-helper protocol, and curl through `kosli-cred header`.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using Env = std::vector<std::pair<std::string, std::string>>;

class GitCredentialTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  // git with only our helper configured, no prompts, no user or system config.
  Env git_env() const { return test::git_env(socket(), dir_.path()); }

  RunResult git(const std::string& action, const std::string& input, Env extra = {}) const {
    Env env = git_env();
    env.insert(env.end(), extra.begin(), extra.end());
    return run({"git", "-c", "credential.helper=", "-c", "credential.helper=kosli", "credential", action},
               RunOptions{input, env});
  }

  // The helper itself, as git would run it.
  RunResult helper(const std::string& operation, const std::string& input) const {
    return run({bin("git-credential-kosli"), operation}, RunOptions{input, git_env()});
  }

  void store(const std::string& profile, const std::string& org, const std::string& key,
             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", org};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = cred(socket(), args, RunOptions{key});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::size_t audit_count(const Daemon& daemon, const std::string& needle) const {
    const std::string audit = daemon.audit_log();
    std::size_t n = 0;
    for (auto at = audit.find(needle); at != std::string::npos; at = audit.find(needle, at + 1)) ++n;
    return n;
  }

  TempDir dir_;
};

TEST_F(GitCredentialTest, FillAnswersForTheEuHostWithTheKeyAsUserNameAndPassword) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", "acme", key);
  const auto r = git("fill", "protocol=https\nhost=app.kosli.com\n\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("username=" + key + "\npassword=" + key + "\n"), std::string::npos) << r.out;
}

TEST_F(GitCredentialTest, FillPicksTheUsProfileByOrgThenByKosliProfile) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string alpha = unique_key(), beta = unique_key(), eu = unique_key();
  store("us-alpha", "alpha", alpha, {"--region", "us"});
  store("us-beta", "beta", beta, {"--region", "us"});
  store("default", "alpha", eu);  // same org, other host: never chosen for the US host

  const auto by_org = git("fill", "protocol=https\nhost=app.us.kosli.com\nusername=beta\n\n");
  EXPECT_NE(by_org.out.find("password=" + beta + "\n"), std::string::npos) << by_org.out << by_org.err;
  const auto other_org = git("fill", "protocol=https\nhost=app.us.kosli.com\nusername=alpha\n\n");
  EXPECT_NE(other_org.out.find("password=" + alpha + "\n"), std::string::npos) << other_org.out;
  const auto by_env = git("fill", "protocol=https\nhost=app.us.kosli.com\n\n", {{"KOSLI_PROFILE", "us-beta"}});
  EXPECT_NE(by_env.out.find("username=" + beta + "\npassword=" + beta + "\n"), std::string::npos) << by_env.out;
  // `list` shows the same choices.
  const auto listed = cred(socket(), {"list"});
  EXPECT_NE(listed.out.find("-> us-alpha, username=beta -> us-beta\n"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("-> default\n"), std::string::npos) << listed.out;
  // An org with no key on that host gets nothing from us.
  const auto unknown_org = helper("get", "protocol=https\nhost=app.us.kosli.com\nusername=gamma\n\n");
  EXPECT_EQ(unknown_org.exit_code, 0);
  EXPECT_EQ(unknown_org.out, "");
}

TEST_F(GitCredentialTest, AFullUrlIsSplitIntoItsParts) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", "acme", key);
  const auto through_git = git("fill", "url=https://app.kosli.com/api/v2/environments/acme\n\n");
  EXPECT_NE(through_git.out.find("password=" + key + "\n"), std::string::npos) << through_git.out << through_git.err;
  const auto direct = helper("get", "url=https://acme@app.kosli.com/api/v2/environments/acme\n\n");
  EXPECT_EQ(direct.out, "username=" + key + "\npassword=" + key + "\n") << direct.err;
}

TEST_F(GitCredentialTest, ForeignHostsAndPlainHttpGetNothing) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", "acme", key);
  for (const char* input : {"protocol=https\nhost=github.com\n\n", "protocol=http\nhost=app.kosli.com\n\n",
                            "protocol=https\nhost=app.kosli.com:8443\n\n"}) {
    const auto direct = helper("get", input);
    EXPECT_EQ(direct.exit_code, 0) << input;
    EXPECT_EQ(direct.out, "") << input;
    const auto through_git = git("fill", input);
    EXPECT_NE(through_git.exit_code, 0) << input;  // no helper answered and prompts are off
    EXPECT_EQ(through_git.out.find(key), std::string::npos) << input;
  }
}

TEST_F(GitCredentialTest, RejectForgetsTheCachedCopyButKeepsTheKey) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", "acme", key);
  const std::string credential = "protocol=https\nhost=app.kosli.com\nusername=acme\npassword=" + key + "\n\n";
  const auto r = git("reject", credential);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(cred(socket(), {"token"}).out, key + "\n") << "a single rejection must not delete the key";
  EXPECT_EQ(audit_count(daemon, R"("event":"reject")"), 1u);
  // A rejected credential that is not ours changes nothing.
  git("reject", "protocol=https\nhost=app.kosli.com\nusername=acme\npassword=someone-elses\n\n");
  EXPECT_EQ(audit_count(daemon, R"("event":"reject")"), 1u);
}

TEST_F(GitCredentialTest, RejectDeletesTheKeyWhenConfiguredTo) {
  const std::string config = dir_.path() + "/config.json";
  std::ofstream(config) << R"({"git_erase": "delete"})";
  Daemon daemon(socket(), {"--backend", "memory", "--config", config});
  const std::string key = unique_key();
  store("default", "acme", key);
  const auto r = git("reject", "protocol=https\nhost=app.kosli.com\nusername=acme\npassword=" + key + "\n\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cred(socket(), {"token"}).exit_code, 3);
}

TEST_F(GitCredentialTest, ApproveStoresANewOrgAndIgnoresWhatItAlreadyHas) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  const std::string credential = "protocol=https\nhost=app.us.kosli.com\nusername=NewOrg\npassword=" + key + "\n\n";
  const auto r = git("approve", credential);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto shown = cred(socket(), {"show", "--profile", "neworg-us", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out)["org"], "NewOrg");
  EXPECT_EQ(json::parse(shown.out)["host"], "https://app.us.kosli.com");
  EXPECT_EQ(cred(socket(), {"token", "--profile", "neworg-us"}).out, key + "\n");

  // git approves every credential that worked: the same one again stores nothing.
  const auto stores = audit_count(daemon, R"("event":"store")");
  git("approve", credential);
  EXPECT_EQ(audit_count(daemon, R"("event":"store")"), stores);
  // A host that is no Kosli host is not ours to keep.
  git("approve", "protocol=https\nhost=github.com\nusername=me\npassword=ghp_x\n\n");
  EXPECT_EQ(audit_count(daemon, R"("event":"store")"), stores);
}

TEST_F(GitCredentialTest, TheHelperAnswersTheExpiryWhenTheKeyHasOne) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", "acme", key, {"--expires-at", "2031-01-01T00:00:00Z"});
  const auto r = helper("get", "protocol=https\nhost=app.kosli.com\n\n");
  EXPECT_EQ(r.out, "username=" + key + "\npassword=" + key + "\npassword_expiry_utc=1924992000\n") << r.err;
}

TEST_F(GitCredentialTest, BadInputIsRefusedQuietlyAndQuickly) {
  Daemon daemon(socket(), {"--backend", "memory"});
  store("default", "acme", unique_key());
  const std::string long_line = "host=" + std::string(70000, 'a') + "\n\n";
  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage += static_cast<char>((i * 7919) % 256);
  for (const std::string& input :
       {long_line, garbage, std::string("protocol=https\nhost=app.kosli.com\npassword=a\0b\n\n", 45),
        std::string(2 * 1024 * 1024, 'x')}) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = helper("get", input);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "") << "git reads stdout: failures must be silent there";
    EXPECT_NE(r.err, "");
  }
  EXPECT_NE(helper("get", long_line).err.find("65535"), std::string::npos);
  // Operations git may add later are ignored, as git asks of helpers.
  const auto unknown = helper("frobnicate", "protocol=https\nhost=app.kosli.com\n\n");
  EXPECT_EQ(unknown.exit_code, 0);
  EXPECT_EQ(unknown.out, "");
  EXPECT_EQ(cred(socket(), {"status"}).exit_code, 0);
}

TEST_F(GitCredentialTest, ADaemonThatIsDownDoesNotHoldGitUp) {
  const auto started = std::chrono::steady_clock::now();
  const auto r = helper("get", "protocol=https\nhost=app.kosli.com\n\n");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
}

TEST_F(GitCredentialTest, CurlSendsTheHeaderFromStdinOrAFile) {
  const auto pki = make_test_pki(dir_.path());
  const std::string key = unique_key();
  KosliStandIn kosli(pki, R"({"keys": [{"key": ")" + key + R"(", "org": "acme"}]})");
  Daemon daemon(socket(), {"--backend", "memory"});
  store("default", "acme", key, {"--host", kosli.url()});
  store("wrong", "acme", unique_key(), {"--host", kosli.url()});
  const std::string url = kosli.url() + "/api/v2/environments/acme";

  const auto via_stdin = [&](const std::string& profile) {
    return run({"bash", "-c",
                "set -o pipefail; \"$0\" --socket \"$1\" header --profile \"$2\" | "
                "curl -sS -o /dev/null -w '%{http_code}' --cacert \"$3\" -H @- \"$4\"",
                bin("kosli-cred"), socket(), profile, pki.ca_cert, url});
  };
  EXPECT_EQ(via_stdin("default").out, "200") << via_stdin("default").err;
  EXPECT_EQ(via_stdin("wrong").out, "401") << "the stand-in must really check the key";

  const auto via_file = run({"bash", "-c",
                             "curl -sS -o /dev/null -w '%{http_code}' --cacert \"$3\" "
                             "-H @<(\"$0\" --socket \"$1\" header --profile \"$2\") \"$4\"",
                             bin("kosli-cred"), socket(), "default", pki.ca_cert, url});
  EXPECT_EQ(via_file.out, "200") << via_file.err;
}

}  // namespace
}  // namespace kosli::test
