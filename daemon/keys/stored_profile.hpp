// What the keyring stores beside a key a user gave: the one place a profile's
// metadata is made from a put request (the API's PUT and --import alike).
#pragma once

#include <string>

#include "proto/profile.hpp"

namespace kosli::daemon {

// `put`'s metadata for profile `name`, created now, with the key's fingerprint;
// `persistent` says whether the store keeps it across restarts.
ProfileMeta meta_from_put(const std::string& name, const PutProfileRequest& put, bool persistent);

}  // namespace kosli::daemon
