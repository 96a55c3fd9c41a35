// Private to daemon/store/secret_service_*.cpp: the libsecret schema, GLib
// owners, and the conversions between a profile and an item's attributes.
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

// For the D-Bus-path functions (secret-paths.h): a key read without a
// SecretItem proxy (FoundItem below). "Unstable" in name only: unchanged since
// libsecret 0.7.
#define SECRET_API_SUBJECT_TO_CHANGE
#include <libsecret/secret.h>

#include <spdlog/spdlog.h>

#include "daemon/store/secret_service_store.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon::secret_service_detail {

// The attributes stored beside each key (metadata only; never the key).
inline constexpr const char* kAttrProfile = "profile";
inline constexpr const char* kAttrOrg = "org";
inline constexpr const char* kAttrHost = "host";
inline constexpr const char* kAttrKind = "kind";
inline constexpr const char* kAttrExpiresAt = "expires_at";
inline constexpr const char* kAttrExpirySource = "expiry_source";
inline constexpr const char* kAttrServiceAccount = "service_account";
inline constexpr const char* kAttrKeyId = "key_id";
inline constexpr const char* kAttrCreatedAt = "created_at";
// When the item was written, in nanoseconds: which of two items for one profile
// (a replace cut short) is the newer, when both were created in the same second.
inline constexpr const char* kAttrStoredAt = "stored_at_ns";
inline constexpr const char* kAttrDescription = "description";
inline constexpr const char* kAttrFingerprint = "fingerprint";
// Kosli's last definite answer about the key (absent on items from older versions).
inline constexpr const char* kAttrLastVerifiedAt = "last_verified_at";
inline constexpr const char* kAttrLastVerifyResult = "last_verify_result";

const SecretSchema* schema();

using Attributes = std::map<std::string, std::string>;

// RAII owners for the GLib objects used here.
struct GObjectUnref {
  void operator()(gpointer p) const { if (p) g_object_unref(p); }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct HashTableUnref {
  void operator()(GHashTable* t) const { if (t) g_hash_table_unref(t); }
};
using HashTablePtr = std::unique_ptr<GHashTable, HashTableUnref>;

struct ErrorFree {
  void operator()(GError* e) const { if (e) g_error_free(e); }
};

struct StrvFree {
  void operator()(gchar** v) const { g_strfreev(v); }
};
using StrvPtr = std::unique_ptr<gchar*, StrvFree>;

struct VariantUnref {
  void operator()(GVariant* v) const { if (v) g_variant_unref(v); }
};
using VariantPtr = std::unique_ptr<GVariant, VariantUnref>;

// Owns a GList of SecretItem from a search.
class ItemList {
 public:
  ItemList() = default;
  explicit ItemList(GList* items) : items(items) {}
  ItemList(ItemList&& other) noexcept : items(std::exchange(other.items, nullptr)) {}
  ItemList& operator=(ItemList&&) = delete;
  ItemList(const ItemList&) = delete;
  ~ItemList() { g_list_free_full(items, g_object_unref); }

  GList* items = nullptr;
};

// An item as a search finds it, read with plain D-Bus calls rather than as a
// SecretItem. libsecret makes each SecretItem a D-Bus proxy, and a proxy costs
// two calls to the bus itself (StartServiceByName, GetNameOwner) and a match
// rule added and removed, before its own GetAll: reading a key took five round
// trips and four more messages. This way it takes three: SearchItems, GetAll,
// GetSecrets.
struct FoundItem {
  std::string path;
  Attributes attributes;
  std::int64_t created = 0;
  bool locked = false;
};

inline constexpr const char* kStartAdvice =
    "start a Secret Service in your session (gnome-keyring-daemon --start --components=secrets), "
    "or run kosli-credd --backend memory";

HashTablePtr to_hash_table(const Attributes& attrs);

Attributes item_attributes(SecretItem* item);

std::string attr(const Attributes& a, const char* key);

std::int64_t attr_int(const Attributes& a, const char* key);

Attributes to_attributes(const ProfileMeta& m);

// `created`: the item's own creation time, for items stored without created_at.
ProfileMeta to_meta(const Attributes& a, std::int64_t created);

ProfileMeta to_meta(SecretItem* item);

// Which of two items for one profile is the newer (a replace cut short leaves two).
std::pair<std::int64_t, std::int64_t> stored_when(const Attributes& a);

// An item another program deleted while we read it (gnome-keyring answers for a
// deleted item with UnknownMethod).
bool item_vanished(const GError* error);

// Only the attributes this schema defines (libsecret adds xdg:schema).
Attributes own_attributes(const Attributes& a);

StoreError unavailable(std::string what);

StoreError locked_error();

StoreError no_valid_secret(std::string_view name);

// A thread that cancels the call in flight when its deadline passes. One call is
// in flight at a time (the store runs on one worker thread).
class Watchdog {
 public:
  Watchdog() : thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void arm(GCancellable* cancellable, Store::Deadline deadline) {
    {
      std::lock_guard lock(mutex_);
      armed_ = cancellable;
      deadline_ = deadline;
    }
    cv_.notify_all();
  }

  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = nullptr;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (armed_ == nullptr) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ != nullptr) {
        g_cancellable_cancel(armed_);
        armed_ = nullptr;
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  GCancellable* armed_ = nullptr;
  Store::Deadline deadline_{};
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kosli::daemon::secret_service_detail
