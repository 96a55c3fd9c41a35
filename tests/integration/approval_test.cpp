// Approvals ("confirm"), as a user sees them: an askpass asked with a question
// naming the program, its answer deciding whether the token goes out (exit 5
// with how to allow it otherwise), a per-program yes remembered, "always"
// asking each time, no answer being a denial whose askpass is killed, and
// other profiles served while a question is open. The askpass is a recording
// script of the test's; the daemon gets it through KOSLI_CRED_ASKPASS.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;

std::size_t lines_in(const std::string& path) {
  const std::string text = read_file(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Whether `pid` is gone (a zombie no one reaped yet counts as gone).
bool process_gone(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

class ApprovalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/bin/sh")) GTEST_SKIP() << "needs /bin/sh";
    std::ofstream(config_path()) << json{{"confirm_timeout_s", 2},
                                         {"profiles",
                                          {{"me", {{"confirm", "per-program"}}},
                                           {"al", {{"confirm", "always"}}}}}}
                                        .dump();
    const std::string imports = dir_.path() + "/import.json";
    json list = json::array();
    for (const auto& [name, key] : {std::pair{"me", me_key_}, {"al", al_key_}, {"free", free_key_}}) {
      list.push_back({{"name", name}, {"org", "acme"}, {"api_key", key}});
    }
    std::ofstream(imports) << list.dump();
    ::chmod(imports.c_str(), 0600);
    args_ = {"--backend", "memory", "--config", config_path(), "--import", imports};

    // allow: yes; deny: no; say-no/say-yes: exit 0 saying so; hang: never answers, and leaves a child behind.
    std::ofstream(askpass_) << "#!/bin/sh\n"
                               "printf '%s\\n' \"$1\" > '" << dir_.path() << "/question'\n"
                               "echo \"$SSH_ASKPASS_PROMPT\" >> '" << asked_ << "'\n"
                               "case $(cat '" << mode_ << "') in\n"
                               "  allow) exit 0 ;;\n"
                               "  deny) exit 1 ;;\n"
                               "  say-no) echo no; exit 0 ;;\n"
                               "  say-yes) echo YES; exit 0 ;;\n"
                               "  hang) echo $$ > '" << dir_.path() << "/hang.pid'\n"
                               "        sleep 1000 & echo $! > '" << dir_.path() << "/sleep.pid'\n"
                               "        wait; exit 0 ;;\n"
                               "esac\n"
                               "exit 2\n";
    ::chmod(askpass_.c_str(), 0755);
    set_mode("allow");
  }

  void set_mode(const std::string& mode) const { std::ofstream(mode_) << mode << "\n"; }
  std::string config_path() const { return dir_.path() + "/config.json"; }
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::vector<std::pair<std::string, std::string>> desktop() const {
    return {{"KOSLI_CRED_ASKPASS", askpass_}, {"DISPLAY", ":99"}};
  }
  std::size_t asked() const { return lines_in(asked_); }

  // kosli-cred token run by the test itself (its parent, so the requester).
  RunResult token(const std::string& profile) const { return cred(socket(), {"token", "--profile", profile}); }
  // ... and by /bin/sh: another program.
  RunResult token_by_shell(const std::string& profile) const {
    return run({"/bin/sh", "-c", "\"$0\" --socket \"$1\" token --profile \"$2\"; exit $?", bin("kosli-cred"),
                socket(), profile});
  }
  json status() const {
    const auto r = cred(socket(), {"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }
  // Waits (bounded) until the askpass has been started `n` times: its own record
  // is the signal that a question is open.
  void wait_until_asked(std::size_t n) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (asked() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GE(asked(), n);
  }

  TempDir dir_;
  std::string askpass_ = dir_.path() + "/askpass";
  std::string asked_ = dir_.path() + "/asked";
  std::string mode_ = dir_.path() + "/mode";
  std::string me_key_ = unique_key(), al_key_ = unique_key(), free_key_ = unique_key();
  std::vector<std::string> args_;
};

TEST_F(ApprovalTest, PerProgramAsksOnceNamingTheProgramThenRemembersIt) {
  Daemon daemon(socket(), args_, desktop());
  const auto first = token("me");
  ASSERT_EQ(first.exit_code, 0) << first.err << daemon.log();
  EXPECT_EQ(first.out, me_key_ + "\n");
  EXPECT_EQ(asked(), 1u);
  EXPECT_EQ(read_file(asked_), "confirm\n");  // the OpenSSH convention

  const std::string question = read_file(dir_.path() + "/question");
  const std::string self = real_path("/proc/self/exe");
  EXPECT_NE(question.find("Program: " + self + " (pid " + std::to_string(::getpid()) + ")"), std::string::npos)
      << question;
  EXPECT_NE(question.find("Working directory: " + std::filesystem::current_path().string()), std::string::npos)
      << question;
  EXPECT_NE(question.find("profile 'me' (service-account key, org acme, https://app.kosli.com)"),
            std::string::npos) << question;
  EXPECT_NE(question.find("Parent: "), std::string::npos) << question;
  EXPECT_EQ(question.find(me_key_), std::string::npos);

  const auto again = token("me");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(asked(), 1u) << "an approved program was asked again";

  const auto other = token_by_shell("me");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_EQ(asked(), 2u) << "another program was not asked";

  const auto free = token("free");
  ASSERT_EQ(free.exit_code, 0) << free.err;
  EXPECT_EQ(asked(), 2u) << "a profile without confirm asked";

  const json s = status();
  ASSERT_TRUE(s.contains("approvals")) << s.dump();
  const json want = {{{"profile", "me"}, {"programs", json::array({real_path("/bin/sh"), self})}}};
  std::vector<std::string> programs = s["approvals"]["approved"][0]["programs"];
  std::sort(programs.begin(), programs.end());
  std::vector<std::string> expected{real_path("/bin/sh"), self};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(programs, expected) << s.dump();
  EXPECT_EQ(s["approvals"]["approved"][0]["profile"], "me");

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "approval", "approved"), 3u);  // two askpass yes, one remembered
  std::size_t remembered = 0;
  for (const auto& r : records) {
    if (r["event"] == "approval" && r.value("detail", "").rfind("remembered", 0) == 0) ++remembered;
  }
  EXPECT_EQ(remembered, 1u);

  if (std::filesystem::exists("/usr/bin/curl")) {
    const auto metrics = run({"/usr/bin/curl", "-s", "--unix-socket", socket(), "http://localhost/v1/metrics"});
    EXPECT_NE(metrics.out.find("kosli_credd_approvals_total{decision=\"askpass_yes\"} 2"), std::string::npos)
        << metrics.out;
    EXPECT_NE(metrics.out.find("kosli_credd_approvals_total{decision=\"remembered\"} 1"), std::string::npos);
  }
}

// exec asks for the program it is about to run: that is what the question names.
TEST_F(ApprovalTest, ExecAsksForTheProgramItRuns) {
  Daemon daemon(socket(), args_, desktop());
  const auto r = cred(socket(), {"exec", "--profile", "al", "--", "/bin/sh", "-c", "test -n \"$KOSLI_API_TOKEN\""});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(asked(), 1u);
  const std::string question = read_file(dir_.path() + "/question");
  EXPECT_NE(question.find("Program: " + real_path("/bin/sh") + " (pid "), std::string::npos) << question;
}

TEST_F(ApprovalTest, AlwaysAsksEveryTime) {
  Daemon daemon(socket(), args_, desktop());
  for (int i = 1; i <= 2; ++i) {
    const auto r = token("al");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, al_key_ + "\n");
    EXPECT_EQ(asked(), static_cast<std::size_t>(i));
  }
  EXPECT_EQ(status()["approvals"]["approved"], json::array());
}

TEST_F(ApprovalTest, ADenialIsExit5WithHowToAllowItAndIsShown) {
  set_mode("deny");
  Daemon daemon(socket(), args_, desktop());
  const auto r = token("me");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("was denied at the desktop"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("profiles.me.confirm to \"never\""), std::string::npos) << r.err;
  EXPECT_EQ(asked(), 1u);

  // Not remembered: the next request asks again.
  set_mode("allow");
  ASSERT_EQ(token("me").exit_code, 0);
  EXPECT_EQ(asked(), 2u);

  const json s = status();
  EXPECT_EQ(s["approvals"]["last_denial"]["profile"], "me") << s.dump();
  EXPECT_EQ(s["approvals"]["last_denial"]["how"], "askpass no") << s.dump();
  EXPECT_EQ(s["approvals"]["last_denial"]["program"], real_path("/proc/self/exe")) << s.dump();
  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "approval", "denied"), 1u);
  EXPECT_EQ(count_records(records, "token", "refused"), 1u);
}

