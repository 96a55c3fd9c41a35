// The fingerprint the daemon lists for a key (daemon/keys/fingerprint.hpp),
// computed in the client without OpenSSL, which the client does not link: git's
// helper recognises its own answer coming back (store, erase) by it, without
// asking the daemon for a key.
#pragma once

#include <string>

#include "proto/secret.hpp"

namespace kosli::client {

// "sha256:" followed by the first 12 hex digits of the key's SHA-256.
std::string key_fingerprint(const Secret& key);

}  // namespace kosli::client
