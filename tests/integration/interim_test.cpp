// A daemon asking a person says so: a token for a profile with "confirm" gets
// "102 Processing" (with how long the question stays open) before its final
// answer, and the clients wait that long instead of their short bounds: git's
// helper (6 s in all) gets a token approved after 8 s, and says on stderr that
// it waits for the dialog. What needs no person still gets no 102, and a hung
// daemon still costs kosli-cred token only its 15 s.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The git helper's bound in all (client/git_credential.cpp).
constexpr std::chrono::seconds kGitBound{6};
// The askpass answers yes this long after it is asked: past git's bound.
constexpr int kAnswerAfterSeconds = 8;

class InterimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/bin/sh")) GTEST_SKIP() << "needs /bin/sh";
    ::mkdir(home().c_str(), 0700);
    std::ofstream(config_path()) << json{{"confirm_timeout_s", 20},
                                         {"profiles", {{"default", {{"confirm", "per-program"}}}}}}
                                        .dump();
    const std::string imports = dir_.path() + "/import.json";
    std::ofstream(imports) << json::array({{{"name", "default"}, {"org", "acme"}, {"api_key", key_}},
                                           {{"name", "free"}, {"org", "acme"}, {"api_key", free_key_}}})
                                  .dump();
    ::chmod(imports.c_str(), 0600);
    args_ = {"--backend", "memory", "--config", config_path(), "--import", imports};
    set_delay(0);
  }

  // The askpass says yes `seconds` after it is asked, and counts its questions.
  void set_delay(int seconds) const {
    std::ofstream(askpass_) << "#!/bin/sh\necho asked >> '" << asked_ << "'\nsleep " << seconds << "\nexit 0\n";
    ::chmod(askpass_.c_str(), 0755);
  }
  std::size_t asked() const {
    const std::string text = read_file(asked_);
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  std::string config_path() const { return dir_.path() + "/config.json"; }
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string home() const { return dir_.path() + "/home"; }
  std::vector<std::pair<std::string, std::string>> desktop() const {
    return {{"KOSLI_CRED_ASKPASS", askpass_}, {"DISPLAY", ":99"}};
  }
  // git with HOME's ~/.gitconfig as its only configuration.
  std::vector<std::pair<std::string, std::string>> git_env() const {
    auto env = test::git_env(socket(), home());
    for (auto& [name, value] : env) {
      if (name == "GIT_CONFIG_GLOBAL") value = home() + "/.gitconfig";
    }
    return env;
  }
  std::string waiting_line(const std::string& program) const {
    return program + ": waiting for you to approve profile 'default' in the dialog (20 s)...\n";
  }

  TempDir dir_;
  std::string askpass_ = dir_.path() + "/askpass";
  std::string asked_ = dir_.path() + "/asked";
  std::string key_ = unique_key(), free_key_ = unique_key();
  std::vector<std::string> args_;
};

TEST_F(InterimTest, GitsHelperWaitsForAnAnswerPastItsOwnBound) {
  set_delay(kAnswerAfterSeconds);
  Daemon daemon(socket(), args_, desktop());
  const auto started = Clock::now();
  const auto r = run({bin("git-credential-kosli"), "get"}, RunOptions{"protocol=https\nhost=app.kosli.com\n\n",
                                                                      git_env()});
  const auto took = Clock::now() - started;
  ASSERT_EQ(r.exit_code, 0) << r.err << daemon.log();
  EXPECT_EQ(r.out, "username=" + key_ + "\npassword=" + key_ + "\n");
  EXPECT_GT(took, kGitBound) << "the answer came within git's bound: this tests nothing";
  EXPECT_EQ(r.err, waiting_line("git-credential-kosli"));
  EXPECT_EQ(asked(), 1u);
}

TEST_F(InterimTest, GitCredentialFillAsGitSetupConfiguresItWaitsForTheAnswer) {
  set_delay(kAnswerAfterSeconds);
  Daemon daemon(socket(), args_, desktop());
  const auto setup = run({bin("kosli-cred"), "--socket", socket(), "git-setup", "--global"}, RunOptions{"", git_env()});
  ASSERT_EQ(setup.exit_code, 0) << setup.err;
  const auto filled =
      run({"git", "credential", "fill"}, RunOptions{"protocol=https\nhost=app.kosli.com\n\n", git_env()});
  ASSERT_EQ(filled.exit_code, 0) << filled.err << daemon.log();
  EXPECT_NE(filled.out.find("password=" + key_ + "\n"), std::string::npos) << filled.out;
  EXPECT_NE(filled.err.find(waiting_line("git-credential-kosli")), std::string::npos) << filled.err;
}