TEST_F(ApprovalTest, NoAnswerIsADenialAndTheAskpassIsKilled) {
  set_mode("hang");
  Daemon daemon(socket(), args_, desktop());
  const auto started = std::chrono::steady_clock::now();
  const auto r = token("me");
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("no answer within 2 s"), std::string::npos) << r.err;
  EXPECT_GE(took, std::chrono::seconds(2));
  EXPECT_LT(took, std::chrono::seconds(10));
  const pid_t shell = std::atoi(read_file(dir_.path() + "/hang.pid").c_str());
  const pid_t child = std::atoi(read_file(dir_.path() + "/sleep.pid").c_str());
  ASSERT_GT(shell, 0);
  ASSERT_GT(child, 0);
  // SIGKILL is sent to the group before the answer; on a loaded machine the
  // kernel may take a moment to take them down.
  EXPECT_TRUE(eventually([&] { return process_gone(shell); }, std::chrono::seconds(3)));
  EXPECT_TRUE(eventually([&] { return process_gone(child); }, std::chrono::seconds(3)))
      << "the askpass's own child outlived the timeout";
  EXPECT_EQ(status()["approvals"]["last_denial"]["how"], "askpass timeout");
}

TEST_F(ApprovalTest, NoAskpassIsExit5SayingHowToFixIt) {
  Daemon daemon(socket(), args_, {{"DISPLAY", ":99"}, {"KOSLI_CRED_ASKPASS", ""}, {"PATH", dir_.path()}});
  const auto r = token("me");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("no askpass program is installed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("KOSLI_CRED_ASKPASS"), std::string::npos) << r.err;

  Daemon headless(socket() + "2", args_, {{"DISPLAY", ""}, {"WAYLAND_DISPLAY", ""}, {"KOSLI_CRED_ASKPASS", askpass_}});
  const auto h = cred(socket() + "2", {"token", "--profile", "me"});
  EXPECT_EQ(h.exit_code, 5) << h.err;
  EXPECT_NE(h.err.find("no display"), std::string::npos) << h.err;
  EXPECT_EQ(asked(), 0u);
}

TEST_F(ApprovalTest, AnOpenQuestionHoldsUpNoOneElseAndIsShared) {
  set_mode("hang");
  Daemon daemon(socket(), args_, desktop());
  auto waiting = std::async(std::launch::async, [this] { return token("me"); });
  wait_until_asked(1);
  auto joining = std::async(std::launch::async, [this] { return token("me"); });

  const auto started = std::chrono::steady_clock::now();
  const auto free = token("free");
  EXPECT_EQ(free.exit_code, 0) << free.err;
  EXPECT_EQ(free.out, free_key_ + "\n");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));

  EXPECT_EQ(waiting.get().exit_code, 5);
  EXPECT_EQ(joining.get().exit_code, 5);
  EXPECT_EQ(asked(), 1u) << "the same program for the same profile was asked twice at once";
}

