// Keys kept only in the daemon's locked memory: CI sidecars, tests, machines
// without a Secret Service.
#pragma once

#include <map>
#include <mutex>

#include "daemon/store/store.hpp"

namespace kosli::daemon {

class MemoryStore final : public Store {
 public:
  std::string_view backend_name() const override { return "memory"; }
  bool persistent() const override { return false; }
  bool may_block() const override { return false; }

  StoreResult<std::vector<ProfileMeta>> list(Deadline) override;
  StoreResult<std::optional<ProfileMeta>> find(std::string_view name, Deadline) override;
  StoreResult<std::optional<StoredKey>> load(std::string_view name, Deadline) override;
  StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline) override;
  StoreResult<bool> erase(std::string_view name, Deadline) override;
  StoreResult<bool> record_verification(std::string_view name, std::string_view fingerprint, std::int64_t at,
                                        std::string_view result, Deadline) override;
  StoreResult<bool> record_expiry(std::string_view name, std::string_view fingerprint, std::int64_t expires_at,
                                  std::string_view source, Deadline) override;

 private:
  std::mutex mutex_;
  std::map<std::string, StoredKey, std::less<>> profiles_;
};

}  // namespace kosli::daemon
