#include "daemon/store/metered_store.hpp"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "daemon/ops/metrics.hpp"
#include "daemon/store/memory_store.hpp"

namespace kosli::daemon {
namespace {

// A keyring that answers every call with the same error.
class FailingStore final : public Store {
 public:
  explicit FailingStore(StoreError::Kind kind) : error_{kind, "the keyring is not there"} {}
  std::string_view backend_name() const override { return "failing"; }
  bool persistent() const override { return true; }
  bool may_block() const override { return false; }
  StoreResult<std::vector<ProfileMeta>> list(Deadline) override { return error_; }
  StoreResult<std::optional<ProfileMeta>> find(std::string_view, Deadline) override { return error_; }
  StoreResult<std::optional<StoredKey>> load(std::string_view, Deadline) override { return error_; }
  StoreResult<bool> put(const ProfileMeta&, const Secret&, Deadline) override { return error_; }
  StoreResult<bool> erase(std::string_view, Deadline) override { return error_; }

 private:
  StoreError error_;
};

std::string errors_line(const Metrics& metrics, const std::string& kind) {
  const std::string exposition = metrics.exposition();
  const std::string prefix = "kosli_credd_store_errors_total{kind=\"" + kind + "\"} ";
  const auto at = exposition.find(prefix);
  return at == std::string::npos ? "(missing)" : exposition.substr(at, exposition.find('\n', at) - at);
}

constexpr auto kNoDeadline = std::chrono::steady_clock::time_point::max();

TEST(MeteredStoreTest, EveryFailedCallIsCountedByKind) {
  Metrics metrics;
  FailingStore locked_keyring(StoreError::Kind::locked);
  MeteredStore store(locked_keyring, metrics);
  ProfileMeta meta;
  meta.name = "ci";
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.list(kNoDeadline)));
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.find("ci", kNoDeadline)));
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.load("ci", kNoDeadline)));
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.put(meta, Secret("key"), kNoDeadline)));
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.erase("ci", kNoDeadline)));
  // The default record_verification loads through the keyring it wraps: one failed call.
  EXPECT_TRUE(std::holds_alternative<StoreError>(store.record_verification("ci", "fp", 0, "valid", kNoDeadline)));

  EXPECT_EQ(errors_line(metrics, "locked"), "kosli_credd_store_errors_total{kind=\"locked\"} 6");
  EXPECT_EQ(errors_line(metrics, "unavailable"), "kosli_credd_store_errors_total{kind=\"unavailable\"} 0");
}

TEST(MeteredStoreTest, CallsThatSucceedAreNotCountedAndPassThrough) {
  Metrics metrics;
  MemoryStore memory;
  MeteredStore store(memory, metrics);
  ProfileMeta meta;
  meta.name = "ci";
  meta.org = "acme";
  meta.host = "https://app.kosli.com";
  ASSERT_TRUE(std::holds_alternative<bool>(store.put(meta, Secret("key-123"), kNoDeadline)));
  const auto loaded = store.load("ci", kNoDeadline);
  ASSERT_TRUE(std::holds_alternative<std::optional<StoredKey>>(loaded));
  const auto& key = std::get<std::optional<StoredKey>>(loaded);
  ASSERT_TRUE(key.has_value());
  EXPECT_TRUE(key->key.equals("key-123"));
  EXPECT_EQ(store.backend_name(), memory.backend_name());
  for (const auto* kind : {"unavailable", "locked", "internal"}) {
    EXPECT_EQ(errors_line(metrics, kind), std::string("kosli_credd_store_errors_total{kind=\"") + kind + "\"} 0");
  }
}

}  // namespace
}  // namespace kosli::daemon
