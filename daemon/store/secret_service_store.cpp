#include "daemon/store/secret_service_store.hpp"

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

#include "daemon/store/session_bus.hpp"
#include "proto/display.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon {
namespace {

// The attributes stored beside each key (metadata only; never the key).
constexpr const char* kAttrProfile = "profile";
constexpr const char* kAttrOrg = "org";
constexpr const char* kAttrHost = "host";
constexpr const char* kAttrKind = "kind";
constexpr const char* kAttrExpiresAt = "expires_at";
constexpr const char* kAttrServiceAccount = "service_account";
constexpr const char* kAttrKeyId = "key_id";
constexpr const char* kAttrCreatedAt = "created_at";
// When the item was written, in nanoseconds: which of two items for one profile
// (a replace cut short) is the newer, when both were created in the same second.
constexpr const char* kAttrStoredAt = "stored_at_ns";
constexpr const char* kAttrDescription = "description";
constexpr const char* kAttrFingerprint = "fingerprint";
// Kosli's last definite answer about the key (absent on items from older versions).
constexpr const char* kAttrLastVerifiedAt = "last_verified_at";
constexpr const char* kAttrLastVerifyResult = "last_verify_result";

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

// Only the attributes this schema defines (libsecret adds xdg:schema).
Attributes own_attributes(const Attributes& a) {
  Attributes out;
  for (const auto& [k, v] : a) {
    if (k.find(':') == std::string::npos) out.emplace(k, v);
  }
  return out;
}

constexpr const char* kStartAdvice =
    "start a Secret Service in your session (gnome-keyring-daemon --start --components=secrets), "
    "or run kosli-credd --backend memory";

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

}  // namespace

