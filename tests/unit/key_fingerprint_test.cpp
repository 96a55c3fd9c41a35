// The client's fingerprint of a key (git's helper recognises its own answer by
// it) is the daemon's, for every length SHA-256 pads differently.
#include "client/key_fingerprint.hpp"

#include <gtest/gtest.h>

#include "daemon/keys/fingerprint.hpp"

namespace kosli {
namespace {

TEST(KeyFingerprintTest, KnownDigest) {
  EXPECT_EQ(client::key_fingerprint(Secret("abc")), "sha256:ba7816bf8f01");
  EXPECT_EQ(client::key_fingerprint(Secret("")), "sha256:e3b0c44298fc");
}

TEST(KeyFingerprintTest, SameAsTheDaemonsForEveryPadding) {
  for (std::size_t n : {1u, 40u, 55u, 56u, 63u, 64u, 65u, 119u, 120u, 128u, 200u, 1000u}) {
    std::string key;
    for (std::size_t i = 0; i < n; ++i) key += static_cast<char>('!' + (i * 7) % 90);
    EXPECT_EQ(client::key_fingerprint(Secret(key)), daemon::fingerprint(Secret(key))) << n;
  }
}

}  // namespace
}  // namespace kosli
