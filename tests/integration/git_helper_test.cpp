// What git and its callers get from the helper against Kosli's own rules
// (tests/support/kosli_standin.py: Bearer with the key, or Basic with the key
// as username and any password), git 2.46's authtype exchange driven by its
// documented lines, `git-setup` with the real git, and a hung daemon.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/harness.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

class GitHelperTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string home() const { return dir_.path() + "/home"; }

  // git with HOME's ~/.gitconfig as its only configuration.
  Env git_env() const {
    ::mkdir(home().c_str(), 0700);
    Env env = test::git_env(socket(), home());
    for (auto& [name, value] : env) {
      if (name == "GIT_CONFIG_GLOBAL") value = home() + "/.gitconfig";
    }
    return env;
  }
  RunResult git(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin(), "git");
    return run(args, RunOptions{input, git_env()});
  }
  RunResult helper(const std::string& operation, const std::string& input) const {
    return run({bin("git-credential-kosli"), operation}, RunOptions{input, git_env()});
  }
  RunResult setup() const {
    return run({bin("kosli-cred"), "--socket", socket(), "git-setup", "--global"}, RunOptions{"", git_env()});
  }
  void store(const std::string& profile, const std::string& key, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", "acme"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = cred(socket(), args, RunOptions{key});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The value of `name=` in a credential answer.
  static std::string field(const std::string& answer, const std::string& name) {
    const auto at = answer.find("\n" + name + "=") != std::string::npos ? answer.find("\n" + name + "=") + 1
                    : answer.starts_with(name + "=")                     ? 0
                                                                         : std::string::npos;
    if (at == std::string::npos) return "";
    const auto from = at + name.size() + 1;
    return answer.substr(from, answer.find('\n', from) - from);
  }

  TempDir dir_;
};

TEST_F(GitHelperTest, WhatGitFillPrintsWorksAsBasicAndAsBearer) {
  const auto pki = make_test_pki(dir_.path());
  const std::string key = unique_key();
  KosliStandIn kosli(pki, R"({"keys": [{"key": ")" + key + R"(", "org": "acme"}]})");
  Daemon daemon(socket(), {"--backend", "memory"});
  store("default", key, {"--host", kosli.url()});
  const std::string authority = kosli.url().substr(std::strlen("https://"));
  const auto filled = git({"-c", "credential.helper=kosli", "credential", "fill"},
                          "protocol=https\nhost=" + authority + "\n\n");
  ASSERT_EQ(filled.exit_code, 0) << filled.err;
  const std::string username = field(filled.out, "username"), password = field(filled.out, "password");

  // curl reads the credential from its config on stdin, not from argv.
  const auto status = [&](const std::string& config) {
    return run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki.ca_cert, "-K", "-",
                kosli.url() + "/api/v2/environments/acme"},
               RunOptions{config})
        .out;
  };
  EXPECT_EQ(status("user = \"" + username + ":" + password + "\"\n"), "200") << "as Basic (curl -u user:password)";
  EXPECT_EQ(status("header = \"Authorization: Bearer " + password + "\"\n"), "200") << "as Bearer";
  // The stand-in holds Kosli's rule: the org as the username is refused.
  EXPECT_EQ(status("user = \"acme:" + key + "\"\n"), "401");
}

TEST_F(GitHelperTest, TheAuthtypeExchangeOnlyWhenGitOffersIt) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", key, {"--expires-at", "2031-01-01T00:00:00Z"});
  // git 2.46 and later (Debian's git is older: these are its documented lines).
  const auto offered = helper("get", "capability[]=authtype\nprotocol=https\nhost=app.kosli.com\n\n");
  EXPECT_EQ(offered.exit_code, 0) << offered.err;
  EXPECT_EQ(offered.out, "capability[]=authtype\nauthtype=Bearer\ncredential=" + key +
                             "\nephemeral=1\npassword_expiry_utc=1924992000\n");
  for (const std::string input : {"protocol=https\nhost=app.kosli.com\n\n",
                                  "capability[]=state\nprotocol=https\nhost=app.kosli.com\n\n"}) {
    const auto plain = helper("get", input);
    EXPECT_EQ(plain.out, "username=" + key + "\npassword=" + key + "\npassword_expiry_utc=1924992000\n") << input;
  }
  // And through the real git, which offers no capability.
  const auto filled = git({"-c", "credential.helper=kosli", "credential", "fill"},
                          "protocol=https\nhost=app.kosli.com\n\n");
  for (const char* never : {"authtype", "credential=", "ephemeral", "capability"}) {
    EXPECT_EQ(filled.out.find(never), std::string::npos) << filled.out;
  }
  EXPECT_NE(filled.out.find("password=" + key + "\n"), std::string::npos) << filled.out << filled.err;
}

TEST_F(GitHelperTest, CapabilityIsAnswered) {
  const auto r = helper("capability", "");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "version 0\ncapability authtype\n");
}