bool session_bus_configured() {
  if (const char* addr = std::getenv("DBUS_SESSION_BUS_ADDRESS"); addr != nullptr && *addr != '\0') {
    return true;
  }
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || *runtime == '\0') return false;
  struct stat st {};
  return ::stat((std::string(runtime) + "/bus").c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

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

class SecretServiceStore::Impl {
 public:
  ~Impl() { reset(); }

  // One operation: a cancellable armed with the deadline for all its D-Bus calls.
  class Call {
   public:
    Call(Impl& impl, Deadline deadline) : impl_(impl), cancellable_(g_cancellable_new()) {
      impl_.watchdog_.arm(cancellable_.get(), deadline);
    }
    ~Call() { impl_.watchdog_.disarm(); }
    GCancellable* cancellable() const { return cancellable_.get(); }
    bool cancelled() const { return g_cancellable_is_cancelled(cancellable_.get()); }

   private:
    Impl& impl_;
    GPtr<GCancellable> cancellable_;
  };

  // Turns a GError into a StoreError, forgetting the service (and the
  // connection, once closed) so that the next call starts afresh.
  StoreError fail(const Call& call, GError* raw, const char* doing) {
    std::unique_ptr<GError, ErrorFree> error(raw);
    stale_ = !call.cancelled() && (connection_gone(error.get()) ||
                                   g_error_matches(error.get(), SECRET_ERROR, SECRET_ERROR_NO_SUCH_OBJECT));
    reset();
    if (call.cancelled()) {
      return unavailable(std::string("the Secret Service did not answer within ") +
                         std::to_string(limits::kStoreCallDeadline.count()) + " s while " + doing +
                         " (it may be hung)");
    }
    return unavailable(std::string("the Secret Service could not be reached while ") + doing +
                       (error ? std::string(" (") + error->message + ")" : std::string()));
  }

  // Runs one operation; when it failed because the keyring or the bus went
  // away since the last call (a restarted gnome-keyring has a new name on the
  // bus and knows nothing of our session), runs it once more on a fresh
  // connection, so the first request after a restart works.
  template <class Operation>
  auto once_more_if_stale(Deadline deadline, Operation&& operation) {
    Call call(*this, deadline);
    stale_ = false;
    auto result = operation(call);
    if (std::holds_alternative<StoreError>(result) && stale_ && !call.cancelled()) {
      stale_ = false;
      result = operation(call);
    }
    return result;
  }

  std::variant<SecretService*, StoreError> service(const Call& call) {
    if (service_) return service_.get();
    if (!session_bus_configured()) {
      return unavailable("no D-Bus session bus is configured (DBUS_SESSION_BUS_ADDRESS is unset)");
    }
    // The connection libsecret will use (GLib's shared one), made in context_
    // (see release_closed()). A bus that goes away must cost a reconnection,
    // not the daemon: GLib's default for the session bus is to end the process.
    GError* error = nullptr;
    g_main_context_push_thread_default(context_.get());
    GPtr<GDBusConnection> bus(g_bus_get_sync(G_BUS_TYPE_SESSION, call.cancellable(), &error));
    SecretService* s = nullptr;
    if (bus) {
      g_dbus_connection_set_exit_on_close(bus.get(), FALSE);
      s = secret_service_open_sync(SECRET_TYPE_SERVICE, nullptr, SECRET_SERVICE_OPEN_SESSION, call.cancellable(),
                                   &error);
    }
    g_main_context_pop_thread_default(context_.get());
    if (!bus) return fail(call, error, "connecting to the D-Bus session bus");
    bus.reset();  // the service holds it
    if (s == nullptr) return fail(call, error, "connecting");
    service_.reset(s);
    return s;
  }

  // Items of this schema, for one profile or (name empty) all of them.
  std::variant<ItemList, StoreError> search(const Call& call, std::string_view name) {
    auto s = service(call);
    if (auto* e = std::get_if<StoreError>(&s)) return *e;
    Attributes query;
    if (!name.empty()) query.emplace(kAttrProfile, std::string(name));
    const auto table = to_hash_table(query);
    // An item another program deletes between the search and the reading of
    // its attributes fails the whole search: search again, a few times at most.
    constexpr int kSearchAttempts = 3;
    for (int attempt = 1;; ++attempt) {
      GError* error = nullptr;
      ItemList list(secret_service_search_sync(std::get<SecretService*>(s), schema(), table.get(), SECRET_SEARCH_ALL,
                                               call.cancellable(), &error));
      if (error == nullptr) return std::variant<ItemList, StoreError>(std::move(list));
      if (attempt < kSearchAttempts && !call.cancelled() && item_vanished(error)) {
        g_error_free(error);
        continue;
      }
      return fail(call, error, "searching the keyring");
    }
  }

  // The items of one profile, as FoundItem. An item another program deletes
  // meanwhile ends the reading early, with `vanished` set: search again.
  std::variant<std::vector<FoundItem>, StoreError> find_items(const Call& call, SecretService* service,
                                                              std::string_view name, bool& vanished) {
    vanished = false;
    const auto table = to_hash_table({{kAttrProfile, std::string(name)}});
    GError* error = nullptr;
    gchar** unlocked = nullptr;
    gchar** locked = nullptr;
    if (!secret_service_search_for_dbus_paths_sync(service, schema(), table.get(), call.cancellable(), &unlocked,
                                                   &locked, &error)) {
      return fail(call, error, "searching the keyring");
    }
    const StrvPtr unlocked_paths(unlocked), locked_paths(locked);
    std::vector<FoundItem> items;
    for (const auto& [paths, is_locked] : {std::pair{unlocked, false}, std::pair{locked, true}}) {
      for (gchar** path = paths; path != nullptr && *path != nullptr; ++path) {
        auto item = read_item(call, service, *path, error);
        if (!item) {
          if (item_vanished(error) && !call.cancelled()) {
            g_error_free(error);
            vanished = true;
            return items;
          }
          return fail(call, error, "reading a key's attributes");
        }
        item->locked = is_locked;
        items.push_back(std::move(*item));
      }
    }
    return items;
  }

  // One item's attributes and creation time: Properties.GetAll, on the
  // connection libsecret opened.
  static std::optional<FoundItem> read_item(const Call& call, SecretService* service, const char* path,
                                            GError*& error) {
    auto* proxy = G_DBUS_PROXY(service);
    VariantPtr reply(g_dbus_connection_call_sync(
        g_dbus_proxy_get_connection(proxy), g_dbus_proxy_get_name(proxy), path, "org.freedesktop.DBus.Properties",
        "GetAll", g_variant_new("(s)", "org.freedesktop.Secret.Item"), G_VARIANT_TYPE("(a{sv})"),
        G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, call.cancellable(), &error));
    if (!reply) return std::nullopt;
    VariantPtr properties(g_variant_get_child_value(reply.get(), 0));
    FoundItem item{path, {}, 0, false};
    if (VariantPtr attributes{g_variant_lookup_value(properties.get(), "Attributes", G_VARIANT_TYPE("a{ss}"))}) {
      GVariantIter it;
      const gchar* key = nullptr;
      const gchar* value = nullptr;
      g_variant_iter_init(&it, attributes.get());
      while (g_variant_iter_next(&it, "{&s&s}", &key, &value)) item.attributes.emplace(key, value);
    }
    guint64 created = 0;
    if (g_variant_lookup(properties.get(), "Created", "t", &created)) item.created = static_cast<std::int64_t>(created);
    return item;
  }

  // The newest item (highest created_at, then stored_at_ns) among the list;
  // nullptr for none.
  static SecretItem* newest(const ItemList& list) {
    SecretItem* best = nullptr;
    std::pair<std::int64_t, std::int64_t> best_at{-1, -1};
    for (GList* l = list.items; l != nullptr; l = l->next) {
      auto* item = static_cast<SecretItem*>(l->data);
      const auto at = stored_when(item_attributes(item));
      if (at > best_at) {
        best = item;
        best_at = at;
      }
    }
    return best;
  }

  // Whether the default collection is locked. A search in a keyring that was
  // never unlocked finds nothing (its attributes are encrypted), which must not
  // read as "no such profile": the callers ask this when a search came back empty.
  std::variant<bool, StoreError> default_locked(const Call& call, SecretService* service) {
    auto* proxy = G_DBUS_PROXY(service);
    GDBusConnection* connection = g_dbus_proxy_get_connection(proxy);
    GError* error = nullptr;
    VariantPtr alias(g_dbus_connection_call_sync(connection, g_dbus_proxy_get_name(proxy), "/org/freedesktop/secrets",
                                                 "org.freedesktop.Secret.Service", "ReadAlias",
                                                 g_variant_new("(s)", "default"), G_VARIANT_TYPE("(o)"),
                                                 G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, call.cancellable(), &error));
    if (!alias) return fail(call, error, "checking whether the keyring is locked");
    const gchar* path = nullptr;
    g_variant_get(alias.get(), "(&o)", &path);
    if (std::string_view(path) == "/") return false;  // no default keyring at all
    VariantPtr reply(g_dbus_connection_call_sync(
        connection, g_dbus_proxy_get_name(proxy), path, "org.freedesktop.DBus.Properties", "Get",
        g_variant_new("(ss)", "org.freedesktop.Secret.Collection", "Locked"), G_VARIANT_TYPE("(v)"),
        G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, call.cancellable(), &error));
    if (!reply) return fail(call, error, "checking whether the keyring is locked");
    VariantPtr boxed(g_variant_get_child_value(reply.get(), 0));
    VariantPtr locked(g_variant_get_variant(boxed.get()));
    return g_variant_is_of_type(locked.get(), G_VARIANT_TYPE_BOOLEAN) && g_variant_get_boolean(locked.get());
  }

  // For a search that found nothing: the error to answer when that is because
  // the keyring is locked; nullopt when there really is nothing.
  std::optional<StoreError> locked_if_so(const Call& call, SecretService* service) {
    auto locked = default_locked(call, service);
    if (auto* e = std::get_if<StoreError>(&locked)) return *e;
    if (std::get<bool>(locked)) return locked_error();
    return std::nullopt;
  }

  std::optional<StoreError> locked_if_so(const Call& call) {
    auto s = service(call);
    if (auto* e = std::get_if<StoreError>(&s)) return *e;
    return locked_if_so(call, std::get<SecretService*>(s));
  }

  // The key a profile's items hold: the newest item whose secret is a valid
  // key (proto's rule for a key sent to be stored). gnome-keyring killed during
  // a replace can leave the new item without its secret; that is no key, and
  // the item before it is served instead.
  struct ValidKey {
    std::optional<StoredKey> key;
    std::size_t index = 0;           // of the item served, in the items given
    std::vector<bool> empty_secret;  // for the items before it: no secret at all
    bool vanished = false;           // an item went while it was read: search again
  };

  // `items`: newest first.
  std::variant<ValidKey, StoreError> newest_valid_key(const Call& call, SecretService* service,
                                                      const std::vector<FoundItem>& items) {
    ValidKey out;
    for (; out.index < items.size(); ++out.index) {
      const FoundItem& item = items[out.index];
      if (item.locked) return locked_error();
      GError* error = nullptr;
      SecretValue* value =
          secret_service_get_secret_for_dbus_path_sync(service, item.path.c_str(), call.cancellable(), &error);
      if (value == nullptr && error != nullptr && item_vanished(error) && !call.cancelled()) {
        g_error_free(error);
        out.vanished = true;
        return out;
      }
      if (error != nullptr) return fail(call, error, "reading the key");
      gsize length = 0;
      const gchar* bytes = value != nullptr ? secret_value_get(value, &length) : nullptr;
      const std::string_view secret(bytes != nullptr ? bytes : "", bytes != nullptr ? length : 0);
      if (!api_key_problem(secret)) out.key = StoredKey{to_meta(item.attributes, item.created), Secret(secret)};
      if (value != nullptr) secret_value_unref(value);  // libsecret keeps the bytes in its own wiped memory
      if (out.key) return out;
      out.empty_secret.push_back(secret.empty());
    }
    return out;
  }

  // Removes what an interrupted replace left beside the key just served: the
  // items older than it, and the newer ones that hold no secret at all. Never
  // the item served, never a newer item with a secret in it. Best effort: the
  // key is served whether or not this works, and the next read tries again.
  void drop_leftovers(const Call& call, SecretService* service, std::string_view name,
                      const std::vector<FoundItem>& items, const ValidKey& served) {
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const bool leftover = i > served.index || (i < served.index && served.empty_secret[i]);
      if (!leftover || call.cancelled()) continue;
      GError* error = nullptr;
      if (secret_service_delete_item_dbus_path_sync(service, items[i].path.c_str(), call.cancellable(), &error)) {
        ++dropped;
      } else {
        spdlog::warn("keyring: profile '{}': could not remove an item left by a store cut short: {}", name,
                     display_safe(error->message));
        g_error_free(error);
      }
    }
    if (served.index > 0) {
      spdlog::warn("keyring: profile '{}': its newest item held no valid key (a store cut short?); "
                   "served the key stored before it",
                   name);
    }
    if (dropped > 0) {
      spdlog::info("keyring: profile '{}': removed {} item(s) left by a store cut short", name, dropped);
    }
  }

  void reset() {
    service_.reset();
    release_closed();
  }

  // GLib shares one session bus connection per process (g_bus_get, which
  // libsecret always uses) and keeps handing out that one while anything
  // holds it, even once its bus went away: every request would fail "The
  // connection is closed" for good. What holds a closed connection is the
  // callbacks queued to announce its closing, on the main contexts it was
  // made and used in, which no loop runs in this daemon. Run them here (the
  // daemon runs nothing else on either context), so the connection goes and
  // the next secret_service_open_sync() makes a fresh one.
  void release_closed() {
    while (g_main_context_iteration(context_.get(), FALSE)) {
    }
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
  }

  struct MainContextUnref {
    void operator()(GMainContext* c) const { if (c) g_main_context_unref(c); }
  };

  Watchdog watchdog_;
  std::unique_ptr<GMainContext, MainContextUnref> context_{g_main_context_new()};
  GPtr<SecretService> service_;
  bool stale_ = false;  // the last failure: the keyring or the bus went away
};

