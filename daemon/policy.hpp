// Per-profile allowed programs (config: profiles.<name>.allowed_clients).
// Defense in depth against casual exfiltration (a stray script, a postinstall
// hook calling the socket); not a boundary against malware running as the
// same user, which can impersonate an allowed program.
#pragma once

#include <optional>
#include <string>

#include "daemon/config.hpp"
#include "daemon/router.hpp"

namespace kosli::daemon {

class Policy {
 public:
  Policy() = default;
  explicit Policy(const Config& config) : config_(config) {}

  // Why `peer` may not have a token for `profile` (a sentence naming the
  // program and the setting to change), or nullopt when it may.
  std::optional<std::string> refuse_token(std::string_view profile, const Peer& peer) const;

  // What a rejected credential costs its profile (config: git_erase).
  GitErase on_reject() const { return config_.git_erase; }

  // How many days before a key expires clients warn (config: expiry_warning_days).
  int expiry_warning_days() const { return config_.expiry_warning_days; }

 private:
  Config config_;
};

}  // namespace kosli::daemon
