// The configuration of the workstation session: "lock_on", what makes the
// daemon forget its cached keys, and "notify", desktop notifications.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kosli::daemon {

// "lock_on": a list among "screen", "sleep" and "keyring"; all three by default, [] none.
struct LockOn {
  bool screen = true;   // "screen": logind's Lock of the daemon's session
  bool sleep = true;    // "sleep": logind's PrepareForSleep(true)
  bool keyring = true;  // "keyring": the Secret Service's default collection locked
};

// Reads "lock_on" into `out`; what is wrong with it otherwise (a sentence to
// follow "'lock_on' ").
std::optional<std::string> parse_lock_on(const nlohmann::json& value, LockOn& out);

}  // namespace kosli::daemon
