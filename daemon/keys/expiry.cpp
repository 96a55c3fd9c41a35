#include "daemon/keys/expiry.hpp"

#include "proto/time_format.hpp"

namespace kosli::daemon {

std::optional<std::string> expired(const std::string& name, const TokenInfo& info) {
  const auto now = now_s();
  if (info.expires_at == 0 || info.expires_at > now) return std::nullopt;
  return "the key of profile '" + name + "' expired at " + format_rfc3339(info.expires_at) +
         "; no token is handed out for it. Rotate it: kosli-cred rotate --profile " + name +
         " --via-api (a service-account key), or create a new key in Kosli and: kosli-cred rotate --profile " +
         name + " < new-key";
}

bool expiry_learnable(const ProfileMeta& meta) {
  return meta.kind == KeyKind::service_account && !meta.service_account.empty() && !meta.key_id.empty();
}

std::string expiry_note(const TokenInfo& info) {
  const auto now = now_s();
  if (!expiring_within(info.expires_at, info.expiry_warning_days, now)) return {};
  return "key expires in " + std::to_string(days_left(info.expires_at, now)) + " days (" +
         format_rfc3339(info.expires_at) + ")";
}

}  // namespace kosli::daemon
