// The session bus half of SessionWatch: the Secret Service's default
// collection becoming locked, and desktop notifications (GLib).
#include <spdlog/spdlog.h>

#include "daemon/ops/session_watch_impl.hpp"
#include "proto/display.hpp"

namespace kosli::daemon {

using namespace session_detail;

namespace {

constexpr const char* kSecrets = "org.freedesktop.secrets";
constexpr const char* kSecretsPath = "/org/freedesktop/secrets";
constexpr const char* kSecretService = "org.freedesktop.Secret.Service";
constexpr const char* kSecretCollection = "org.freedesktop.Secret.Collection";
// How long a desktop notification may take to be accepted.
constexpr int kNotifyTimeoutMs = 5000;

// Text a notification server that reads markup shows as it is.
std::string without_markup(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

void SessionWatch::Impl::watch_session() {
  if (!lock_on.keyring && !notify_on) return;
  std::string why;
  session = open_bus(G_BUS_TYPE_SESSION, why);
  if (session == nullptr) {
    // The store says it when it needs a keyring: this is no news on its own.
    spdlog::debug("no session bus ({}): no desktop notifications, and cached keys are not forgotten when the "
                  "keyring locks",
                  why);
    return;
  }
  g_signal_connect(session, "closed", G_CALLBACK(+[](GDBusConnection*, gboolean, GError*, gpointer self) {
                     static_cast<Impl*>(self)->bus_closed(false);
                   }),
                   this);
  if (!lock_on.keyring) return;
  collection = path_of(call(session, kSecrets, kSecretsPath, kSecretService, "ReadAlias",
                            g_variant_new("(s)", "default"), "(o)", why));
  if (collection.empty()) {
    spdlog::debug("no Secret Service default collection ({}): cached keys are not forgotten when the keyring locks",
                  why.empty() ? "no collection is the default" : why);
    return;
  }
  session_signals.push_back(subscribe(
      session, kSecrets, kProperties, "PropertiesChanged", collection.c_str(), kSecretCollection,
      +[](GDBusConnection*, const gchar*, const gchar*, const gchar*, const gchar*, GVariant* args, gpointer self) {
        if (!g_variant_is_of_type(args, G_VARIANT_TYPE("(sa{sv}as)"))) return;
        GVariant* changed = g_variant_get_child_value(args, 1);
        gboolean locked = FALSE;
        if (g_variant_lookup(changed, "Locked", "b", &locked)) static_cast<Impl*>(self)->keyring_is(locked);
        g_variant_unref(changed);
      }));
  // gnome-keyring also says CollectionChanged: then ask.
  session_signals.push_back(subscribe(
      session, kSecrets, kSecretService, "CollectionChanged", kSecretsPath, collection.c_str(),
      +[](GDBusConnection*, const gchar*, const gchar*, const gchar*, const gchar*, GVariant*, gpointer self) {
        static_cast<Impl*>(self)->ask_locked();
      }));
  collection_locked = read_locked().value_or(false);
  set(on_keyring, true);
}

std::optional<bool> SessionWatch::Impl::read_locked() {
  std::string why;
  GVariant* reply = call(session, kSecrets, collection.c_str(), kProperties, "Get",
                         g_variant_new("(ss)", kSecretCollection, "Locked"), "(v)", why);
  if (reply == nullptr) return std::nullopt;
  GVariant* value = nullptr;
  g_variant_get(reply, "(v)", &value);
  std::optional<bool> locked;
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN)) locked = g_variant_get_boolean(value);
  g_variant_unref(value);
  g_variant_unref(reply);
  return locked;
}

void SessionWatch::Impl::ask_locked() {
  if (session == nullptr) return;
  if (const auto locked = read_locked()) keyring_is(*locked);
}

// Forgets once as the collection goes from unlocked to locked.
void SessionWatch::Impl::keyring_is(bool locked) {
  const bool was = collection_locked;
  collection_locked = locked;
  if (locked && !was) forget(ForgetReason::keyring_locked);
}

void SessionWatch::Impl::send(const std::string& summary, const std::string& body) {
  if (session == nullptr) return;
  // The summary is plain text; a server may read the body as markup.
  const std::string safe_summary = kosli::display_safe(summary);
  const std::string safe_body = without_markup(kosli::display_safe(body));
  g_dbus_connection_call(
      session, "org.freedesktop.Notifications", "/org/freedesktop/Notifications", "org.freedesktop.Notifications",
      "Notify",
      g_variant_new("(susssasa{sv}i)", "kosli-credd", 0U, "dialog-password", safe_summary.c_str(), safe_body.c_str(), nullptr,
                    nullptr, -1),
      G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, kNotifyTimeoutMs, nullptr,
      +[](GObject* bus, GAsyncResult* result, gpointer self) {
        auto* impl = static_cast<Impl*>(self);
        GError* error = nullptr;
        GVariant* reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(bus), result, &error);
        if (reply != nullptr) {
          g_variant_unref(reply);
          impl->notify_failing = false;
          return;
        }
        // Said once until one gets through: no notification server is no error.
        if (!impl->notify_failing) spdlog::info("no desktop notification shown: {}", error_text(error));
        else g_clear_error(&error);
        impl->notify_failing = true;
      },
      this);
}

void SessionWatch::Impl::drop_session() {
  for (const guint id : session_signals) g_dbus_connection_signal_unsubscribe(session, id);
  session_signals.clear();
  if (session != nullptr) g_signal_handlers_disconnect_by_data(session, this);
  g_clear_object(&session);
  set(on_keyring, false);
}

}  // namespace kosli::daemon
