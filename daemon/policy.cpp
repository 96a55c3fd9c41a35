#include "daemon/policy.hpp"

#include <algorithm>

namespace kosli::daemon {

std::optional<std::string> Policy::refuse_token(std::string_view profile, const Peer& peer) const {
  const auto it = config_.profiles.find(profile);
  if (it == config_.profiles.end() || it->second.allowed_clients.empty()) return std::nullopt;
  const auto& allowed = it->second.allowed_clients;
  const std::string setting = "profiles." + std::string(profile) + ".allowed_clients in " + config_.path;
  if (peer.requester.empty()) {
    return "the requesting program (pid " + std::to_string(peer.requester_pid) +
           ") could not be identified, and " + setting + " allows only listed programs";
  }
  if (std::find(allowed.begin(), allowed.end(), peer.requester) != allowed.end()) return std::nullopt;
  return "program " + peer.requester + " may not have a token for profile '" + std::string(profile) +
         "'; add it to " + setting + " to allow it";
}

}  // namespace kosli::daemon
