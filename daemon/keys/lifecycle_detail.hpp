// Private to daemon/keys/: what the key service's files share (its retry
// and schedule timings, and small helpers).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/api/answers.hpp"
#include "daemon/keys/expiry.hpp"
#include "daemon/keys/key_lifecycle.hpp"

namespace kosli::daemon::keys_detail {

using nlohmann::json;

// A key Kosli issued that the keyring did not take is offered to it again after
// this long, doubling up to the maximum.
constexpr std::chrono::seconds kFirstStoreRetry{2};
constexpr std::chrono::seconds kMaxStoreRetry{60};
// A scheduled rotation that failed is tried again after this long.
constexpr std::chrono::seconds kScheduledRetry{15 * 60};
// The schedule is looked at at least this often (clocks jump; keys get stored).
constexpr std::chrono::seconds kMaxScheduleSleep{3600};
// When the store cannot list profiles for the schedule, it is asked again after this long.
constexpr std::chrono::seconds kScheduleListRetry{60};
constexpr std::int64_t kDay = 86400;
// Kosli is asked for service-account keys' expiry this long after the daemon
// starts, then daily; hourly while one of them is not known from Kosli.
constexpr std::chrono::seconds kFirstExpiryRefresh{60};
constexpr std::chrono::seconds kExpiryRefresh{24 * 3600};
constexpr std::chrono::seconds kUnknownExpiryRefresh{3600};

// When the old key stops working, for messages.
std::string when_old_key_ends(std::int64_t grace_end);

// How to save a key kosli-credd holds in memory, once the keyring works again.
std::string save_by_hand(const ProfileMeta& m);

}  // namespace kosli::daemon::keys_detail

namespace kosli::daemon {

struct KeyLifecycle::ApiRotation {
  std::string name;
  StoredKey old;
  RotateCall call;
  Peer peer;
  KeyLifecycle::RotateDone reply;  // empty for a scheduled rotation
  bool scheduled = false;
  std::shared_ptr<void> guard;  // holds the profile's rotation slot
  RotatedKey rotated;
  ProfileMeta new_meta;
};

}  // namespace kosli::daemon
