// Starting kosli-credd on demand, as git's credential cache does: when nobody
// answers on the socket, the client starts the daemon fully detached (its own
// session, stdin /dev/null, stderr to a log file) and waits for its "ok"
// readiness line (proto/limits.hpp's kReadyLine) on a pipe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kosli::client {

// "0" turns on-demand start off (a daemon systemd or CI manages; tests).
inline constexpr std::string_view kAutostartEnv = "KOSLI_CRED_AUTOSTART";
// The kosli-credd to start; else the one beside kosli-cred, else one on PATH.
inline constexpr std::string_view kCreddEnv = "KOSLI_CREDD";
// A daemon started on demand exits after this long with no connection and no
// cached key (its --idle-exit).
inline constexpr std::chrono::seconds kOnDemandIdleExit{600};
// How long the client waits for the readiness line. Start-up may spend up to 3 s
// asking whether a Secret Service answers.
inline constexpr std::chrono::seconds kStartDeadline{10};

bool autostart_enabled();

// Where a daemon started on demand writes its log:
// $XDG_STATE_HOME/kosli-cred/kosli-credd.log (~/.local/state without it).
std::string on_demand_log_path();

// Starts kosli-credd serving `socket_path` and waits until it says it serves.
// nullopt once it does; else a sentence saying why it did not.
std::optional<std::string> start_daemon(const std::string& socket_path);

}  // namespace kosli::client
