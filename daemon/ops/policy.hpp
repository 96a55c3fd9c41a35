// Who may do what, past the socket's uid check:
// - Per-profile allowed programs (config: profiles.<name>.allowed_clients)
//   decide every route that reads or changes that profile: its token, store
//   (replace, or create a name that has a list), erase, verify, rotate and
//   reject. Its metadata (GET /v1/profiles[/name]) stays open. Defense in depth
//   against casual exfiltration (a stray script, a postinstall hook calling the
//   socket); not a boundary against malware running as the same user, which
//   can impersonate an allowed program (README, "Security model").
// - Other uids admitted with --allow-uid read (config: allow_uid_access).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "daemon/api/messages.hpp"
#include "daemon/ops/config.hpp"
#include "proto/routes.hpp"

namespace kosli::daemon {

class Policy {
 public:
  Policy() : Policy(Config{}) {}
  explicit Policy(const Config& config);

  // Whether which program asks decides a request on `route` for `profile`:
  // the profile has allowed_clients and the route reads its key or changes it.
  // False at the cost of one comparison when no profile has a list.
  bool guards(Route route, std::string_view profile) const {
    return any_guarded_ && touches_key(route) && guarded(profile);
  }

  // Why `peer` may not make this request (a sentence naming the program or
  // uid, and the setting to change), or nullopt when it may. For a route it
  // guards(), `peer` must be as it is now (peer_now()).
  std::optional<std::string> refuse(Route route, std::string_view profile, const Peer& peer) const;

  // What a rejected credential costs its profile (config: git_erase).
  GitErase on_reject() const { return config_.git_erase; }

  // How many days before a key expires clients warn (config: expiry_warning_days).
  int expiry_warning_days() const { return config_.expiry_warning_days; }

 private:
  static bool touches_key(Route route);
  bool guarded(std::string_view profile) const;
  std::string setting_place() const;

  Config config_;
  uid_t owner_;
  bool any_guarded_ = false;
};

}  // namespace kosli::daemon