SecretServiceStore::SecretServiceStore() : impl_(std::make_unique<Impl>()) {}
SecretServiceStore::~SecretServiceStore() = default;

std::optional<StoreError> SecretServiceStore::probe(Deadline deadline) {
  auto probed = impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> std::variant<bool, StoreError> {
    auto s = impl_->service(call);
    if (auto* e = std::get_if<StoreError>(&s)) return *e;
    return true;
  });
  if (auto* e = std::get_if<StoreError>(&probed)) return *e;
  return std::nullopt;
}

StoreResult<std::vector<ProfileMeta>> SecretServiceStore::list(Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<std::vector<ProfileMeta>> {
    // A locked keyring may hide some profiles or all: say so rather than list what shows.
    if (auto e = impl_->locked_if_so(call)) return *e;
    auto found = impl_->search(call, {});
    if (auto* e = std::get_if<StoreError>(&found)) return *e;
    std::map<std::string, ProfileMeta> by_name;
    for (GList* l = std::get<ItemList>(found).items; l != nullptr; l = l->next) {
      auto* item = static_cast<SecretItem*>(l->data);
      ProfileMeta meta = to_meta(item);
      if (!valid_profile_name(meta.name)) continue;
      const auto it = by_name.find(meta.name);
      if (it == by_name.end() || it->second.created_at < meta.created_at) {
        by_name.insert_or_assign(meta.name, std::move(meta));
      }
    }
    std::vector<ProfileMeta> out;
    out.reserve(by_name.size());
    for (auto& [name, meta] : by_name) out.push_back(std::move(meta));
    return out;
  });
}

