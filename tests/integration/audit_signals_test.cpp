// The audit log as an operator sees it (logrotate and SIGHUP, a log that cannot
// be written in status, health and metrics, a full disk, a pre-existing log
// open to others) and the signals a daemon gets by accident: none of them may
// cost it its keys or leave its socket behind.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"

namespace kosli::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Long enough for any single step here on a loaded 2-core machine.
constexpr std::chrono::seconds kStepDeadline{10};

class AuditSignalsTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string audit_path() const { return dir_.path() + "/audit.log"; }

  // A memory daemon serving `key_` as profile 'default', auditing to `audit`.
  std::unique_ptr<Daemon> start(const std::string& audit) {
    return std::make_unique<Daemon>(socket(), std::vector<std::string>{"--backend", "memory", "--import-env",
                                                                       "--audit-log", audit},
                                    std::vector<std::pair<std::string, std::string>>{
                                        {"KOSLI_API_TOKEN", key_}, {"KOSLI_ORG", "acme"}});
  }

  // kosli-cred, never starting a daemon of its own when the one under test is gone.
  RunResult client(std::vector<std::string> args) {
    return cred(socket(), std::move(args), RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
  }
  RunResult token() { return client({"token"}); }
  json health() { return json::parse(client({"status", "--json"}).out); }

  std::string metrics() {
    const auto answer = exchange(socket(), http_request("GET", "/v1/metrics"));
    return answer ? answer->body : "";
  }

  // Waits for the daemon's own log to hold `line` `times` times: how a test
  // knows a signal was handled (the daemon says so).
  static bool wait_for_log(const Daemon& daemon, const std::string& line, std::size_t times = 1) {
    const auto deadline = std::chrono::steady_clock::now() + kStepDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string log = daemon.log();
      std::size_t seen = 0;
      for (auto at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) ++seen;
      if (seen >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for the line, not a guess
    }
    return false;
  }

  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }

  TempDir dir_;
  const std::string key_ = unique_key();
};

TEST_F(AuditSignalsTest, SighupAfterLogrotateMovedTheLogWritesANewPrivateFileAtThePath) {
  auto daemon = start(audit_path());
  EXPECT_EQ(token().out, key_ + "\n");
  ASSERT_EQ(count_records(audit_records(daemon->audit_log(audit_path())), "token", "issued"), 1u);

  const std::string rotated = audit_path() + ".1";
  ASSERT_EQ(::rename(audit_path().c_str(), rotated.c_str()), 0);
  ASSERT_EQ(::kill(daemon->pid(), SIGHUP), 0);
  ASSERT_TRUE(wait_for_log(*daemon, "reopened audit log " + audit_path())) << daemon->log();
  EXPECT_NE(daemon->log().find("the configuration is not reread"), std::string::npos) << daemon->log();

  EXPECT_EQ(token().out, key_ + "\n");
  const auto fresh = audit_records(daemon->audit_log(audit_path()));
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0]["event"], "token");
  EXPECT_EQ(fresh[0]["result"], "issued");
  EXPECT_EQ(mode_of(audit_path()), 0600u);
  // The old file keeps what it had: the import and the first token.
  EXPECT_EQ(count_records(audit_records(read_file(rotated)), "token", "issued"), 1u);
  EXPECT_EQ(daemon->stop(), 0);
}

