#include "daemon/fingerprint.hpp"

#include <glib.h>

namespace kosli::daemon {

// GLib's SHA-256 (loaded already, for libsecret) rather than OpenSSL's: until
// the daemon first talks to Kosli, OpenSSL is never initialised, which keeps
// megabytes of it out of the daemon's resident memory.
std::string fingerprint(const Secret& key) {
  GChecksum* sha256 = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sha256, reinterpret_cast<const guchar*>(key.reveal().data()), static_cast<gssize>(key.size()));
  guint8 digest[32];
  gsize length = sizeof digest;
  g_checksum_get_digest(sha256, digest, &length);
  g_checksum_free(sha256);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (int i = 0; i < 6; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  wipe(digest, sizeof digest);
  return out;
}

}  // namespace kosli::daemon
