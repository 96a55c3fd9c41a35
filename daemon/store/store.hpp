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
};

}  // namespace kosli::daemon
