#include "daemon/store/memory_store.hpp"

namespace kosli::daemon {

StoreResult<std::vector<ProfileMeta>> MemoryStore::list(Deadline) {
  std::lock_guard lock(mutex_);
  std::vector<ProfileMeta> out;
  out.reserve(profiles_.size());
  for (const auto& [name, stored] : profiles_) out.push_back(stored.meta);
  return out;
}

StoreResult<std::optional<ProfileMeta>> MemoryStore::find(std::string_view name, Deadline) {
  std::lock_guard lock(mutex_);
  const auto it = profiles_.find(name);
  if (it == profiles_.end()) return std::optional<ProfileMeta>{};
  return std::optional<ProfileMeta>{it->second.meta};
}

StoreResult<std::optional<StoredKey>> MemoryStore::load(std::string_view name, Deadline) {
  std::lock_guard lock(mutex_);
  const auto it = profiles_.find(name);
  if (it == profiles_.end()) return std::optional<StoredKey>{};
  return std::optional<StoredKey>{StoredKey{it->second.meta, it->second.key.clone()}};
}

StoreResult<bool> MemoryStore::put(const ProfileMeta& meta, const Secret& key, Deadline) {
  StoredKey stored{meta, key.clone()};
  stored.meta.persistent = false;
  std::lock_guard lock(mutex_);
  const auto [it, inserted] = profiles_.insert_or_assign(meta.name, std::move(stored));
  return !inserted;
}

StoreResult<bool> MemoryStore::erase(std::string_view name, Deadline) {
  std::lock_guard lock(mutex_);
  const auto it = profiles_.find(name);
  if (it == profiles_.end()) return false;
  profiles_.erase(it);
  return true;
}

StoreResult<bool> MemoryStore::record_verification(std::string_view name, std::string_view fingerprint,
                                                   std::int64_t at, std::string_view result, Deadline) {
  std::lock_guard lock(mutex_);
  const auto it = profiles_.find(name);
  if (it == profiles_.end() || it->second.meta.fingerprint != fingerprint) return false;
  it->second.meta.last_verified_at = at;
  it->second.meta.last_verify_result = std::string(result);
  return true;
}

StoreResult<bool> MemoryStore::record_expiry(std::string_view name, std::string_view fingerprint,
                                             std::int64_t expires_at, std::string_view source, Deadline) {
  std::lock_guard lock(mutex_);
  const auto it = profiles_.find(name);
  if (it == profiles_.end() || it->second.meta.fingerprint != fingerprint) return false;
  it->second.meta.expires_at = expires_at;
  it->second.meta.expiry_source = std::string(source);
  return true;
}

}  // namespace kosli::daemon
