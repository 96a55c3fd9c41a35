#pragma once

#include <string>

#include "proto/secret.hpp"

namespace kosli::daemon {

// "sha256:" followed by the first 12 hex digits of the key's SHA-256: enough to
// tell keys apart in a listing, far too little to help guess one.
std::string fingerprint(const Secret& key);

}  // namespace kosli::daemon
