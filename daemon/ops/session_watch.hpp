// The desktop session, seen from the daemon: logind's Lock of our session and
// PrepareForSleep(true) of the machine (system bus), the Secret Service's
// default collection becoming locked (session bus), each reported so the daemon
// forgets its cached keys; and desktop notifications
// (org.freedesktop.Notifications, session bus).
//
// All D-Bus work runs on a thread of its own with its own GMainContext (the
// Secret Service store iterates its own; the default context is nobody's).
// This header names no GLib type: session_watch.cpp and session_bus_watch.cpp
// (with session_watch_impl.hpp) are the only files that use GLib here, and
// session_watch_none.cpp stands in for both in a build without it.
// Where there is no system bus, no logind, no keyring or no notification server,
// that part does nothing (one log line at most) and nothing fails.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/ops/lock_on.hpp"
#include "proto/answers.hpp"

namespace kosli::daemon {

enum class ForgetReason { screen_locked, sleep, keyring_locked };

// "screen_locked", "sleep", "keyring_locked": the audit detail and status's reason.
inline std::string_view reason_name(ForgetReason reason) {
  switch (reason) {
    case ForgetReason::screen_locked: return "screen_locked";
    case ForgetReason::sleep: return "sleep";
    case ForgetReason::keyring_locked: return "keyring_locked";
  }
  return "unknown";
}

class SessionWatch {
 public:
  // Called on the watch's own thread: post the work to the daemon's loop.
  using Forget = std::function<void(ForgetReason)>;

  // Subscribes to what `lock_on` asks for, in the background. `notify`:
  // whether notify() sends anything.
  SessionWatch(LockOn lock_on, bool notify, Forget forget);
  ~SessionWatch();  // unsubscribes and joins the thread

  SessionWatch(const SessionWatch&) = delete;
  SessionWatch& operator=(const SessionWatch&) = delete;

  // What is subscribed now ("screen", "sleep", "keyring", in that order),
  // whether notifications are on, and the last time it reported a forget.
  kosli::SessionHealth health() const;

  // A desktop notification, sent from the watch's thread; returns at once.
  // Nothing happens when notifications are off or no server answers.
  void notify(std::string summary, std::string body);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kosli::daemon
