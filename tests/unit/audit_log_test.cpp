#include "daemon/ops/audit_log.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kosli::daemon {
namespace {

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/kosli-audit-test.XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    for (const auto& name : {"/audit.log", "/audit.log.1", "/elsewhere"}) std::remove((dir_ + name).c_str());
    ::rmdir(dir_.c_str());
  }

  std::string path() const { return dir_ + "/audit.log"; }
  std::size_t lines(const std::string& file = {}) const {
    std::ifstream in(file.empty() ? path() : file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      EXPECT_TRUE(nlohmann::json::parse(line).is_object()) << line;
      ++n;
    }
    return n;
  }

  static mode_t mode_of(const std::string& file) {
    struct stat st {};
    return ::stat(file.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }
  static void write_file(const std::string& file, const std::string& text, mode_t mode) {
    std::ofstream(file) << text;
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
  }

  std::string dir_;
  const Peer peer_{4321, 1000, 1000, "/usr/bin/kosli", "/usr/bin/kosli", 4321};
};

// The line is put together by hand around nlohmann's strings: it must be what
// an nlohmann::json object of the same fields dumps, for awkward values too.
TEST(AuditLogFormatTest, IsTheJsonObjectOfTheRecordOnOneLine) {
  const std::string bad_utf8 = "caf\xc3(";
  struct Case {
    AuditRecord record;
    Peer peer;
  };
  const std::vector<Case> cases = {
      {{"token", "default", "issued", "cached"},
       {1234, 1000, 1000, "/usr/bin/kosli-cred", "/bin/bash", 99, RequesterSource::client_parent}},
      {{"token", "default", "issued", "cached"},
       {1234, 1000, 1000, "/usr/bin/kosli-cred", "/usr/bin/kosli", 1234, RequesterSource::client_exec}},
      {{"connection", "", "refused", "uid not allowed"}, {7, 1001, 1001, "", "", 0}},
      {{"store", "ci", "error", "quote \" backslash \\ newline \n tab \t bell \a"},
       {42, 0, 0, "/opt/odd dir/\"x\"", "/tmp/" + bad_utf8, 41}},
      {{"verify", "us", "ok", ""}, {5, 1000, 1000, "/usr/bin/kosli-cred", "", 0}},
  };
  for (const auto& [r, peer] : cases) {
    nlohmann::json j{{"time", "2026-11-26T20:30:00.123Z"},
                     {"event", r.event},
                     {"result", r.result},
                     {"pid", peer.pid},
                     {"uid", peer.uid},
                     {"exe", peer.exe.empty() ? nlohmann::json(nullptr) : nlohmann::json(peer.exe)}};
    if (!r.profile.empty()) j["profile"] = r.profile;
    if (!peer.requester.empty()) {
      j["requester"] = peer.requester;
      j["requester_pid"] = peer.requester_pid;
      j["requester_by"] = peer.requester_source == RequesterSource::client_parent ? "parent_of_kosli_cred"
                          : peer.requester_source == RequesterSource::client_exec ? "kosli_cred_exec"
                                                                                   : "peer";
    }
    if (!r.detail.empty()) j["detail"] = r.detail;
    EXPECT_EQ(AuditLog::format(r, peer, "2026-11-26T20:30:00.123Z"),
              j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
}

TEST_F(AuditLogTest, WritesEachRecordAtOnceUntilTheServerTakesWritesOver) {
  AuditLog audit(path());
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  EXPECT_EQ(lines(), 1u);
}

TEST_F(AuditLogTest, DeferredRecordsGoOutTogetherOnFlushAndOneFlushIsAskedForPerBatch) {
  AuditLog audit(path());
  int scheduled = 0;
  audit.defer_writes([&] { ++scheduled; });
  for (int i = 0; i < 3; ++i) audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  EXPECT_EQ(scheduled, 1);
  EXPECT_EQ(lines(), 0u);
  audit.flush();
  EXPECT_EQ(lines(), 3u);

  audit.record(AuditRecord{"lock", {}, "ok", {}}, peer_);
  EXPECT_EQ(scheduled, 2);  // a new batch
  audit.write_through();    // as the daemon does when it stops serving
  EXPECT_EQ(lines(), 4u);
  audit.record(AuditRecord{"lock", {}, "ok", {}}, peer_);
  EXPECT_EQ(lines(), 5u);
  EXPECT_EQ(scheduled, 2);
}

TEST_F(AuditLogTest, WhenWrittenWaitsForTheFlushThatWritesWhatCameBefore) {
  AuditLog audit(path());
  std::vector<std::size_t> seen;  // lines on disk when each continuation ran
  audit.when_written([&] { seen.push_back(lines()); });
  EXPECT_EQ(seen, (std::vector<std::size_t>{0}));  // nothing waits: at once

  audit.defer_writes([] {});
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  audit.when_written([&] { seen.push_back(lines()); });
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  audit.when_written([&] { seen.push_back(lines()); });
  EXPECT_EQ(seen.size(), 1u);  // both wait for the write
  audit.flush();
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 2, 2}));  // one write for both

  audit.record(AuditRecord{"lock", {}, "ok", {}}, peer_);
  audit.when_written([&] { seen.push_back(lines()); });
  audit.write_through();  // as the daemon does when it stops serving
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 2, 2, 3}));
}

