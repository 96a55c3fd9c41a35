// A Store that counts the failed calls of another, by kind, into a
// StoreErrorCounter (the daemon's Metrics). Every
// keyring call the daemon makes goes through it, whoever makes it: the router,
// verification, rotation by hand, through the API or on a schedule.
#pragma once

#include "daemon/store/store.hpp"

namespace kosli::daemon {

// Where MeteredStore counts a failed call; called only on failure.
class StoreErrorCounter {
 public:
  virtual void store_error(StoreError::Kind kind) = 0;

 protected:
  ~StoreErrorCounter() = default;
};

class MeteredStore final : public Store {
 public:
  MeteredStore(Store& store, StoreErrorCounter& counter) : store_(store), counter_(counter) {}

  std::string_view backend_name() const override { return store_.backend_name(); }
  bool persistent() const override { return store_.persistent(); }
  bool may_block() const override { return store_.may_block(); }

  StoreResult<std::vector<ProfileMeta>> list(Deadline deadline) override { return counted(store_.list(deadline)); }
  StoreResult<std::optional<ProfileMeta>> find(std::string_view name, Deadline deadline) override {
    return counted(store_.find(name, deadline));
  }
  StoreResult<std::optional<StoredKey>> load(std::string_view name, Deadline deadline) override {
    return counted(store_.load(name, deadline));
  }
  StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline deadline) override {
    return counted(store_.put(meta, key, deadline));
  }
  StoreResult<bool> erase(std::string_view name, Deadline deadline) override {
    return counted(store_.erase(name, deadline));
  }
  StoreResult<bool> record_verification(std::string_view name, std::string_view fingerprint, std::int64_t at,
                                        std::string_view result, Deadline deadline) override {
    return counted(store_.record_verification(name, fingerprint, at, result, deadline));
  }
  StoreResult<bool> record_expiry(std::string_view name, std::string_view fingerprint, std::int64_t expires_at,
                                  std::string_view source, Deadline deadline) override {
    return counted(store_.record_expiry(name, fingerprint, expires_at, source, deadline));
  }

 private:
  template <class T>
  StoreResult<T> counted(StoreResult<T> result) {
    if (const auto* e = std::get_if<StoreError>(&result)) counter_.store_error(e->kind);
    return result;
  }

  Store& store_;
  StoreErrorCounter& counter_;
};

}  // namespace kosli::daemon
