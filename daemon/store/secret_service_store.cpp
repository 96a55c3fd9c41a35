#include "daemon/store/secret_service_store.hpp"

#include "daemon/store/secret_service_impl.hpp"

namespace kosli::daemon {

bool session_bus_configured() {
  if (const char* addr = std::getenv("DBUS_SESSION_BUS_ADDRESS"); addr != nullptr && *addr != '\0') {
    return true;
  }
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || *runtime == '\0') return false;
  struct stat st {};
  return ::stat((std::string(runtime) + "/bus").c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}
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
  return set_attributes(name, fingerprint,
                        {{kAttrLastVerifiedAt, std::to_string(at)}, {kAttrLastVerifyResult, std::string(result)}},
                        deadline);
}

StoreResult<bool> SecretServiceStore::record_expiry(std::string_view name, std::string_view fingerprint,
                                                    std::int64_t expires_at, std::string_view source,
                                                    Deadline deadline) {
  return set_attributes(name, fingerprint,
                        {{kAttrExpiresAt, std::to_string(expires_at)}, {kAttrExpirySource, std::string(source)}},
                        deadline);
}

StoreResult<bool> SecretServiceStore::set_attributes(
    std::string_view name, std::string_view fingerprint,
    const std::vector<std::pair<const char*, std::string>>& changes, Deadline deadline) {
  return impl_->once_more_if_stale(deadline, [&](Impl::Call& call) -> StoreResult<bool> {
    auto found = impl_->search(call, name);
    if (auto* e = std::get_if<StoreError>(&found)) return *e;
    SecretItem* item = Impl::newest(std::get<ItemList>(found));
    if (item == nullptr) return false;
    Attributes attrs = own_attributes(item_attributes(item));
    if (attr(attrs, kAttrFingerprint) != fingerprint) return false;
    if (secret_item_get_locked(item)) return locked_error();
    for (const auto& [key, value] : changes) attrs[key] = value;
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