StoreResult<std::optional<ProfileMeta>> SecretServiceStore::find(std::string_view name, Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<std::optional<ProfileMeta>> {
    auto found = impl_->search(call, name);
    if (auto* e = std::get_if<StoreError>(&found)) return *e;
    SecretItem* item = Impl::newest(std::get<ItemList>(found));
    if (item == nullptr) {
      if (auto e = impl_->locked_if_so(call)) return *e;
      return std::optional<ProfileMeta>{};
    }
    return std::optional<ProfileMeta>{to_meta(item)};
  });
}

StoreResult<std::optional<StoredKey>> SecretServiceStore::load(std::string_view name, Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<std::optional<StoredKey>> {
    auto s = impl_->service(call);
    if (auto* e = std::get_if<StoreError>(&s)) return *e;
    SecretService* service = std::get<SecretService*>(s);
    // An item another program deletes while it is read: search again, a few times at most.
    constexpr int kAttempts = 3;
    for (int attempt = 1;; ++attempt) {
      bool vanished = false;
      auto found = impl_->find_items(call, service, name, vanished);
      if (auto* e = std::get_if<StoreError>(&found)) return *e;
      auto& items = std::get<std::vector<FoundItem>>(found);
      if (vanished && attempt < kAttempts) continue;
      if (items.empty()) {
        if (auto e = impl_->locked_if_so(call, service)) return *e;
        return std::optional<StoredKey>{};
      }
      std::sort(items.begin(), items.end(), [](const FoundItem& a, const FoundItem& b) {
        return stored_when(a.attributes) > stored_when(b.attributes);
      });
      auto read = impl_->newest_valid_key(call, service, items);
      if (auto* e = std::get_if<StoreError>(&read)) return *e;
      auto& newest = std::get<Impl::ValidKey>(read);
      if (newest.vanished && attempt < kAttempts) continue;
      if (!newest.key) return no_valid_secret(name);
      impl_->drop_leftovers(call, service, name, items, newest);
      return std::move(newest.key);
    }
  });
}

