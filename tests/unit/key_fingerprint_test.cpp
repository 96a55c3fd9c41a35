// A key's fingerprint (the daemon lists it; git's helper recognises its own
// answer by it): "sha256:" and the first 12 hex digits of its SHA-256.
#include "proto/fingerprint.hpp"

#include <gtest/gtest.h>

namespace kosli {
namespace {

TEST(KeyFingerprintTest, KnownDigest) {
  EXPECT_EQ(fingerprint(Secret("abc")), "sha256:ba7816bf8f01");
  EXPECT_EQ(fingerprint(Secret("")), "sha256:e3b0c44298fc");
}

}  // namespace
}  // namespace kosli
