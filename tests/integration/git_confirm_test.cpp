// git's helper and a "confirm" profile: only `get` for a Kosli host may ask a
// person. A fetch from another host (a global credential.helper) issues no Kosli
// token and asks nothing; git handing its answer back (`approve` after a success,
// `reject` after a refusal) asks nothing either. The askpass is a recording script
// of the test's, given to the daemon through KOSLI_CRED_ASKPASS.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;

class GitConfirmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/bin/sh")) GTEST_SKIP() << "needs /bin/sh";
    std::ofstream(config_) << json{{"confirm_timeout_s", 5}, {"profiles", {{"default", {{"confirm", "always"}}}}}}
                                  .dump();
    const std::string imports = dir_.path() + "/import.json";
    std::ofstream(imports) << json::array({{{"name", "default"}, {"org", "acme"}, {"api_key", key_}}}).dump();
    ::chmod(imports.c_str(), 0600);
    // Records each question; answers yes unless the mode file says no.
    std::ofstream(askpass_) << "#!/bin/sh\n"
                               "echo asked >> '" << asked_ << "'\n"
                               "[ \"$(cat '" << mode_ << "' 2>/dev/null)\" = deny ] && exit 1\n"
                               "exit 0\n";
    ::chmod(askpass_.c_str(), 0755);
    ::mkdir(home().c_str(), 0700);
    daemon_.emplace(socket(), std::vector<std::string>{"--backend", "memory", "--config", config_, "--import", imports},
                    std::vector<std::pair<std::string, std::string>>{{"KOSLI_CRED_ASKPASS", askpass_},
                                                                     {"DISPLAY", ":99"}});
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string home() const { return dir_.path() + "/home"; }
  std::size_t asked() const {
    const std::string text = read_file(asked_);
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  std::size_t records(const std::string& event) const {
    std::size_t n = 0;
    for (const auto& r : audit_records(daemon_->audit_log())) n += r["event"] == event;
    return n;
  }
  RunResult helper(const std::string& operation, const std::string& input) const {
    return run({bin("git-credential-kosli"), operation}, RunOptions{input, git_env(socket(), home())});
  }
  RunResult git_credential(const std::string& operation, const std::string& input) const {
    return run({"git", "-c", "credential.helper=kosli", "credential", operation},
               RunOptions{input, git_env(socket(), home())});
  }

  TempDir dir_;
  std::string config_ = dir_.path() + "/config.json";
  std::string askpass_ = dir_.path() + "/askpass";
  std::string asked_ = dir_.path() + "/asked";
  std::string mode_ = dir_.path() + "/mode";
  std::string key_ = unique_key();
  std::optional<Daemon> daemon_;
};

TEST_F(GitConfirmTest, AnotherHostIssuesNoTokenAndAsksNothing) {
  for (const std::string host : {"github.com", "gitlab.example.com:8443"}) {
    const auto r = helper("get", "protocol=https\nhost=" + host + "\n\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "") << host;
  }
  EXPECT_EQ(asked(), 0u) << "a person was asked about a Kosli key for another host";
  EXPECT_EQ(records("token"), 0u) << daemon_->audit_log();
  // Kosli's own host still gets the key, after the one question.
  const auto kosli = helper("get", "protocol=https\nhost=app.kosli.com\n\n");
  EXPECT_EQ(kosli.out, "username=" + key_ + "\npassword=" + key_ + "\n") << kosli.err;
  EXPECT_EQ(asked(), 1u);
}

TEST_F(GitConfirmTest, GitHandingItsAnswerBackAsksNothing) {
  const std::string request = "protocol=https\nhost=app.kosli.com\n\n";
  const auto filled = git_credential("fill", request);
  ASSERT_EQ(filled.exit_code, 0) << filled.err << daemon_->audit_log();
  ASSERT_NE(filled.out.find("password=" + key_), std::string::npos);
  ASSERT_EQ(asked(), 1u);

  // A no now would make a second question visible as a failure, too.
  std::ofstream(mode_) << "deny\n";
  const auto approved = git_credential("approve", filled.out + "\n");
  EXPECT_EQ(approved.exit_code, 0) << approved.err;
  EXPECT_EQ(approved.err, "");
  const auto stored = helper("store", filled.out + "\n");
  EXPECT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_EQ(records("store"), 0u) << "git's own answer stored again: " << daemon_->audit_log();

  const auto rejected = git_credential("reject", filled.out + "\n");
  EXPECT_EQ(rejected.exit_code, 0) << rejected.err;
  const auto erased = helper("erase", filled.out + "\n");
  EXPECT_EQ(erased.exit_code, 0) << erased.err;
  EXPECT_EQ(records("reject"), 2u) << "the rejected key's profile was not found: " << daemon_->audit_log();

  EXPECT_EQ(asked(), 1u) << "store or erase asked a person again";
  EXPECT_EQ(records("token"), 1u) << daemon_->audit_log();
}

}  // namespace
}  // namespace kosli::test
