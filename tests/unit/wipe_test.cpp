// Parsing what holds a key leaves no decoded copy of it in freed memory: every
// heap block the code under test frees is scanned for the key before it is
// given back. (Its own executable: it replaces the global operator new and
// delete.)
//
// The key is sent with every character escaped (\u00XX). nlohmann's lexer
// keeps a raw copy of each token, for its error messages, in a buffer no
// allocator of ours reaches; escaped, that copy never holds the key as it is,
// so what these tests find is what SecretJson is there to wipe: the strings
// the parser decodes, and what the code does with them.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <variant>

#include <gtest/gtest.h>

#include "daemon/keys/import.hpp"
#include "proto/profile.hpp"

namespace {

// What the replaced operator delete looks for, and how often it found it.
std::atomic<const std::string*> g_watched{nullptr};
std::atomic<int> g_found{0};

// Each block carries its size in a header, so delete knows what to scan.
constexpr std::size_t kHeader = alignof(std::max_align_t);

void* allocate(std::size_t size) {
  auto* block = static_cast<unsigned char*>(std::malloc(size + kHeader));
  if (block == nullptr) throw std::bad_alloc();
  std::memcpy(block, &size, sizeof size);
  return block + kHeader;
}

// A breakpoint here shows who freed a block that held the key.
[[gnu::noinline]] void found_key_in_freed_block() { g_found.fetch_add(1); }

void release(void* p) noexcept {
  if (p == nullptr) return;
  auto* block = static_cast<unsigned char*>(p) - kHeader;
  std::size_t size = 0;
  std::memcpy(&size, block, sizeof size);
  if (const std::string* watched = g_watched.load(); watched != nullptr &&
      ::memmem(p, size, watched->data(), watched->size()) != nullptr) {
    found_key_in_freed_block();
  }
  std::free(block);
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }

namespace kosli {
namespace {

// `key` as a JSON string with every character escaped: "\u006b\u006f…".
std::string escaped(const std::string& key) {
  std::string out = "\"";
  char hex[8];
  for (const unsigned char c : key) {
    std::snprintf(hex, sizeof hex, "\\u%04x", c);
    out += hex;
  }
  return out + "\"";
}

std::string random_key() {
  std::random_device random;
  std::string key = "kosli_";
  for (int i = 0; i < 40; ++i) key.push_back("0123456789abcdef"[random() % 16]);
  return key;
}

// Counts the freed blocks holding the first 16 bytes of `key` (a block that
// held only part of it counts too) while it lives.
class FreedMemoryWatch {
 public:
  explicit FreedMemoryWatch(const std::string& key) : pattern_(key.substr(0, 16)) {
    g_found = 0;
    g_watched = &pattern_;
  }
  ~FreedMemoryWatch() { g_watched = nullptr; }
  int found() const { return g_found.load(); }

 private:
  const std::string pattern_;
};

// How many freed blocks held `key` while `parse` turned `body` into a Result,
// whose Secret (picked by `secret_of`) must hold the key.
template <class Result, class Parse, class SecretOf>
int copies_left_by(Parse parse, std::string body, const std::string& key, SecretOf secret_of) {
  FreedMemoryWatch watch(key);
  {
    auto parsed = parse(body);
    if (!std::holds_alternative<Result>(parsed)) {
      ADD_FAILURE() << std::get<CodecError>(parsed).message;
      return -1;
    }
    EXPECT_TRUE(secret_of(std::get<Result>(parsed)).equals(key));
  }
  return watch.found();
}

TEST(WipeTest, AProfileBodyLeavesNoCopyOfItsKeyInFreedMemory) {
  const std::string key = random_key();
  const std::string body =
      R"({"org":"acme","host":"https://app.kosli.com","kind":"personal","api_key":)" + escaped(key) + "}";
  EXPECT_EQ(copies_left_by<PutProfileRequest>(parse_put_profile, body, key,
                                              [](const PutProfileRequest& r) -> const Secret& { return r.api_key; }),
            0);
}

TEST(WipeTest, ARotateBodyLeavesNoCopyOfItsKeyInFreedMemory) {
  const std::string key = random_key();
  const std::string body = R"({"api_key":)" + escaped(key) + R"(,"verify":false,"expires_at":"2030-01-01T00:00:00Z"})";
  EXPECT_EQ(copies_left_by<RotateRequest>(parse_rotate, body, key,
                                          [](const RotateRequest& r) -> const Secret& { return r.api_key; }),
            0);
}

TEST(WipeTest, ATokenAnswerLeavesNoCopyOfItsTokenInFreedMemory) {
  const std::string key = random_key();
  const std::string body = R"({"token":)" + escaped(key) +
                           R"(,"token_type":"Bearer","org":"acme","host":"https://app.kosli.com","expires_at":null})";
  EXPECT_EQ(copies_left_by<TokenResponse>(parse_token, body, key,
                                          [](const TokenResponse& r) -> const Secret& { return r.token; }),
            0);
}

TEST(WipeTest, AnImportFileLeavesNoCopyOfItsKeysInFreedMemory) {
  const std::string key = random_key();
  char path[] = "/tmp/kosli-wipe-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << R"([{"name":"ci","org":"acme","api_key":)" << escaped(key) << "}]";
  {
    FreedMemoryWatch watch(key);
    {
      auto imported = daemon::import_file(path);
      ASSERT_TRUE(std::holds_alternative<std::vector<daemon::ImportedProfile>>(imported))
          << std::get<std::string>(imported);
      EXPECT_TRUE(std::get<std::vector<daemon::ImportedProfile>>(imported).at(0).request.api_key.equals(key));
    }
    EXPECT_EQ(watch.found(), 0);
  }
  ::unlink(path);
}

}  // namespace
}  // namespace kosli