// A yes to a program asking for a token (the credential helper, kosli-cred
// token) is not one to `kosli-cred exec` running that program, nor the reverse.
TEST_F(ApprovalTest, AYesCoversOnlyTheWayTheProgramAsked) {
  Daemon daemon(socket(), args_, desktop());
  ASSERT_EQ(token_by_shell("me").exit_code, 0);
  EXPECT_EQ(asked(), 1u);
  const std::vector<std::string> exec{"exec", "--profile", "me", "--", "/bin/sh", "-c", "test -n \"$KOSLI_API_TOKEN\""};
  const auto r = cred(socket(), exec);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(asked(), 2u) << "a yes to /bin/sh's token covered kosli-cred exec -- /bin/sh";
  ASSERT_EQ(cred(socket(), exec).exit_code, 0);
  ASSERT_EQ(token_by_shell("me").exit_code, 0);
  EXPECT_EQ(asked(), 2u) << "each way was approved once and remembered";
  EXPECT_EQ(status()["approvals"]["approved"], json::parse(R"([{"profile":"me","programs":[")" +
                                                           real_path("/bin/sh") + R"("]}])"));
}

// Another uid admitted with --allow-uid, running the same program, is not
// covered by the owner's yes: a yes is remembered for the uid that asked.
TEST_F(ApprovalTest, AYesCoversOnlyTheUidThatAsked) {
  if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv";
  constexpr uid_t kOtherUid = 4302;
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  std::vector<std::string> args = args_;
  args.insert(args.end(), {"--allow-uid", std::to_string(kOtherUid)});
  Daemon daemon(socket(), args, desktop());
  ASSERT_EQ(token("me").exit_code, 0);
  EXPECT_EQ(asked(), 1u);
  // setpriv execs kosli-cred: its parent, the requester, is this program, as above.
  const auto other = run({"setpriv", "--reuid=" + std::to_string(kOtherUid), "--regid=" + std::to_string(kOtherUid),
                          "--clear-groups", bin("kosli-cred"), "--socket", socket(), "--daemon-uid",
                          std::to_string(::geteuid()), "token", "--profile", "me"});
  EXPECT_EQ(other.exit_code, 0) << other.err << daemon.log();
  EXPECT_EQ(asked(), 2u) << "the owner's yes covered another uid";
}

