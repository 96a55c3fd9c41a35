// The fingerprint the daemon lists for a key (daemon/keys/fingerprint.hpp),
// computed the same way with OpenSSL's SHA-256: git's helper recognises its own
// answer coming back (store, erase) by it, without asking the daemon for a key.
// Only the full command line links it (git_credential_store.cpp); bin/kosli-cred
// does not load libcrypto.
#pragma once

#include <string>

#include "proto/secret.hpp"

namespace kosli::client {

// "sha256:" followed by the first 12 hex digits of the key's SHA-256 ("" if it cannot be computed).
std::string key_fingerprint(const Secret& key);

}  // namespace kosli::client
