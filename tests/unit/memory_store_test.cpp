#include "daemon/store/memory_store.hpp"

#include <chrono>
#include <string>
#include <variant>

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

ProfileMeta meta_named(const std::string& name, const std::string& org = "acme") {
  ProfileMeta m;
  m.name = name;
  m.org = org;
  m.host = "https://app.kosli.com";
  m.persistent = true;  // the store must override this
  return m;
}

// The value of a store result; a StoreError fails the test.
template <class T>
T value_of(StoreResult<T> result) {
  if (auto* e = std::get_if<StoreError>(&result)) {
    ADD_FAILURE() << "store error: " << e->message;
    return T{};
  }
  return std::move(std::get<T>(result));
}

class MemoryStoreTest : public ::testing::Test {
 protected:
  bool put(const std::string& name, const std::string& key, const std::string& org = "acme") {
    return value_of(store_.put(meta_named(name, org), Secret(key), deadline_));
  }
  std::optional<ProfileMeta> find(const std::string& name) {
    return value_of(store_.find(name, deadline_));
  }
  std::optional<StoredKey> load(const std::string& name) {
    return value_of(store_.load(name, deadline_));
  }
  bool erase(const std::string& name) { return value_of(store_.erase(name, deadline_)); }
  std::vector<ProfileMeta> list() { return value_of(store_.list(deadline_)); }

  MemoryStore store_;
  const Store::Deadline deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
};

TEST_F(MemoryStoreTest, DescribesItselfAsANonPersistentMemoryBackend) {
  EXPECT_EQ(store_.backend_name(), "memory");
  EXPECT_FALSE(store_.persistent());
  EXPECT_FALSE(store_.may_block());
}

TEST_F(MemoryStoreTest, StartsEmpty) {
  EXPECT_TRUE(list().empty());
  EXPECT_EQ(find("default"), std::nullopt);
  EXPECT_FALSE(load("default").has_value());
  EXPECT_FALSE(erase("default"));
}

TEST_F(MemoryStoreTest, PutReportsWhetherItReplaced) {
  EXPECT_FALSE(put("ci", "key-1"));
  EXPECT_TRUE(put("ci", "key-2", "other-org"));
  EXPECT_EQ(list().size(), 1u);
  const auto loaded = load("ci");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->key.reveal(), "key-2");
  EXPECT_EQ(loaded->meta.org, "other-org");
}

TEST_F(MemoryStoreTest, FindAndLoadReturnWhatWasPut) {
  put("ci", "key-1");
  const auto found = find("ci");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "ci");
  EXPECT_EQ(found->org, "acme");
  EXPECT_FALSE(found->persistent);

  const auto loaded = load("ci");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->key.reveal(), "key-1");
  EXPECT_EQ(loaded->meta.name, "ci");
  EXPECT_FALSE(loaded->meta.persistent);
  EXPECT_EQ(find("c"), std::nullopt);  // no prefix matching
}

TEST_F(MemoryStoreTest, KeepsItsOwnCopyOfTheKey) {
  {
    Secret key("key-1");
    store_.put(meta_named("ci"), key, deadline_);
  }
  auto first = load("ci");
  ASSERT_TRUE(first.has_value());
  first->key = Secret("changed");
  EXPECT_EQ(load("ci")->key.reveal(), "key-1");
}

TEST_F(MemoryStoreTest, ListIsSortedByName) {
  for (const char* name : {"prod", "ci", "default", "a1"}) put(name, "k");
  std::vector<std::string> names;
  for (const auto& m : list()) {
    names.push_back(m.name);
    EXPECT_FALSE(m.persistent) << m.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a1", "ci", "default", "prod"}));
}

TEST_F(MemoryStoreTest, EraseRemovesOnlyThatProfile) {
  put("ci", "k1");
  put("prod", "k2");
  EXPECT_TRUE(erase("ci"));
  EXPECT_FALSE(erase("ci"));
  EXPECT_EQ(find("ci"), std::nullopt);
  EXPECT_FALSE(load("ci").has_value());
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(list()[0].name, "prod");
}

}  // namespace
}  // namespace kosli::daemon