// Under "always" each request has a question of its own (naming its own pid and
// command line), and past 16 open questions a request is refused: the last denial.
TEST_F(ApprovalTest, AlwaysSharesNoQuestionAndTooManyAreRefused) {
  std::ofstream(config_path()) << json{{"confirm_timeout_s", 5}, {"profiles", {{"al", {{"confirm", "always"}}}}}}.dump();
  set_mode("hang");
  Daemon daemon(socket(), args_, desktop());
  std::vector<std::future<RunResult>> waiting;
  for (int i = 0; i < 16; ++i) {
    waiting.push_back(std::async(std::launch::async, [this] { return token_by_shell("al"); }));
  }
  wait_until_asked(16);
  const auto refused = token("al");
  EXPECT_EQ(refused.exit_code, 5) << refused.err;
  EXPECT_NE(refused.err.find("too many questions are open at once"), std::string::npos) << refused.err;
  const json s = status();
  EXPECT_EQ(s["approvals"]["last_denial"]["how"], "refused") << s.dump();
  EXPECT_EQ(s["approvals"]["last_denial"]["program"], real_path("/proc/self/exe")) << s.dump();
  for (auto& w : waiting) EXPECT_EQ(w.get().exit_code, 5);
}

// OpenSSH's confirm: exit 0 is a yes only with nothing or "yes" on the output
// (a passphrase-style askpass where the user typed "no" exits 0 too).
TEST_F(ApprovalTest, AnAskpassSayingNoIsADenialWhateverItsExitStatus) {
  set_mode("say-no");
  Daemon daemon(socket(), args_, desktop());
  const auto no = token("me");
  EXPECT_EQ(no.exit_code, 5) << no.err;
  EXPECT_EQ(no.out, "");
  EXPECT_NE(no.err.find("was denied at the desktop"), std::string::npos) << no.err;
  EXPECT_EQ(status()["approvals"]["last_denial"]["how"], "askpass no");

  set_mode("say-yes");
  const auto yes = token("me");
  EXPECT_EQ(yes.exit_code, 0) << yes.err;
  EXPECT_EQ(yes.out, me_key_ + "\n");
}

// zenity and kdialog render markup: a command line must show as it is, not
// rewrite the question (zenity gets --no-markup, kdialog escaped rich text).
TEST_F(ApprovalTest, ACommandLineCannotRewriteTheQuestion) {
  for (const std::string name : {"zenity", "kdialog"}) {
    SCOPED_TRACE(name);
    TempDir bin_dir;
    const std::string fake = bin_dir.path() + "/" + name, args = bin_dir.path() + "/args";
    std::ofstream(fake) << "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done > '" << args << "'\nexit 0\n";
    ::chmod(fake.c_str(), 0755);
    Daemon daemon(socket(), args_, {{"DISPLAY", ":99"}, {"KOSLI_CRED_ASKPASS", ""}, {"PATH", bin_dir.path()}});
    const auto r = run({"/bin/sh", "-c", "\"$0\" --socket \"$1\" token --profile al; exit $?", bin("kosli-cred"),
                        socket(), "<b>Fine</b>&"});
    EXPECT_EQ(r.exit_code, 0) << r.err << daemon.log();
    const std::string said = read_file(args);
    if (name == "zenity") {
      EXPECT_NE(said.find("--no-markup\n"), std::string::npos) << said;
    } else {
      EXPECT_NE(said.find("&lt;b&gt;Fine&lt;/b&gt;&amp;"), std::string::npos) << said;
      EXPECT_EQ(said.find("<b>"), std::string::npos) << said;
    }
  }
}

TEST_F(ApprovalTest, LockForgetsTheApprovals) {
  Daemon daemon(socket(), args_, desktop());
  ASSERT_EQ(token("me").exit_code, 0);
  ASSERT_EQ(token("me").exit_code, 0);
  EXPECT_EQ(asked(), 1u);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);
  EXPECT_EQ(status()["approvals"]["approved"], json::array());
  ASSERT_EQ(token("me").exit_code, 0);
  EXPECT_EQ(asked(), 2u);
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "approval", "forgotten"), 1u);
}

}  // namespace
}  // namespace kosli::test
