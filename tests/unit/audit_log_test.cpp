#include "daemon/audit_log.hpp"

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
    std::remove(path().c_str());
    ::rmdir(dir_.c_str());
  }

  std::string path() const { return dir_ + "/audit.log"; }
  std::size_t lines() const {
    std::ifstream in(path());
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      EXPECT_TRUE(nlohmann::json::parse(line).is_object()) << line;
      ++n;
    }
    return n;
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

}  // namespace
}  // namespace kosli::daemon