TEST_F(InterimTest, TheDaemonSays102WhileAskingAndNotOnceRemembered) {
  Daemon daemon(socket(), args_, desktop());
  RawConnection c(socket());
  ASSERT_TRUE(c.connected());
  const std::string request = "GET /v1/profiles/default/token HTTP/1.1\r\nHost: localhost\r\n\r\n";
  ASSERT_TRUE(c.send(request));
  const auto interim = c.response(std::chrono::seconds(10));
  ASSERT_TRUE(interim) << daemon.log();
  EXPECT_EQ(interim->status, 102) << interim->head;
  EXPECT_EQ(interim->head.rfind("HTTP/1.1 102 Processing\r\n", 0), 0u) << interim->head;
  EXPECT_EQ(interim->header("Kosli-Asking-Seconds"), "20") << interim->head;
  const auto answer = c.response(std::chrono::seconds(10));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200) << answer->head;
  EXPECT_EQ(json::parse(answer->body, nullptr, false).value("token", ""), key_);

  // The same program again, on the same connection: remembered, no question, no 102.
  ASSERT_TRUE(c.send(request));
  const auto remembered = c.response(std::chrono::seconds(10));
  ASSERT_TRUE(remembered);
  EXPECT_EQ(remembered->status, 200) << remembered->head;
  EXPECT_EQ(asked(), 1u);
  // A profile without confirm: no 102 either.
  ASSERT_TRUE(c.send("GET /v1/profiles/free/token HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  const auto free = c.response(std::chrono::seconds(10));
  ASSERT_TRUE(free);
  EXPECT_EQ(free->status, 200) << free->head;
}

TEST_F(InterimTest, AnHttp10PeerGetsNo102) {
  Daemon daemon(socket(), args_, desktop());
  const auto r = exchange(socket(), "GET /v1/profiles/default/token HTTP/1.0\r\nHost: localhost\r\n\r\n");
  ASSERT_TRUE(r) << daemon.log();
  EXPECT_EQ(r->status, 200) << r->head;
  EXPECT_EQ(json::parse(r->body, nullptr, false).value("token", ""), key_);
  EXPECT_EQ(asked(), 1u);
}

TEST_F(InterimTest, KosliCredSaysItWaitsOnlyWhileAPersonIsAsked) {
  Daemon daemon(socket(), args_, desktop());
  const auto first = cred(socket(), {"token", "--profile", "default"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, key_ + "\n");
  EXPECT_EQ(first.err, waiting_line("kosli-cred"));
  const auto again = cred(socket(), {"token", "--profile", "default"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err, "") << "a remembered approval still said it waits";
  const auto json_form = cred(socket(), {"token", "--profile", "default", "--json"});
  ASSERT_EQ(json_form.exit_code, 0) << json_form.err;
  EXPECT_EQ(json::parse(json_form.out, nullptr, false).value("token", ""), key_);
  EXPECT_EQ(asked(), 1u);
}

TEST_F(InterimTest, AHungDaemonCostsATokenItsFifteenSecondsNotTheQuestions) {
  // A listener that takes connections and never answers.
  ASSERT_EQ(::mkdir((dir_.path() + "/kosli-cred").c_str(), 0700), 0);
  const int fd = listen_and_never_answer(socket());
  ASSERT_GE(fd, 0);
  const auto started = Clock::now();
  const auto r = cred(socket(), {"token", "--profile", "default"}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}},
                                                                               std::chrono::seconds(60)});
  const auto took = Clock::now() - started;
  ::close(fd);
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("did not answer within 15 s"), std::string::npos) << r.err;
  EXPECT_GE(took, std::chrono::seconds(14));
  EXPECT_LT(took, std::chrono::seconds(25)) << "a token waits 15 s for a daemon that says nothing";
}

}  // namespace
}  // namespace kosli::test
