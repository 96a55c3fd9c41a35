#include "daemon/store/secret_service_detail.hpp"

namespace kosli::daemon::secret_service_detail {

const SecretSchema* schema() {
  static const SecretSchema s = {
      kSecretSchemaName,
      SECRET_SCHEMA_NONE,
      {
          {kAttrProfile, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrOrg, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrHost, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrKind, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrExpiresAt, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrExpirySource, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrServiceAccount, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrKeyId, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrCreatedAt, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrStoredAt, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrDescription, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrFingerprint, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrLastVerifiedAt, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {kAttrLastVerifyResult, SECRET_SCHEMA_ATTRIBUTE_STRING},
          {nullptr, SECRET_SCHEMA_ATTRIBUTE_STRING},
      },
      0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  return &s;
}
HashTablePtr to_hash_table(const Attributes& attrs) {
  HashTablePtr t(g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free));
  for (const auto& [k, v] : attrs) g_hash_table_insert(t.get(), g_strdup(k.c_str()), g_strdup(v.c_str()));
  return t;
}

Attributes item_attributes(SecretItem* item) {
  Attributes out;
  HashTablePtr t(secret_item_get_attributes(item));
  if (!t) return out;
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, t.get());
  while (g_hash_table_iter_next(&it, &k, &v)) {
    out.emplace(static_cast<const char*>(k), static_cast<const char*>(v));
  }
  return out;
}

std::string attr(const Attributes& a, const char* key) {
  const auto it = a.find(key);
  return it == a.end() ? std::string() : it->second;
}

std::int64_t attr_int(const Attributes& a, const char* key) {
  const std::string s = attr(a, key);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() && v >= 0 ? v : 0;
}

Attributes to_attributes(const ProfileMeta& m) {
  return {
      {kAttrProfile, m.name},
      {kAttrOrg, m.org},
      {kAttrHost, m.host},
      {kAttrKind, std::string(kind_name(m.kind))},
      {kAttrExpiresAt, std::to_string(m.expires_at)},
      {kAttrExpirySource, m.expiry_source},
      {kAttrServiceAccount, m.service_account},
      {kAttrKeyId, m.key_id},
      {kAttrCreatedAt, std::to_string(m.created_at)},
      {kAttrDescription, m.description},
      {kAttrFingerprint, m.fingerprint},
      {kAttrLastVerifiedAt, std::to_string(m.last_verified_at)},
      {kAttrLastVerifyResult, m.last_verify_result},
  };
}

// `created`: the item's own creation time, for items stored without created_at.
ProfileMeta to_meta(const Attributes& a, std::int64_t created) {
  ProfileMeta m;
  m.name = attr(a, kAttrProfile);
  m.org = attr(a, kAttrOrg);
  m.host = attr(a, kAttrHost);
  m.kind = kind_from_name(attr(a, kAttrKind)).value_or(KeyKind::service_account);
  m.expires_at = attr_int(a, kAttrExpiresAt);
  m.expiry_source = attr(a, kAttrExpirySource);
  // Stored before the source was kept: an expiry then came only from the user.
  if (m.expires_at != 0 && m.expiry_source.empty()) m.expiry_source = std::string(kExpiryFromUser);
  m.service_account = attr(a, kAttrServiceAccount);
  m.key_id = attr(a, kAttrKeyId);
  m.created_at = attr_int(a, kAttrCreatedAt);
  if (m.created_at == 0) m.created_at = created;
  m.description = attr(a, kAttrDescription);
  m.fingerprint = attr(a, kAttrFingerprint);
  m.last_verified_at = attr_int(a, kAttrLastVerifiedAt);
  m.last_verify_result = attr(a, kAttrLastVerifyResult);
  m.persistent = true;
  return m;
}

ProfileMeta to_meta(SecretItem* item) {
  return to_meta(item_attributes(item), static_cast<std::int64_t>(secret_item_get_created(item)));
}

// Which of two items for one profile is the newer (a replace cut short leaves two).
std::pair<std::int64_t, std::int64_t> stored_when(const Attributes& a) {
  return {attr_int(a, kAttrCreatedAt), attr_int(a, kAttrStoredAt)};
}

// An item another program deleted while we read it (gnome-keyring answers for a
// deleted item with UnknownMethod).
bool item_vanished(const GError* error) {
  return g_error_matches(error, SECRET_ERROR, SECRET_ERROR_NO_SUCH_OBJECT) ||
         g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
         g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT);
}

// Only the attributes this schema defines (libsecret adds xdg:schema).
Attributes own_attributes(const Attributes& a) {
  Attributes out;
  for (const auto& [k, v] : a) {
    if (k.find(':') == std::string::npos) out.emplace(k, v);
  }
  return out;
}

StoreError unavailable(std::string what) {
  return StoreError{StoreError::Kind::unavailable, std::move(what) + "; " + kStartAdvice};
}

StoreError locked_error() {
  return StoreError{StoreError::Kind::locked,
                    "the default keyring is locked; unlock it (log in to your desktop session, "
                    "or open Seahorse and unlock the Login keyring), then try again"};
}

StoreError no_valid_secret(std::string_view name) {
  return StoreError{StoreError::Kind::internal,
                    "the keyring holds profile '" + std::string(name) +
                        "' but no valid key for it (its secret is empty or malformed: a store cut short?); "
                        "store the key again: kosli-cred store --profile " + std::string(name) + " --org ORG"};
}

}  // namespace kosli::daemon::secret_service_detail
