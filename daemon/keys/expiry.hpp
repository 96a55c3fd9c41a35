// A key's expiry as token service sees it: the one clock (Unix seconds), the
// refusal of an expired key, and the audit note for one about to expire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/keys/token_cache.hpp"

namespace kosli::daemon {

// Why no token is handed out for a key past its expires_at (or nullopt).
std::optional<std::string> expired(const std::string& name, const TokenInfo& info);

// Whether Kosli can tell the key's expiry: a service-account key with its
// service account and key id.
bool expiry_learnable(const ProfileMeta& meta);

// The audit detail for a key close to its expiry ("" otherwise).
std::string expiry_note(const TokenInfo& info);

}  // namespace kosli::daemon
