#include "daemon/keys/stored_profile.hpp"

#include "proto/fingerprint.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {

ProfileMeta meta_from_put(const std::string& name, const PutProfileRequest& put, bool persistent) {
  ProfileMeta meta;
  meta.name = name;
  meta.org = put.org;
  meta.host = put.host;
  meta.kind = put.kind;
  meta.description = put.description;
  meta.created_at = now_s();
  meta.expires_at = put.expires_at;
  if (put.expires_at != 0) meta.expiry_source = std::string(kExpiryFromUser);
  meta.fingerprint = fingerprint(put.api_key);
  meta.service_account = put.service_account;
  meta.key_id = put.key_id;
  meta.persistent = persistent;
  return meta;
}

}  // namespace kosli::daemon
