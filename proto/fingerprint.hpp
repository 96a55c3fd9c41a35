// A key's fingerprint, as the daemon lists it and git's helper recognises its
// own answer by. OpenSSL's SHA-256: whoever calls it links libcrypto (the
// daemon; the full command line, statically); proto itself does not, so that
// bin/kosli-cred, which never calls it, loads none of it.
#pragma once

#include <string>

#include "proto/secret.hpp"

namespace kosli {

// "sha256:" followed by the first 12 hex digits of the key's SHA-256: enough to
// tell keys apart in a listing, far too little to help guess one. "" if it
// cannot be computed.
std::string fingerprint(const Secret& key);

}  // namespace kosli
