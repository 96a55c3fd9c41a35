// The watch's thread and logind (system bus); see session_watch.hpp. With
// session_bus_watch.cpp, the only GLib code of daemon/ops.
#include "daemon/ops/session_watch.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "daemon/ops/session_watch_impl.hpp"
#include "proto/display.hpp"

namespace kosli::daemon {

using namespace session_detail;

namespace {

constexpr const char* kLogind = "org.freedesktop.login1";
constexpr const char* kLogindPath = "/org/freedesktop/login1";
constexpr const char* kLogindManager = "org.freedesktop.login1.Manager";
constexpr const char* kLogindSession = "org.freedesktop.login1.Session";
// After a bus closes (it restarted), how long before connecting again.
constexpr guint kReconnectSeconds = 30;

}  // namespace

std::string session_detail::error_text(GError* error) {
  std::string text = error != nullptr ? kosli::display_safe(error->message) : std::string("unknown error");
  g_clear_error(&error);
  return text;
}

GDBusConnection* session_detail::open_bus(GBusType type, std::string& why) {
  if (type == G_BUS_TYPE_SESSION && std::getenv("DBUS_SESSION_BUS_ADDRESS") == nullptr) {
    // Not GLib's fallback: it may start a bus of its own (dbus-launch).
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (runtime == nullptr || !g_file_test((std::string(runtime) + "/bus").c_str(), G_FILE_TEST_EXISTS)) {
      why = "DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus";
      return nullptr;
    }
  }
  GError* error = nullptr;
  gchar* address = g_dbus_address_get_for_bus_sync(type, nullptr, &error);
  if (address == nullptr) {
    why = error_text(error);
    return nullptr;
  }
  GDBusConnection* bus = g_dbus_connection_new_for_address_sync(
      address,
      static_cast<GDBusConnectionFlags>(G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                        G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION),
      nullptr, nullptr, &error);
  g_free(address);
  if (bus == nullptr) {
    why = error_text(error);
    return nullptr;
  }
  g_dbus_connection_set_exit_on_close(bus, FALSE);
  return bus;
}

GVariant* session_detail::call(GDBusConnection* bus, const char* name, const char* path, const char* interface, const char* method,
                               GVariant* args, const char* reply_type, std::string& why) {
  GError* error = nullptr;
  GVariant* reply = g_dbus_connection_call_sync(bus, name, path, interface, method, args,
                                                G_VARIANT_TYPE(reply_type), G_DBUS_CALL_FLAGS_NO_AUTO_START,
                                                kCallTimeoutMs, nullptr, &error);
  if (reply == nullptr) why = error_text(error);
  return reply;
}

std::string session_detail::path_of(GVariant* reply) {
  if (reply == nullptr) return {};
  const gchar* path = nullptr;
  g_variant_get(reply, "(&o)", &path);
  std::string out = path != nullptr && std::string_view(path) != "/" ? path : "";
  g_variant_unref(reply);
  return out;
}



void SessionWatch::Impl::run() {
  g_main_context_push_thread_default(context);
  watch_system();
  watch_session();
  g_main_loop_run(loop);
  drop_system();
  drop_session();
  g_main_context_pop_thread_default(context);
}

void SessionWatch::Impl::watch_system() {
  if (!lock_on.screen && !lock_on.sleep) return;
  std::string why;
  system = open_bus(G_BUS_TYPE_SYSTEM, why);
  if (system == nullptr) {
    spdlog::info("no system bus ({}): cached keys are not forgotten on screen lock or sleep", why);
    return;
  }
  g_signal_connect(system, "closed", G_CALLBACK(+[](GDBusConnection*, gboolean, GError*, gpointer self) {
                     static_cast<Impl*>(self)->bus_closed(true);
                   }),
                   this);
  GVariant* owned = call(system, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "NameHasOwner", g_variant_new("(s)", kLogind), "(b)", why);
  gboolean has_owner = FALSE;
  if (owned != nullptr) {
    g_variant_get(owned, "(b)", &has_owner);
    g_variant_unref(owned);
  }
  if (!has_owner) {
    spdlog::info("no logind on the system bus: cached keys are not forgotten on screen lock or sleep");
    return;
  }
  if (lock_on.sleep) {
    system_signals.push_back(subscribe(system, kLogind, kLogindManager, "PrepareForSleep", kLogindPath, nullptr,
                                       +[](GDBusConnection*, const gchar*, const gchar*, const gchar*, const gchar*,
                                           GVariant* args, gpointer self) {
                                         gboolean going = FALSE;
                                         if (g_variant_is_of_type(args, G_VARIANT_TYPE("(b)"))) {
                                           g_variant_get(args, "(b)", &going);
                                         }
                                         if (going) static_cast<Impl*>(self)->forget(ForgetReason::sleep);
                                       }));
  }
  bool screen = false;
  if (lock_on.screen) {
    const std::string path = our_session(why);
    if (path.empty()) {
      spdlog::info("logind knows no session of this process or user ({}): cached keys are not forgotten on "
                   "screen lock",
                   why);
    } else {
      // logind's Lock (loginctl lock-session), and the LockedHint desktops'
      // own lockers (GNOME, KDE) set on the session instead; Unlock and
      // LockedHint false end the lock.
      for (const char* member : {"Lock", "Unlock"}) {
        system_signals.push_back(subscribe(system, kLogind, kLogindSession, member, path.c_str(), nullptr,
                                           +[](GDBusConnection*, const gchar*, const gchar*, const gchar*,
                                               const gchar* signal, GVariant*, gpointer self) {
                                             const bool lock = std::string_view(signal) == "Lock";
                                             static_cast<Impl*>(self)->screen_is(lock, lock);
                                           }));
      }
      system_signals.push_back(subscribe(
          system, kLogind, kProperties, "PropertiesChanged", path.c_str(), kLogindSession,
          +[](GDBusConnection*, const gchar*, const gchar*, const gchar*, const gchar*, GVariant* args,
              gpointer self) {
            if (!g_variant_is_of_type(args, G_VARIANT_TYPE("(sa{sv}as)"))) return;
            GVariant* changed = g_variant_get_child_value(args, 1);
            gboolean locked = FALSE;
            if (g_variant_lookup(changed, "LockedHint", "b", &locked)) static_cast<Impl*>(self)->screen_is(locked, false);
            g_variant_unref(changed);
          }));
      screen = true;
      spdlog::info("cached keys are forgotten when the session {} locks", kosli::display_safe(path));
    }
  }
  // The bus has our match rules once it answers a later call: only then say so.
  GVariant* id = call(system, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                      nullptr, "(s)", why);
  if (id != nullptr) g_variant_unref(id);
  set(on_sleep, lock_on.sleep);
  set(on_screen, screen);
}

// Logind's Lock signal forgets each time (it asks for a lock); LockedHint
// becoming true forgets once as the session goes from unlocked to locked, so a
// Lock followed by the locker's LockedHint true is one forget, not two.
void SessionWatch::Impl::screen_is(bool locked, bool lock_signal) {
  const bool was = screen_locked;
  screen_locked = locked;
  if (locked && (lock_signal || !was)) forget(ForgetReason::screen_locked);
}

// The session whose Lock we follow: ours, as logind finds it (by pid, then
// $XDG_SESSION_ID); outside any session (systemd --user) the user's display
// session, the one their screen locker locks.
std::string SessionWatch::Impl::our_session(std::string& why) {
  std::string path = path_of(call(system, kLogind, kLogindPath, kLogindManager, "GetSessionByPID",
                                  g_variant_new("(u)", static_cast<guint32>(::getpid())), "(o)", why));
  if (!path.empty()) return path;
  if (const char* id = std::getenv("XDG_SESSION_ID"); id != nullptr && *id != '\0') {
    path = path_of(call(system, kLogind, kLogindPath, kLogindManager, "GetSession", g_variant_new("(s)", id), "(o)",
                        why));
    if (!path.empty()) return path;
  }
  const std::string user = path_of(call(system, kLogind, kLogindPath, kLogindManager, "GetUser",
                                        g_variant_new("(u)", static_cast<guint32>(::getuid())), "(o)", why));
  if (user.empty()) return {};
  GVariant* reply = call(system, kLogind, user.c_str(), kProperties, "Get",
                         g_variant_new("(ss)", "org.freedesktop.login1.User", "Display"), "(v)", why);
  if (reply == nullptr) return {};
  GVariant* value = nullptr;
  g_variant_get(reply, "(v)", &value);
  if (g_variant_is_of_type(value, G_VARIANT_TYPE("(so)"))) {
    const gchar* display = nullptr;
    g_variant_get(value, "(&s&o)", nullptr, &display);
    if (display != nullptr && std::string_view(display) != "/") path = display;
  }
  g_variant_unref(value);
  g_variant_unref(reply);
  if (path.empty()) why = "the user has no display session";
  return path;
}

void SessionWatch::Impl::drop_system() {
  for (const guint id : system_signals) g_dbus_connection_signal_unsubscribe(system, id);
  system_signals.clear();
  if (system != nullptr) g_signal_handlers_disconnect_by_data(system, this);
  g_clear_object(&system);
  screen_locked = false;
  set(on_screen, false);
  set(on_sleep, false);
}

void SessionWatch::Impl::bus_closed(bool is_system) {
  spdlog::warn("the {} bus closed; connecting again in {} s", is_system ? "system" : "session", kReconnectSeconds);
  post([this, is_system] { is_system ? drop_system() : drop_session(); });
  GSource* later = g_timeout_source_new_seconds(kReconnectSeconds);
  g_source_set_callback(
      later,
      is_system ? +[](gpointer self) -> gboolean {
        static_cast<Impl*>(self)->watch_system();
        return G_SOURCE_REMOVE;
      }
                : +[](gpointer self) -> gboolean {
                    static_cast<Impl*>(self)->watch_session();
                    return G_SOURCE_REMOVE;
                  },
      this, nullptr);
  g_source_attach(later, context);
  g_source_unref(later);
}

SessionWatch::SessionWatch(LockOn lock_on, bool notify, Forget forget)
    : impl_(std::make_unique<Impl>(lock_on, notify, std::move(forget))) {
  impl_->context = g_main_context_new();
  impl_->loop = g_main_loop_new(impl_->context, FALSE);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

SessionWatch::~SessionWatch() {
  impl_->post([loop = impl_->loop] { g_main_loop_quit(loop); });
  impl_->thread.join();
  g_main_loop_unref(impl_->loop);
  g_main_context_unref(impl_->context);
}

kosli::SessionHealth SessionWatch::health() const {
  std::lock_guard lock(impl_->mutex);
  kosli::SessionHealth out;
  if (impl_->on_screen) out.forget_on.emplace_back("screen");
  if (impl_->on_sleep) out.forget_on.emplace_back("sleep");
  if (impl_->on_keyring) out.forget_on.emplace_back("keyring");
  out.notify = impl_->notify_on;
  out.last_forgot_at = impl_->last_forgot_at;
  out.last_forgot_reason = impl_->last_forgot_reason;
  return out;
}

void SessionWatch::notify(std::string summary, std::string body) {
  if (!impl_->notify_on) return;
  impl_->post([impl = impl_.get(), summary = std::move(summary), body = std::move(body)] { impl->send(summary, body); });
}

}  // namespace kosli::daemon
