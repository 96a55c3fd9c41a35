// Keys in the Secret Service (gnome-keyring, KeePassXC, …) through libsecret:
// schema com.kosli.CredentialHelper.ApiKey in the default collection.
//
// Every call carries a deadline: a watchdog cancels the D-Bus call when it runs
// out, so a missing or hung Secret Service gives an error, never a hang. Nothing
// here unlocks a collection or shows a prompt: a locked keyring is an error that
// says how to unlock it.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "daemon/store/store.hpp"

namespace kosli::daemon {

inline constexpr const char* kSecretSchemaName = "com.kosli.CredentialHelper.ApiKey";

// Whether a D-Bus session bus is configured for this process at all
// ($DBUS_SESSION_BUS_ADDRESS, or $XDG_RUNTIME_DIR/bus). Checked before GLib is
// asked, so GLib never tries to autolaunch a bus.
bool session_bus_configured();

class SecretServiceStore final : public Store {
 public:
  SecretServiceStore();
  ~SecretServiceStore() override;

  // Connects and checks the Secret Service answers; an error says why not.
  std::optional<StoreError> probe(Deadline deadline);

  std::string_view backend_name() const override { return "secret-service"; }
  bool persistent() const override { return true; }
  bool may_block() const override { return true; }

  StoreResult<std::vector<ProfileMeta>> list(Deadline deadline) override;
  StoreResult<std::optional<ProfileMeta>> find(std::string_view name, Deadline deadline) override;
  StoreResult<std::optional<StoredKey>> load(std::string_view name, Deadline deadline) override;
  StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline deadline) override;
  StoreResult<bool> erase(std::string_view name, Deadline deadline) override;
  // Updates the item's attributes in place; the secret is not read or rewritten.
  StoreResult<bool> record_verification(std::string_view name, std::string_view fingerprint, std::int64_t at,
                                        std::string_view result, Deadline deadline) override;
  StoreResult<bool> record_expiry(std::string_view name, std::string_view fingerprint, std::int64_t expires_at,
                                  std::string_view source, Deadline deadline) override;

 private:
  // Sets `changes` on the profile's newest item, provided it holds `fingerprint`.
  StoreResult<bool> set_attributes(std::string_view name, std::string_view fingerprint,
                                   const std::vector<std::pair<const char*, std::string>>& changes, Deadline deadline);
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kosli::daemon
