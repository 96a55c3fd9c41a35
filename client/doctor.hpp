// `kosli-cred doctor [--json] [--online]`: checks every link a user's setup
// depends on (the socket, the daemon, the keyring, the configuration, the
// systemd user units, each profile's expiry and last verification, git's
// credential helpers for Kosli hosts; with --online each key with Kosli) and,
// for each that is broken, says what to type. It never starts a daemon.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "client/daemon_client.hpp"

namespace kosli::client {

// One finding. Every text in it is display_safe already.
struct DoctorCheck {
  enum class Status { ok, warn, fail, skip };
  std::string check;  // "socket", "daemon", "expiry:me", …
  Status status = Status::ok;
  std::string detail;
  std::string fix;  // a command to type, or a sentence when there is none; empty when nothing to do
};

// Exit 0 when no check FAILed (warnings and skips allowed), 1 otherwise. With
// `json`, stdout is one JSON array of {check, status, detail, fix} whatever fails.
int cmd_doctor(DaemonClient& daemon, std::optional<uid_t> daemon_uid, bool json, bool online);

// The checks that ask neither the daemon nor the socket (client/doctor_system.cpp).
// Whether `systemctl --user` answers here; the units' checks, or one skip saying why.
bool systemd_user_answers();
std::vector<DoctorCheck> systemd_checks(const std::string& socket_path);
// kosli-credd --check-config on the configuration a daemon started now would read.
DoctorCheck config_check();
// git's credential helpers for every Kosli host `urls` names (scheme://authority).
DoctorCheck git_check(const std::vector<std::string>& urls);

}  // namespace kosli::client
