// A Secret zeroes its pages before it gives them back: munmap is replaced here
// (the test executable's own definition wins over libc's for the code linked
// into it) so the pages of a Secret can be scanned for its key at the moment
// they are unmapped. Part of kosli_wipe_tests, which also replaces operator new
// and delete; this file touches only munmap.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "proto/secret.hpp"

namespace {

// The pages to scan when they are unmapped (only those: others may be unreadable).
std::atomic<const void*> g_pages{nullptr};
std::atomic<const std::string*> g_pattern{nullptr};
std::atomic<int> g_unmapped{0};     // how often the watched pages were unmapped
std::atomic<int> g_still_held{0};   // ... holding the pattern

}  // namespace

extern "C" int munmap(void* addr, size_t len) noexcept {
  if (addr != nullptr && addr == g_pages.load()) {
    g_unmapped.fetch_add(1);
    if (const std::string* pattern = g_pattern.load();
        pattern != nullptr && ::memmem(addr, len, pattern->data(), pattern->size()) != nullptr) {
      g_still_held.fetch_add(1);
    }
  }
  return static_cast<int>(::syscall(SYS_munmap, addr, len));
}

namespace kosli {
namespace {

std::string random_key() {
  std::random_device random;
  std::string key = "kosli_";
  for (int i = 0; i < 40; ++i) key.push_back("0123456789abcdef"[random() % 16]);
  return key;
}

// Watches the pages of `secret`, whose bytes must be `key`, until they are unmapped.
class UnmapWatch {
 public:
  UnmapWatch(const Secret& secret, const std::string& key) : pattern_(key.substr(0, 16)) {
    EXPECT_TRUE(secret.equals(key));
    g_unmapped = 0;
    g_still_held = 0;
    g_pattern = &pattern_;
    g_pages = secret.reveal().data();
  }
  ~UnmapWatch() {
    g_pages = nullptr;
    g_pattern = nullptr;
  }
  int unmapped() const { return g_unmapped.load(); }
  int still_held() const { return g_still_held.load(); }

 private:
  const std::string pattern_;
};

TEST(SecretWipeTest, ADestroyedSecretLeavesNoKeyInThePagesItGivesBack) {
  const std::string key = random_key();
  auto secret = std::make_unique<Secret>(key);
  UnmapWatch watch(*secret, key);
  secret.reset();
  EXPECT_EQ(watch.unmapped(), 1) << "the Secret's pages were not given back (or not with munmap)";
  EXPECT_EQ(watch.still_held(), 0) << "the pages still held the key when they were unmapped";
}

TEST(SecretWipeTest, ASecretAssignedOverLeavesNoOldKeyInThePagesItGivesBack) {
  const std::string old_key = random_key(), new_key = random_key();
  Secret secret(old_key);
  UnmapWatch watch(secret, old_key);
  secret = Secret(new_key);
  EXPECT_EQ(watch.unmapped(), 1);
  EXPECT_EQ(watch.still_held(), 0) << "the old key's pages still held it when they were unmapped";
  EXPECT_TRUE(secret.equals(new_key));
}

TEST(SecretWipeTest, AMovedSecretIsWipedOnceByItsNewOwner) {
  const std::string key = random_key();
  std::optional<Secret> moved;
  {
    Secret original(key);
    UnmapWatch watch(original, key);
    moved.emplace(std::move(original));
    EXPECT_TRUE(original.empty());
    EXPECT_EQ(watch.unmapped(), 0) << "moving gave the pages back";
  }
  UnmapWatch watch(*moved, key);
  moved.reset();
  EXPECT_EQ(watch.unmapped(), 1);
  EXPECT_EQ(watch.still_held(), 0);
}

}  // namespace
}  // namespace kosli