TEST_F(AuditSignalsTest, AnAuditLogThatCannotBeWrittenShowsInStatusHealthAndMetricsUntilFixedAndReopened) {
  // A symbolic link in its place is refused: the daemon serves on, failing loudly.
  const std::string elsewhere = dir_.path() + "/elsewhere";
  std::ofstream(elsewhere).close();
  ASSERT_EQ(::symlink(elsewhere.c_str(), audit_path().c_str()), 0);
  auto daemon = start(audit_path());
  EXPECT_EQ(token().out, key_ + "\n");

  const auto status = client({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("audit log: " + audit_path() + " is NOT BEING WRITTEN since "), std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("symbolic link"), std::string::npos) << status.out;
  EXPECT_NE(status.err.find("the audit log is not being written"), std::string::npos) << status.err;
  const auto failing = health()["audit_log"];
  EXPECT_EQ(failing["kind"], "file");
  EXPECT_EQ(failing["path"], audit_path());
  EXPECT_EQ(failing["ok"], false);
  EXPECT_TRUE(failing["error"].is_string()) << failing;
  EXPECT_TRUE(failing["failing_since"].is_string()) << failing;
  const std::string failing_metrics = metrics();
  EXPECT_NE(failing_metrics.find("\nkosli_credd_audit_log_ok 0\n"), std::string::npos) << failing_metrics;
  EXPECT_EQ(failing_metrics.find("\nkosli_credd_audit_records_failed_total 0\n"), std::string::npos)
      << failing_metrics;
  EXPECT_EQ(read_file(elsewhere), "");

  // Fixed, then reopened.
  ASSERT_EQ(::unlink(audit_path().c_str()), 0);
  ASSERT_EQ(::kill(daemon->pid(), SIGHUP), 0);
  ASSERT_TRUE(wait_for_log(*daemon, "reopened audit log " + audit_path())) << daemon->log();
  EXPECT_EQ(token().out, key_ + "\n");
  const auto fixed = client({"status"});
  EXPECT_EQ(fixed.exit_code, 0);
  EXPECT_NE(fixed.out.find("audit log: " + audit_path() + "\n"), std::string::npos) << fixed.out;
  EXPECT_EQ(fixed.err, "");
  const auto ok = health()["audit_log"];
  EXPECT_EQ(ok["ok"], true);
  EXPECT_FALSE(ok.contains("error")) << ok;
  EXPECT_NE(metrics().find("\nkosli_credd_audit_log_ok 1\n"), std::string::npos);
  EXPECT_EQ(count_records(audit_records(daemon->audit_log(audit_path())), "token", "issued"), 1u);
  EXPECT_EQ(mode_of(audit_path()), 0600u);
}

// status escapes what it relays once: a backslash in the path shows as two
// backslashes and a newline as \x0a (escaped twice, a backslash showed as four).
TEST_F(AuditSignalsTest, StatusShowsTheAuditLogsPathEscapedOnce) {
  const std::string odd = dir_.path() + "/back\\slash\nline";
  ASSERT_EQ(::mkdir(odd.c_str(), 0700), 0);
  auto daemon = start(odd + "/audit.log");
  const auto status = client({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("audit log: " + dir_.path() + "/back\\\\slash\\x0aline/audit.log\n"), std::string::npos)
      << status.out;
}

// Health relays text from outside (here a path with a byte that is not
// UTF-8): it is answered, with U+FFFD in its place, and the daemon goes on.
TEST_F(AuditSignalsTest, AnAuditLogPathThatIsNotUtf8DoesNotEndTheDaemon) {
  const std::string odd = dir_.path() + "/latin1-\xe9";
  ASSERT_EQ(::mkdir(odd.c_str(), 0700), 0);
  auto daemon = start(odd + "/audit.log");
  const auto status = client({"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err << daemon->log();
  const auto health = json::parse(status.out);
  EXPECT_EQ(health["audit_log"]["path"], dir_.path() + "/latin1-\xef\xbf\xbd/audit.log");
  EXPECT_EQ(token().exit_code, 0);
  EXPECT_FALSE(daemon->wait_exit(std::chrono::milliseconds(0)).has_value()) << daemon->log();
}

TEST_F(AuditSignalsTest, APreExistingLogOpenToOthersIsMadePrivateAndWrittenTo) {
  std::ofstream(audit_path()) << R"({"event":"lock","result":"ok"})" << "\n";
  ASSERT_EQ(::chmod(audit_path().c_str(), 0644), 0);
  auto daemon = start(audit_path());
  EXPECT_EQ(mode_of(audit_path()), 0600u);
  EXPECT_NE(daemon->log().find("made it 0600"), std::string::npos) << daemon->log();
  EXPECT_EQ(token().out, key_ + "\n");
  const auto records = audit_records(daemon->audit_log(audit_path()));
  EXPECT_EQ(count_records(records, "lock", "ok"), 1u);
  EXPECT_EQ(count_records(records, "token", "issued"), 1u);
}

// A tiny tmpfs fills up: a batch that does not fit is cut off again, so every
// line stays a whole record, and writing resumes by itself once there is room.
TEST_F(AuditSignalsTest, AFullDiskLeavesNoTornLineAndTheLogRecoversByItself) {
  const std::string small = dir_.path() + "/small";
  ASSERT_EQ(::mkdir(small.c_str(), 0700), 0);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs (needs root): " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  const std::string audit = small + "/audit.log";
  {
    auto daemon = start(audit);
    EXPECT_EQ(token().out, key_ + "\n");  // the log has a page of its own now
    const std::string filler = small + "/filler";
    {
      std::ofstream out(filler, std::ios::binary);
      const std::string block(1024, 'x');
      for (int i = 0; i < 128 && out; ++i) out.write(block.data(), block.size());
    }
    // A record is some 150 bytes: its page is full after a few dozen.
    for (int i = 0; i < 60; ++i) EXPECT_EQ(token().out, key_ + "\n") << "tokens are served while the disk is full";
    const auto full = health()["audit_log"];
    EXPECT_EQ(full["ok"], false) << full;
    EXPECT_NE(full.value("error", "").find("No space"), std::string::npos) << full;
    EXPECT_EQ(metrics().find("\nkosli_credd_audit_records_failed_total 0\n"), std::string::npos);

    ASSERT_EQ(::unlink(filler.c_str()), 0);
    EXPECT_EQ(token().out, key_ + "\n");
    EXPECT_EQ(health()["audit_log"]["ok"], true);
    EXPECT_NE(daemon->log().find("is written again"), std::string::npos) << daemon->log();
    const std::string text = daemon->audit_log(audit);
    std::vector<json> records;
    ASSERT_NO_THROW(records = audit_records(text)) << "a torn line:\n" << text;
    EXPECT_LT(records.size(), 62u);
    ASSERT_FALSE(records.empty());
    EXPECT_EQ(records.back()["event"], "token");
    EXPECT_EQ(daemon->stop(), 0);
  }
}

// Each signal a daemon may be sent by accident leaves it serving, with the key
// only its memory held; SIGTERM then stops it cleanly.
TEST_F(AuditSignalsTest, SighupUsr1Usr2AlrmAndXfszLeaveTheDaemonServingItsKeys) {
  for (const int signo : {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGXFSZ, SIGPIPE}) {
    auto daemon = start(audit_path());
    ASSERT_EQ(::kill(daemon->pid(), signo), 0);
    ASSERT_EQ(::kill(daemon->pid(), signo), 0);  // twice: a handler that runs once is not enough
    const auto served = token();
    EXPECT_EQ(served.exit_code, 0) << "after signal " << signo << ": " << served.err << daemon->log();
    EXPECT_EQ(served.out, key_ + "\n") << "after signal " << signo;
    EXPECT_EQ(daemon->stop(), 0) << "signal " << signo;
    EXPECT_FALSE(fs::exists(socket())) << "signal " << signo;
  }
}

TEST_F(AuditSignalsTest, SigtermAndSigintEachRemoveTheSocket) {
  for (const int signo : {SIGTERM, SIGINT}) {
    auto daemon = start(audit_path());
    ASSERT_TRUE(fs::exists(socket()));
    ASSERT_EQ(::kill(daemon->pid(), signo), 0);
    EXPECT_EQ(daemon->wait_exit(kStepDeadline), 0) << "signal " << signo;
    EXPECT_FALSE(fs::exists(socket())) << "signal " << signo << " left the socket behind";
  }
}

TEST_F(AuditSignalsTest, TheServiceReloadsBySendingSighup) {
  EXPECT_NE(read_file(std::string(KOSLI_TEST_SOURCE_DIR) + "/systemd/kosli-credd.service.in")
                .find("\nExecReload=/bin/kill -HUP $MAINPID\n"),
            std::string::npos);
}

}  // namespace
}  // namespace kosli::test