StoreResult<bool> SecretServiceStore::put(const ProfileMeta& meta, const Secret& key, Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<bool> {
    auto s = impl_->service(call);
    if (auto* e = std::get_if<StoreError>(&s)) return *e;
    SecretService* service = std::get<SecretService*>(s);

    // Never create or unlock a collection here: both would show a prompt.
    GError* error = nullptr;
    GPtr<SecretCollection> collection(secret_collection_for_alias_sync(
        service, SECRET_COLLECTION_DEFAULT, SECRET_COLLECTION_NONE, call.cancellable(), &error));
    if (error != nullptr) return impl_->fail(call, error, "opening the default keyring");
    if (!collection) {
      return StoreError{StoreError::Kind::unavailable,
                        "the Secret Service has no default keyring; create one (Seahorse: "
                        "File > New > Password Keyring, set as default), or run kosli-credd --backend memory"};
    }
    if (secret_collection_get_locked(collection.get())) return locked_error();

    auto before = impl_->search(call, meta.name);
    if (auto* e = std::get_if<StoreError>(&before)) return *e;

    // Store the new item first and drop the old ones only after: an interruption
    // leaves the old key, the new key, or both, never neither.
    Attributes attrs = to_attributes(meta);
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    attrs[kAttrStoredAt] = std::to_string(std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec);
    const auto table = to_hash_table(attrs);
    const std::string label = "Kosli API key '" + meta.name + "' (" + meta.org + ")";
    SecretValue* value = secret_value_new(key.reveal().data(), static_cast<gssize>(key.size()), "text/plain");
    const gboolean stored = secret_service_store_sync(service, schema(), table.get(), SECRET_COLLECTION_DEFAULT,
                                                      label.c_str(), value, call.cancellable(), &error);
    secret_value_unref(value);
    if (!stored) return impl_->fail(call, error, "storing the key");

    bool replaced = false;
    for (GList* l = std::get<ItemList>(before).items; l != nullptr; l = l->next) {
      auto* item = static_cast<SecretItem*>(l->data);
      replaced = true;
      // An item with identical attributes was updated in place by the store above.
      if (own_attributes(item_attributes(item)) == attrs) continue;
      if (!secret_item_delete_sync(item, call.cancellable(), &error)) {
        // Gone already (a read removed it as a leftover): what this loop is for.
        if (item_vanished(error) && !call.cancelled()) {
          g_clear_error(&error);
          continue;
        }
        return impl_->fail(call, error, "removing the replaced key");
      }
    }
    return replaced;
  });
}