TEST_F(GitHelperTest, AfterSetupNoOtherHelperKeepsTheKey) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", key);
  store("us", unique_key(), {"--region", "us"});
  ASSERT_EQ(git({"config", "--global", "credential.helper", "store"}).exit_code, 0);
  const std::string stored = home() + "/.git-credentials";
  const std::string request = "protocol=https\nhost=app.kosli.com\n\n";
  const auto fill_then_approve = [&] {
    const auto filled = git({"credential", "fill"}, request);
    ASSERT_EQ(filled.exit_code, 0) << filled.err;
    ASSERT_NE(filled.out.find(key), std::string::npos) << filled.out;
    ASSERT_EQ(git({"credential", "approve"}, filled.out).exit_code, 0);
  };

  // Without the setup, the helper configured for the URL alone (as users
  // often do) leaves git's store helper in the list: it keeps the key.
  ASSERT_EQ(git({"config", "--global", "credential.https://app.kosli.com.helper", "kosli"}).exit_code, 0);
  fill_then_approve();
  EXPECT_NE(read_file(stored).find(key), std::string::npos) << "the test must see the leak it guards against";
  ::unlink(stored.c_str());

  const auto first = setup();
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("https://app.kosli.com: helper = (none), then helper = !exec '" +
                            bin("git-credential-kosli") + "'\n"),
            std::string::npos)
      << first.out;
  EXPECT_NE(first.out.find("https://app.us.kosli.com:"), std::string::npos) << first.out;
  const std::string config = read_file(home() + "/.gitconfig");
  EXPECT_EQ(setup().exit_code, 0);
  EXPECT_EQ(read_file(home() + "/.gitconfig"), config) << "running it again changes nothing";

  fill_then_approve();
  EXPECT_EQ(read_file(stored).find(key), std::string::npos) << read_file(stored);
  // Other hosts keep the user's helpers.
  EXPECT_NE(git({"config", "--global", "--get-urlmatch", "credential.helper", "https://github.com"}).out.find("store"),
            std::string::npos);
}

TEST_F(GitHelperTest, OurOwnAnswerHandedBackChangesNothingAndARejectFindsItsProfile) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", key);
  const auto filled = helper("get", "protocol=https\nhost=app.kosli.com\n\n");
  const std::string answer = "protocol=https\nhost=app.kosli.com\n" + filled.out + "\n";
  const auto stores = [&] {
    std::size_t n = 0;
    for (const auto& r : audit_records(daemon.audit_log())) n += r["event"] == "store";
    return n;
  };
  const auto before = stores();
  const auto approved = helper("store", answer);
  EXPECT_EQ(approved.exit_code, 0);
  EXPECT_EQ(approved.err, "");
  EXPECT_EQ(stores(), before) << "nothing stored, no profile made from the answer: " << daemon.audit_log();
  EXPECT_EQ(helper("erase", answer).exit_code, 0);
  EXPECT_NE(daemon.audit_log().find(R"("event":"reject")"), std::string::npos);
  EXPECT_EQ(cred(socket(), {"token"}).out, key + "\n");
}

TEST_F(GitHelperTest, ARejectedBearerCredentialIsForgottenOnlyWhenItIsOurs) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  store("default", key);
  const auto rejects = [&] {
    std::size_t n = 0;
    for (const auto& r : audit_records(daemon.audit_log())) n += r["event"] == "reject";
    return n;
  };
  const std::string bearer = "capability[]=authtype\nprotocol=https\nhost=app.kosli.com\nauthtype=Bearer\n";
  EXPECT_EQ(helper("erase", bearer + "credential=someone-elses\n\n").exit_code, 0);
  EXPECT_EQ(rejects(), 0u);
  EXPECT_EQ(helper("erase", bearer + "credential=" + key + "\nephemeral=1\n\n").exit_code, 0);
  EXPECT_EQ(rejects(), 1u);
}

TEST_F(GitHelperTest, StoreForAKosliHostNoProfileUsesSaysSo) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const auto r = helper("store", "protocol=https\nhost=kosli.acme.internal\nusername=acme\npassword=k\n\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("stored nothing: no profile uses https://kosli.acme.internal"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kosli-cred store --profile NAME --org ORG --host https://kosli.acme.internal"),
            std::string::npos)
      << r.err;
  // A host that is plainly not Kosli's reaches a global helper: not a word.
  const auto other = helper("store", "protocol=https\nhost=github.com\nusername=me\npassword=ghp_x\n\n");
  EXPECT_EQ(other.exit_code, 0);
  EXPECT_EQ(other.err, "");
}

TEST_F(GitHelperTest, AHungDaemonCostsGitOnlyAFewSeconds) {
  // A listener that takes connections and never answers.
  ASSERT_EQ(::mkdir((dir_.path() + "/kosli-cred").c_str(), 0700), 0);
  const int fd = listen_and_never_answer(socket());
  ASSERT_GE(fd, 0);
  const auto started = std::chrono::steady_clock::now();
  const auto r = helper("get", "protocol=https\nhost=app.kosli.com\n\n");
  const auto took = std::chrono::steady_clock::now() - started;
  ::close(fd);
  EXPECT_LT(took, std::chrono::seconds(8)) << "the client's own deadline is 15 s";
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("did not answer within"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kosli::test
