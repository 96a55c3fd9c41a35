// daemon/keys/import_watch: a publish the store fails part way. What was stored
// is said to be partly taken (log, audit, status), the profiles it created are
// the file's (removed when a later publish drops them), and the file is read
// again on a timer until a publish is taken whole, with no new publish needed.
#include "daemon/keys/import_watch.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "proto/fingerprint.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/store/memory_store.hpp"

namespace kosli::daemon {
namespace {

constexpr const char* kA1 = "kosli_import_watch_test_key_a1_0123456789";
constexpr const char* kA2 = "kosli_import_watch_test_key_a2_0123456789";
constexpr const char* kB1 = "kosli_import_watch_test_key_b1_0123456789";
constexpr const char* kB2 = "kosli_import_watch_test_key_b2_0123456789";
constexpr const char* kC1 = "kosli_import_watch_test_key_c1_0123456789";

// A memory store whose put fails for one profile name while `failing` is set.
class FailingPutStore final : public Store {
 public:
  std::string failing;
  MemoryStore memory;
  std::string_view backend_name() const override { return "failing-put"; }
  bool persistent() const override { return false; }
  bool may_block() const override { return false; }
  StoreResult<std::vector<ProfileMeta>> list(Deadline d) override { return memory.list(d); }
  StoreResult<std::optional<ProfileMeta>> find(std::string_view n, Deadline d) override { return memory.find(n, d); }
  StoreResult<std::optional<StoredKey>> load(std::string_view n, Deadline d) override { return memory.load(n, d); }
  StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline d) override {
    if (meta.name == failing) return StoreError{StoreError::Kind::unavailable, "the keyring went away"};
    return memory.put(meta, key, d);
  }
  StoreResult<bool> erase(std::string_view n, Deadline d) override { return memory.erase(n, d); }
};

class ImportWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/kosli-import-watch-test.XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    for (const char* name : {"/profiles.json", "/profiles.json.tmp", "/audit.log"}) std::remove((dir_ + name).c_str());
    ::rmdir(dir_.c_str());
  }

  std::string file() const { return dir_ + "/profiles.json"; }

  // Publishes a list of (name, key) by a rename over the file.
  void publish(const std::vector<std::pair<std::string, std::string>>& profiles) {
    std::string text = "[";
    for (const auto& [name, key] : profiles) {
      text += std::string(text.size() > 1 ? "," : "") + R"({"name":")" + name + R"(","org":"acme","api_key":")" +
              key + "\"}";
    }
    text += "]";
    {
      std::ofstream out(file() + ".tmp", std::ios::trunc);
      out << text;
    }
    ASSERT_EQ(::chmod((file() + ".tmp").c_str(), 0600), 0);
    ASSERT_EQ(::rename((file() + ".tmp").c_str(), file().c_str()), 0);
  }

  // Waits up to `ms` for the watch's descriptor, then lets it read.
  static bool handle(ImportWatch& watch, int fd, int ms) {
    struct pollfd p {fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    watch.on_readable();
    return true;
  }

  // The fingerprint of the key `name` holds, "" for none.
  std::string holds(const std::string& name) {
    auto found = store_.find(name, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    const auto& meta = std::get<std::optional<ProfileMeta>>(found);
    return meta ? meta->fingerprint : "";
  }

  std::string audit_text() const {
    std::ifstream in(dir_ + "/audit.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_;
  FailingPutStore store_;
};

TEST_F(ImportWatchTest, APublishTheStoreFailsPartWayIsSaidPartlyTakenAndIsReadAgainUntilWhole) {
  publish({{"a", kA1}, {"b", kB1}});
  AuditLog audit(dir_ + "/audit.log");
  ImportWatch watch(ImportSource{file(), std::nullopt, true}, audit);
  ASSERT_EQ(watch.import_at_start(store_), std::nullopt);
  StoreWorker worker(store_);
  TokenCache cache(std::chrono::seconds(60));
  watch.attach(worker, cache, nullptr);
  auto opened = watch.open_watch();
  ASSERT_TRUE(std::holds_alternative<int>(opened)) << std::get<std::string>(opened);
  const int fd = std::get<int>(opened);

  // a and c are stored, then b fails: partly taken, not "kept".
  store_.failing = "b";
  publish({{"a", kA2}, {"c", kC1}, {"b", kB2}});
  ASSERT_TRUE(handle(watch, fd, 2000));
  EXPECT_EQ(holds("a"), fingerprint(Secret(kA2)));
  EXPECT_EQ(holds("c"), fingerprint(Secret(kC1)));
  EXPECT_EQ(holds("b"), fingerprint(Secret(kB1)));
  HealthAnswer health;
  watch.describe(health);
  ASSERT_TRUE(health.import);
  EXPECT_NE(health.import->last_error.find("partly taken ('a', 'c' stored from it"), std::string::npos)
      << health.import->last_error;
  EXPECT_NE(audit_text().find("partly taken"), std::string::npos) << audit_text();
  EXPECT_NE(watch.exposition().find("\nkosli_credd_import_ok 0\n"), std::string::npos) << watch.exposition();

  // With no new publish, the timer reads the file again and takes it whole.
  store_.failing.clear();
  ASSERT_TRUE(handle(watch, fd, 10000)) << "no retry";
  EXPECT_EQ(holds("b"), fingerprint(Secret(kB2)));
  health = {};
  watch.describe(health);
  EXPECT_EQ(health.import->last_error, "");

  // c, created by the publish cut short, is the file's: dropped, it is removed.
  store_.failing = "a";
  publish({{"a", kA1}});
  ASSERT_TRUE(handle(watch, fd, 2000));
  EXPECT_EQ(holds("a"), fingerprint(Secret(kA2))) << "a's put failed: nothing taken";
  store_.failing.clear();
  ASSERT_TRUE(handle(watch, fd, 10000)) << "no retry";
  EXPECT_EQ(holds("a"), fingerprint(Secret(kA1)));
  EXPECT_EQ(holds("b"), "");
  EXPECT_EQ(holds("c"), "");
  EXPECT_EQ(audit_text().find(kA1), std::string::npos) << "no key in the audit log: " << audit_text();
}

TEST_F(ImportWatchTest, ProfilesCreatedByAPublishCutShortAreRemovedWhenALaterOneDropsThem) {
  publish({{"a", kA1}});
  AuditLog audit(dir_ + "/audit.log");
  ImportWatch watch(ImportSource{file(), std::nullopt, true}, audit);
  ASSERT_EQ(watch.import_at_start(store_), std::nullopt);
  StoreWorker worker(store_);
  TokenCache cache(std::chrono::seconds(60));
  watch.attach(worker, cache, nullptr);
  const int fd = std::get<int>(watch.open_watch());

  store_.failing = "b";
  publish({{"a", kA1}, {"c", kC1}, {"b", kB1}});
  ASSERT_TRUE(handle(watch, fd, 2000));
  ASSERT_EQ(holds("c"), fingerprint(Secret(kC1)));
  // The next publish drops c before any retry: c was the file's, so it goes.
  publish({{"a", kA1}});
  ASSERT_TRUE(handle(watch, fd, 2000));
  EXPECT_EQ(holds("c"), "");
  EXPECT_EQ(holds("a"), fingerprint(Secret(kA1)));
}

}  // namespace
}  // namespace kosli::daemon
