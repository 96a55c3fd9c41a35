#include "proto/fingerprint.hpp"

#include <openssl/evp.h>

namespace kosli {

std::string fingerprint(const Secret& key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(key.reveal().data(), key.size(), digest, &length, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (int i = 0; i < 6; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  wipe(digest, sizeof digest);
  return out;
}

}  // namespace kosli
