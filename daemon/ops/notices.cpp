#include "daemon/ops/notices.hpp"

#include "proto/profile.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {
constexpr std::int64_t kDay = 86400;
}  // namespace

void Notices::key_expiring(const std::string& profile, std::int64_t expires_at, std::int64_t now) {
  if (!send_) return;
  {
    std::lock_guard lock(mutex_);
    auto& told = expiry_told_[profile];
    const std::pair<std::int64_t, std::int64_t> today{expires_at, now / kDay};
    if (told == today) return;
    told = today;
  }
  const std::int64_t days = days_left(expires_at, now);
  send_("Kosli key '" + profile + "' expires in " + std::to_string(days) + (days == 1 ? " day" : " days"),
        "The key of profile '" + profile + "' expires at " + format_rfc3339(expires_at) +
            ". Rotate it: kosli-cred rotate --profile " + profile);
}

void Notices::rotation_failed(const std::string& profile, const std::string& why) {
  if (!send_) return;
  send_("Kosli key '" + profile + "' was not rotated",
        "The scheduled rotation of profile '" + profile + "' failed: " + why +
            ". kosli-credd tries again later; see kosli-cred status");
}

void Notices::key_waiting(const std::string& profile, const std::string& save_by_hand) {
  if (!send_) return;
  send_("New Kosli key '" + profile + "' is not in the keyring",
        "Kosli rotated the key of profile '" + profile +
            "', but the keyring would not take the new one: kosli-credd holds it in memory and keeps trying. Do "
            "not stop kosli-credd; to save it by hand: " + save_by_hand);
}

}  // namespace kosli::daemon
