#include "client/expiry_text.hpp"

#include "proto/display.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {

std::string days_left_text(std::int64_t expires_at) {
  if (expires_at == 0) return {};
  const auto now = now_s();
  if (expires_at <= now) {
    const auto ago = -days_left(expires_at, now) - 1;
    return ago <= 0 ? "expired" : "expired " + std::to_string(ago) + (ago == 1 ? " day ago" : " days ago");
  }
  const auto days = days_left(expires_at, now);
  if (days == 0) return "today";
  return "in " + std::to_string(days) + (days == 1 ? " day" : " days");
}

std::string expiry_column(const ProfileMeta& meta) {
  return meta.expires_at == 0 ? "unknown" : format_rfc3339(meta.expires_at);
}

std::string expiry_sentence(const ProfileMeta& meta) {
  if (meta.expires_at == 0) return "unknown: " + display_safe(how_to_learn_expiry(meta));
  const std::string source = meta.expiry_source == kExpiryFromKosli ? "; from Kosli"
                             : meta.expiry_source == kExpiryFromUser ? "; as given"
                                                                     : "";
  return format_rfc3339(meta.expires_at) + " (" + days_left_text(meta.expires_at) + source + ")";
}

}  // namespace kosli::client
