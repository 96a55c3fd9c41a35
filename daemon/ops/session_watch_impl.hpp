// Inside SessionWatch: the GLib side, shared by session_watch.cpp (the thread,
// logind on the system bus) and session_bus_watch.cpp (the keyring's lock and
// desktop notifications on the session bus). Only those two include it.
#pragma once

#include <cstdint>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gio/gio.h>

#include "daemon/ops/session_watch.hpp"

namespace kosli::daemon {
namespace session_detail {

constexpr const char* kProperties = "org.freedesktop.DBus.Properties";
// How long one question to logind or the keyring may take.
constexpr int kCallTimeoutMs = 3000;

// The error's message, safe for a log line; frees `error`.
std::string error_text(GError* error);
// A connection of our own (not GLib's shared one, which may exit the process
// when its bus goes away), or nullptr with `why` set.
GDBusConnection* open_bus(GBusType type, std::string& why);
// A method call's reply, or nullptr with `why` set.
GVariant* call(GDBusConnection* bus, const char* name, const char* path, const char* interface, const char* method,
               GVariant* args, const char* reply_type, std::string& why);
// An object path out of a "(o)" reply ("" for none or "/"); frees `reply`.
std::string path_of(GVariant* reply);

}  // namespace session_detail

struct SessionWatch::Impl {
  Impl(LockOn on, bool notify, Forget f) : lock_on(on), notify_on(notify), report(std::move(f)) {}

  const LockOn lock_on;
  const bool notify_on;
  const Forget report;
  GMainContext* context = nullptr;
  GMainLoop* loop = nullptr;
  std::thread thread;

  // Touched on the watch's thread only.
  GDBusConnection* system = nullptr;
  GDBusConnection* session = nullptr;
  std::vector<guint> system_signals, session_signals;
  std::string collection;  // the default collection's path
  bool collection_locked = false;
  bool screen_locked = false;  // our session's Lock, or its LockedHint, since the last Unlock or LockedHint false
  bool notify_failing = false;

  mutable std::mutex mutex;
  bool on_screen = false, on_sleep = false, on_keyring = false;
  std::int64_t last_forgot_at = 0;
  std::string last_forgot_reason;

  void forget(ForgetReason reason) {
    {
      std::lock_guard lock(mutex);
      last_forgot_at = static_cast<std::int64_t>(std::time(nullptr));
      last_forgot_reason = reason_name(reason);
    }
    report(reason);
  }

  // Runs `fn` on the watch's thread.
  template <typename Fn>
  void post(Fn fn) {
    auto* task = new Fn(std::move(fn));
    GSource* source = g_idle_source_new();
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
          (*static_cast<Fn*>(data))();
          return G_SOURCE_REMOVE;
        },
        task, [](gpointer data) { delete static_cast<Fn*>(data); });
    g_source_attach(source, context);
    g_source_unref(source);
  }

  void set(bool& flag, bool value) {
    std::lock_guard lock(mutex);
    flag = value;
  }

  guint subscribe(GDBusConnection* bus, const char* sender, const char* interface, const char* member,
                  const char* path, const char* arg0, GDBusSignalCallback callback) {
    return g_dbus_connection_signal_subscribe(bus, sender, interface, member, path, arg0, G_DBUS_SIGNAL_FLAGS_NONE,
                                              callback, this, nullptr);
  }

  void run();
  // logind, on the system bus (session_watch.cpp).
  void watch_system();
  std::string our_session(std::string& why);
  void screen_is(bool locked, bool lock_signal);
  void drop_system();
  // The keyring and notifications, on the session bus (session_bus_watch.cpp).
  void watch_session();
  std::optional<bool> read_locked();
  void ask_locked();
  void keyring_is(bool locked);
  void send(const std::string& summary, const std::string& body);
  void drop_session();
  // A bus went away (it restarted): connect again later.
  void bus_closed(bool is_system);
};

}  // namespace kosli::daemon