TEST_F(AuditLogTest, ABurstLargerThanTheBufferIsWrittenWithoutWaitingForAFlush) {
  AuditLog audit(path());
  audit.defer_writes([] {});
  const std::string detail(1000, 'd');
  const std::size_t records = 2 * AuditLog::kMaxPendingBytes / detail.size();
  for (std::size_t i = 0; i < records; ++i) audit.record(AuditRecord{"token", "ci", "issued", detail}, peer_);
  const std::size_t written = lines();
  EXPECT_GT(written, 0u);
  EXPECT_LT(written, records);
  audit.flush();
  EXPECT_EQ(lines(), records);  // nothing dropped
}

TEST_F(AuditLogTest, RecordsWaitingWhenTheLogIsDestroyedAreWritten) {
  {
    AuditLog audit(path());
    audit.defer_writes([] {});
    audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  }
  EXPECT_EQ(lines(), 1u);
}

TEST_F(AuditLogTest, APreExistingLogOpenToOthersIsMadePrivateAndKeepsItsRecords) {
  write_file(path(), R"({"event":"token"})" "\n", 0644);
  AuditLog audit(path());
  EXPECT_EQ(mode_of(path()), 0600u);
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  EXPECT_EQ(lines(), 2u);
  EXPECT_TRUE(audit.health().ok);
}

TEST_F(AuditLogTest, ASymbolicLinkIsRefusedWithAdviceAndItsTargetIsLeftAlone) {
  const std::string elsewhere = dir_ + "/elsewhere";
  write_file(elsewhere, "", 0644);
  ASSERT_EQ(::symlink(elsewhere.c_str(), path().c_str()), 0);
  AuditLog audit(path());
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  const auto health = audit.health();
  EXPECT_FALSE(health.ok);
  EXPECT_EQ(health.kind, "file");
  EXPECT_NE(health.error.find("symbolic link"), std::string::npos) << health.error;
  EXPECT_NE(health.error.find("--audit-log"), std::string::npos) << health.error;
  EXPECT_NE(health.failing_since, 0);
  EXPECT_EQ(health.records_failed, 1u);
  EXPECT_EQ(lines(elsewhere), 0u);
  EXPECT_EQ(mode_of(elsewhere), 0644u);

  // Fixed, then reopened (SIGHUP): written again.
  ASSERT_EQ(std::remove(path().c_str()), 0);
  audit.reopen();
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  EXPECT_TRUE(audit.health().ok);
  EXPECT_EQ(audit.health().records_failed, 1u);
  EXPECT_EQ(lines(), 1u);
  EXPECT_EQ(mode_of(path()), 0600u);
}