StoreResult<bool> SecretServiceStore::record_verification(std::string_view name, std::string_view fingerprint,
                                                          std::int64_t at, std::string_view result,
                                                          Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<bool> {
    auto found = impl_->search(call, name);
    if (auto* e = std::get_if<StoreError>(&found)) return *e;
    SecretItem* item = Impl::newest(std::get<ItemList>(found));
    if (item == nullptr) return false;
    Attributes attrs = own_attributes(item_attributes(item));
    if (attr(attrs, kAttrFingerprint) != fingerprint) return false;
    if (secret_item_get_locked(item)) return locked_error();
    attrs[kAttrLastVerifiedAt] = std::to_string(at);
    attrs[kAttrLastVerifyResult] = std::string(result);
    const auto table = to_hash_table(attrs);
    GError* error = nullptr;
    if (!secret_item_set_attributes_sync(item, schema(), table.get(), call.cancellable(), &error)) {
      return impl_->fail(call, error, "updating the profile's metadata");
    }
    return true;
  });
}

StoreResult<bool> SecretServiceStore::erase(std::string_view name, Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<bool> {
    auto found = impl_->search(call, name);
    if (auto* e = std::get_if<StoreError>(&found)) return *e;
    bool existed = false;
    for (GList* l = std::get<ItemList>(found).items; l != nullptr; l = l->next) {
      auto* item = static_cast<SecretItem*>(l->data);
      if (secret_item_get_locked(item)) return locked_error();
      GError* error = nullptr;
      if (!secret_item_delete_sync(item, call.cancellable(), &error)) {
        return impl_->fail(call, error, "erasing the key");
      }
      existed = true;
    }
    if (!existed) {
      if (auto e = impl_->locked_if_so(call)) return *e;
    }
    return existed;
  });
}

}  // namespace kosli::daemon
