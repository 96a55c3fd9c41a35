// Private to daemon/store/secret_service_store.cpp: the session with the
// Secret Service (its connection, searches, locks and deadlines).
#pragma once

#include "daemon/store/secret_service_detail.hpp"
#include "daemon/store/session_bus.hpp"
#include "proto/display.hpp"

namespace kosli::daemon {

using namespace secret_service_detail;

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

}  // namespace kosli::daemon