TEST_F(AuditLogTest, AFileOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  write_file(path(), "", 0600);
  ASSERT_EQ(::chown(path().c_str(), 65534, 65534), 0);
  AuditLog audit(path());
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  const auto health = audit.health();
  EXPECT_FALSE(health.ok);
  EXPECT_NE(health.error.find("belongs to uid 65534"), std::string::npos) << health.error;
  EXPECT_EQ(lines(), 0u);
}

// A user who sends the records nowhere says so with /dev/null; a FIFO (which
// could hang the daemon) or a directory is still refused.
TEST_F(AuditLogTest, ADeviceSuchAsDevNullIsTakenAsChosenAndAFifoIsNot) {
  AuditLog devnull("/dev/null");
  devnull.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  devnull.flush();
  EXPECT_TRUE(devnull.health().ok) << devnull.health().error;
  EXPECT_EQ(devnull.health().records_failed, 0u);
  EXPECT_EQ(mode_of("/dev/null"), 0666u);  // left as it is

  ASSERT_EQ(::mkfifo(path().c_str(), 0600), 0);
  AuditLog fifo(path());
  EXPECT_FALSE(fifo.health().ok);  // no reader: the open fails (ENXIO) rather than wait for one
}

TEST_F(AuditLogTest, ReopenAfterTheFileWasMovedWritesANewPrivateFileAtThePath) {
  AuditLog audit(path());
  audit.defer_writes([] {});
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  ASSERT_EQ(std::rename(path().c_str(), (dir_ + "/audit.log.1").c_str()), 0);
  audit.reopen();  // the record that waits goes to the file it was made for
  audit.record(AuditRecord{"lock", {}, "ok", {}}, peer_);
  audit.flush();
  EXPECT_EQ(lines(dir_ + "/audit.log.1"), 1u);
  EXPECT_EQ(lines(), 1u);
  EXPECT_EQ(mode_of(path()), 0600u);
}

// A file size limit stands in for a full disk: writes stop part-way through a
// batch. What was written of it is cut off again; every line stays whole, and
// the log recovers by itself on the next write that fits.
TEST_F(AuditLogTest, AWriteThatDoesNotFitLeavesNoTornLineAndTheLogRecoversByItself) {
  struct Limit {
    rlimit saved{};
    sighandler_t xfsz = ::signal(SIGXFSZ, SIG_IGN);  // as kosli-credd does
    explicit Limit(rlim_t bytes) {
      ::getrlimit(RLIMIT_FSIZE, &saved);
      const rlimit small{bytes, saved.rlim_max};
      ::setrlimit(RLIMIT_FSIZE, &small);
    }
    ~Limit() {
      ::setrlimit(RLIMIT_FSIZE, &saved);
      ::signal(SIGXFSZ, xfsz);
    }
  };
  constexpr rlim_t kLimit = 1000;
  AuditLog audit(path());
  std::size_t written = 0;
  {
    Limit limit(kLimit);
    for (int i = 0; i < 20; ++i) {
      audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
      if (audit.health().ok) ++written;
    }
    const auto health = audit.health();
    EXPECT_FALSE(health.ok);
    EXPECT_EQ(health.records_failed, 20u - written);
    EXPECT_NE(health.error.find("too large"), std::string::npos) << health.error;  // EFBIG
  }
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_GT(written, 0u);
  EXPECT_LT(st.st_size, static_cast<off_t>(kLimit));  // the torn record was cut off
  audit.record(AuditRecord{"token", "ci", "issued", "cached"}, peer_);
  EXPECT_TRUE(audit.health().ok);
  EXPECT_EQ(lines(), written + 1);  // each line parses as JSON (lines() checks)
}

TEST_F(AuditLogTest, TheJournalAndStderrReportTheirKind) {
  EXPECT_EQ(AuditLog("journal").health().kind, "journal");
  EXPECT_EQ(AuditLog("-").health().kind, "stderr");
  EXPECT_TRUE(AuditLog("-").health().ok);
}

}  // namespace
}  // namespace kosli::daemon
