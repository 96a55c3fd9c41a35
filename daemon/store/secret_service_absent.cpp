// SecretServiceStore in a build without GLib (KOSLI_WITH_SECRET_SERVICE off:
// the self-contained CI build). It never answers, so `--backend secret-service`
// fails with this sentence and `--backend auto` falls back to memory.
#include "daemon/store/secret_service_store.hpp"

namespace kosli::daemon {

namespace {

StoreError absent() {
  return {StoreError::Kind::unavailable,
          "this kosli-credd is the self-contained build, without Secret Service support: it keeps keys in "
          "memory only (--backend memory)"};
}

}  // namespace

class SecretServiceStore::Impl {};

bool session_bus_configured() { return false; }

SecretServiceStore::SecretServiceStore() = default;
SecretServiceStore::~SecretServiceStore() = default;

std::optional<StoreError> SecretServiceStore::probe(Deadline) { return absent(); }

StoreResult<std::vector<ProfileMeta>> SecretServiceStore::list(Deadline) { return absent(); }
StoreResult<std::optional<ProfileMeta>> SecretServiceStore::find(std::string_view, Deadline) { return absent(); }
StoreResult<std::optional<StoredKey>> SecretServiceStore::load(std::string_view, Deadline) { return absent(); }
StoreResult<bool> SecretServiceStore::put(const ProfileMeta&, const Secret&, Deadline) { return absent(); }
StoreResult<bool> SecretServiceStore::erase(std::string_view, Deadline) { return absent(); }
StoreResult<bool> SecretServiceStore::record_verification(std::string_view, std::string_view, std::int64_t,
                                                          std::string_view, Deadline) {
  return absent();
}
StoreResult<bool> SecretServiceStore::record_expiry(std::string_view, std::string_view, std::int64_t,
                                                    std::string_view, Deadline) {
  return absent();
}

}  // namespace kosli::daemon
