// How the client words a key's expiry: every Kosli key expires, so a profile
// without a known expiry reads "unknown", with how to learn it.
#pragma once

#include <cstdint>
#include <string>

#include "proto/profile.hpp"

namespace kosli::client {

// "in 12 days", "today", "expired 3 days ago"; "" for an unknown expiry (0).
std::string days_left_text(std::int64_t expires_at);

// The expiry as list's EXPIRES column: an RFC 3339 time, or "unknown".
std::string expiry_column(const ProfileMeta& meta);

// The expiry as show and store say it: "2027-…Z (in 12 days; from Kosli)", or
// "unknown: " and how to learn it.
std::string expiry_sentence(const ProfileMeta& meta);

}  // namespace kosli::client
