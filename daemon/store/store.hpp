// Where keys are kept. The daemon talks to one Store through StoreWorker, so a
// backend that may block (D-Bus) never runs on the Asio threads.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/profile.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

struct StoreError {
  enum class Kind {
    unavailable,  // no keyring answers, or it did not answer in time
    locked,       // the keyring answers but is locked
    internal,
  };
  Kind kind = Kind::internal;
  std::string message;  // a sentence for a person: what is wrong and what to do
};

template <class T>
using StoreResult = std::variant<T, StoreError>;

struct StoredKey {
  ProfileMeta meta;
  Secret key;
};

class Store {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  virtual ~Store() = default;

  virtual std::string_view backend_name() const = 0;
  // Whether keys survive a restart of the daemon.
  virtual bool persistent() const = 0;
  // Whether calls may block (and so must run off the Asio threads).
  virtual bool may_block() const = 0;

  // Every profile's metadata, sorted by name.
  virtual StoreResult<std::vector<ProfileMeta>> list(Deadline deadline) = 0;
  virtual StoreResult<std::optional<ProfileMeta>> find(std::string_view name, Deadline deadline) = 0;
  virtual StoreResult<std::optional<StoredKey>> load(std::string_view name, Deadline deadline) = 0;
  // Stores or replaces the profile `meta.name`; true when one was replaced. A
  // replace never leaves the profile without a key, even if interrupted.
  virtual StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline deadline) = 0;
  // Erases the profile; false when there was none.
  virtual StoreResult<bool> erase(std::string_view name, Deadline deadline) = 0;

  // Records Kosli's answer (last_verified_at, last_verify_result) on the
  // profile, provided it still holds the key with `fingerprint`; false when the
  // profile is gone or holds another key by now. The key itself is not touched.
  // This default reads and rewrites the whole profile; backends override it.
  virtual StoreResult<bool> record_verification(std::string_view name, std::string_view fingerprint,
                                                std::int64_t at, std::string_view result, Deadline deadline) {
    auto loaded = load(name, deadline);
    if (auto* e = std::get_if<StoreError>(&loaded)) return *e;
    auto& stored = std::get<std::optional<StoredKey>>(loaded);
    if (!stored || stored->meta.fingerprint != fingerprint) return false;
    stored->meta.last_verified_at = at;
    stored->meta.last_verify_result = std::string(result);
    auto put_result = put(stored->meta, stored->key, deadline);
    if (auto* e = std::get_if<StoreError>(&put_result)) return *e;
    return true;
  }

  // Records a key's expiry and where it came from (kExpiryFromKosli, …) on the
  // profile, on the same terms as record_verification.
  virtual StoreResult<bool> record_expiry(std::string_view name, std::string_view fingerprint,
                                          std::int64_t expires_at, std::string_view source, Deadline deadline) {
    auto loaded = load(name, deadline);
    if (auto* e = std::get_if<StoreError>(&loaded)) return *e;
    auto& stored = std::get<std::optional<StoredKey>>(loaded);
    if (!stored || stored->meta.fingerprint != fingerprint) return false;
    stored->meta.expires_at = expires_at;
    stored->meta.expiry_source = std::string(source);
    auto put_result = put(stored->meta, stored->key, deadline);
    if (auto* e = std::get_if<StoreError>(&put_result)) return *e;
    return true;
  }
};

}  // namespace kosli::daemon
