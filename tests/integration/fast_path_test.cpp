// bin/kosli-cred serves the plain forms of token, header and exec itself and
// hands everything else to the full command line (libexec/kosli-cred/kosli-cred,
// CLI11). A user must not be able to tell which of the two answered.
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

namespace fs = std::filesystem;

const std::string kFullCommandLine = KOSLI_TEST_FULL_CLI;

std::string this_program() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string();
}

class FastPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cred(socket(), {"store", "--profile", "default", "--org", "acme"}, RunOptions{default_key_}).exit_code, 0);
    ASSERT_EQ(cred(socket(), {"store", "--profile", "ci", "--org", "ci-org", "--region", "us"}, RunOptions{ci_key_})
                  .exit_code,
              0);
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  TempDir dir_;
  Daemon daemon_{socket(), {"--backend", "memory"}};
  std::string default_key_ = unique_key();
  std::string ci_key_ = unique_key();
};

TEST_F(FastPathTest, BothProgramsGiveTheSameAnswers) {
  enum SocketAt { first, last, last_with_equals };
  struct Case {
    std::vector<std::string> args;  // and --socket S, first unless said
    std::vector<std::pair<std::string, std::string>> env;
    SocketAt socket_at = first;
  };
  const std::string show_env = R"(printf '%s|%s|%s|' "$KOSLI_API_TOKEN" "$KOSLI_ORG" "$KOSLI_HOST"; exit 3)";
  const std::vector<Case> cases = {
      {{"token"}, {}},
      {{"token", "--profile", "ci"}, {}},
      {{"token", "-p", "ci", "--json"}, {}},
      {{"token", "--profile=ci"}, {}},
      {{"token"}, {{"KOSLI_PROFILE", "ci"}}},
      {{"token", "--profile", "nobody"}, {}},                // exit 3
      {{"token"}, {{"KOSLI_PROFILE", "not a name"}}},        // exit 2, CLI11's message
      {{"token", "--profile", "ci", "--profile", "ci"}, {}},  // exit 2
      {{"token", "-pci"}, {}},                               // CLI11's own short form
      {{"token", "--bogus"}, {}},
      {{"header", "-p", "ci"}, {}},
      {{"header"}, {}},
      {{"exec", "--profile", "ci", "--", "sh", "-c", show_env}, {}},
      {{"exec", "--", "sh", "-c", show_env}, {}},
      {{"exec", "--", "no-such-program-kosli"}, {}},  // 127
      {{"exec", "sh"}, {}},
      {{"token", "-p", "ci"}, {}, last_with_equals},
      {{"header"}, {}, last},
      {{"exec", "-p", "ci", "--socket", socket(), "--", "sh", "-c", show_env}, {}},  // --socket twice
      // A daemon uid named besides your own: your own daemon is still trusted.
      {{"--daemon-uid", "4242", "token"}, {}},
      {{"token", "-p", "ci", "--daemon-uid=4242"}, {}},
      {{"exec", "--daemon-uid", "4242", "--", "sh", "-c", show_env}, {}},
      {{"token"}, {{"KOSLI_CRED_DAEMON_UID", "4242"}}},
      {{"token"}, {{"KOSLI_CRED_DAEMON_UID", "not-a-uid"}}},  // exit 2
      {{"token", "--daemon-uid", "-1"}, {}},                   // exit 2
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    if (c.socket_at == first) args.insert(args.begin(), {"--socket", socket()});
    if (c.socket_at == last) args.insert(args.end(), {"--socket", socket()});
    if (c.socket_at == last_with_equals) args.push_back("--socket=" + socket());
    std::string shown;
    for (const auto& arg : args) shown += " " + arg;
    for (const auto& [name, value] : c.env) shown = name + "=" + value + shown;

    std::vector<std::string> fast = {bin("kosli-cred")}, full = {kFullCommandLine};
    fast.insert(fast.end(), args.begin(), args.end());
    full.insert(full.end(), args.begin(), args.end());
    const auto a = run(fast, RunOptions{"", c.env});
    const auto b = run(full, RunOptions{"", c.env});
    EXPECT_EQ(a.exit_code, b.exit_code) << shown << "\n" << a.err << b.err;
    EXPECT_EQ(a.out, b.out) << shown;
    EXPECT_EQ(a.err, b.err) << shown;
  }
  // And the answers are the right ones, not merely the same.
  EXPECT_EQ(cred(socket(), {"token", "-p", "ci"}).out, ci_key_ + "\n");
  EXPECT_EQ(cred(socket(), {"header"}).out, "Authorization: Bearer " + default_key_ + "\n");
  const auto shown = cred(socket(), {"exec", "-p", "ci", "--", "sh", "-c", show_env});
  EXPECT_EQ(shown.exit_code, 3);
  EXPECT_EQ(shown.out, ci_key_ + "|ci-org|https://app.us.kosli.com|");

  // kosli-credd takes both for the client: the program that ran it is the
  // requester, or for exec the program it runs.
  daemon_.stop();
  const std::string me = this_program();
  char shell[PATH_MAX];
  ASSERT_NE(::realpath("/bin/sh", shell), nullptr);
  std::size_t tokens = 0;
  for (const auto& record : audit_records(daemon_.audit_log())) {
    if (record.value("event", "") != "token" || record.value("result", "") != "issued") continue;
    ++tokens;
    const bool exec = record.value("requester_by", "") == "kosli_cred_exec";
    EXPECT_EQ(record.value("requester", ""), exec ? std::string(shell) : me) << record.dump();
    if (!exec) EXPECT_EQ(record.value("requester_by", ""), "parent_of_kosli_cred") << record.dump();
  }
  // Seventeen cases issue a token, each run twice (exec of a missing program asks for none).
  EXPECT_EQ(tokens, 2 * 17 + 3u);
}

// The fast path needs nothing but bin/kosli-cred; the rest says what is missing.
TEST_F(FastPathTest, AKosliCredWithoutItsFullCommandLineStillServesTokens) {
  const std::string lone = dir_.path() + "/bin/kosli-cred";
  fs::create_directories(dir_.path() + "/bin");
  fs::copy_file(bin("kosli-cred"), lone);

  const auto token = run({lone, "--socket", socket(), "token", "-p", "ci"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, ci_key_ + "\n");

  for (std::vector<std::string> args : {std::vector<std::string>{"list"}, {"token", "--help"}}) {
    args.insert(args.begin(), {lone, "--socket", socket()});
    const auto other = run(args);
    EXPECT_EQ(other.exit_code, 1);
    EXPECT_EQ(other.out, "");
    EXPECT_EQ(other.err.rfind("kosli-cred: cannot run its full command line " + dir_.path() + "/bin/", 0), 0)
        << other.err;
    EXPECT_NE(other.err.find("libexec/kosli-cred/kosli-cred: No such file or directory\n"), std::string::npos)
        << other.err;
  }
}

}  // namespace
}  // namespace kosli::test
