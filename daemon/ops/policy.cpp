#include "daemon/ops/policy.hpp"

#include <unistd.h>

#include <algorithm>

#include "proto/display.hpp"

namespace kosli::daemon {
namespace {

// What the other uids may do under allow_uid_access "read".
bool reads_only(Route route) {
  switch (route) {
    case Route::health:
    case Route::list_profiles:
    case Route::get_profile:
    case Route::token:
    case Route::metrics:
      return true;
    default:
      return false;
  }
}

// "may not <this> profile 'p'"
std::string_view doing(Route route) {
  switch (route) {
    case Route::token: return "have a token for";
    case Route::put_profile: return "store";
    case Route::delete_profile: return "erase";
    case Route::verify: return "verify";
    case Route::rotate: return "rotate";
    case Route::reject: return "reject the key of";
    default: return "use";
  }
}

std::string_view how_found(RequesterSource source) {
  switch (source) {
    case RequesterSource::peer: return "";
    case RequesterSource::client_parent: return " (which ran kosli-cred)";
    case RequesterSource::client_exec: return " (run by kosli-cred exec)";
  }
  return "";
}

}  // namespace

Policy::Policy(const Config& config) : config_(config), owner_(::geteuid()) {
  any_guarded_ = std::any_of(config_.profiles.begin(), config_.profiles.end(),
                             [](const auto& p) { return !p.second.allowed_clients.empty(); });
}

bool Policy::touches_key(Route route) {
  switch (route) {
    case Route::token:
    case Route::put_profile:
    case Route::delete_profile:
    case Route::verify:
    case Route::rotate:
    case Route::reject:
      return true;
    default:
      return false;
  }
}

bool Policy::guarded(std::string_view profile) const {
  const auto it = config_.profiles.find(profile);
  return it != config_.profiles.end() && !it->second.allowed_clients.empty();
}

std::string Policy::setting_place() const {
  return config_.path.empty() ? "the configuration file (" + default_config_path() + ")" : config_.path;
}

std::optional<std::string> Policy::refuse(Route route, std::string_view profile, const Peer& peer) const {
  if (peer.uid != owner_ && config_.allow_uid_access != UidAccess::manage && !reads_only(route)) {
    return "uid " + std::to_string(peer.uid) + " is admitted to read tokens only; to let the uids admitted "
           "with --allow-uid also store, erase, verify, rotate and reject, set \"allow_uid_access\": \"manage\" "
           "in " + setting_place();
  }
  if (!guards(route, profile)) return std::nullopt;
  const auto& allowed = config_.profiles.find(profile)->second.allowed_clients;
  const std::string setting = "profiles." + std::string(profile) + ".allowed_clients in " + setting_place();
  if (peer.requester.empty()) {
    const std::string who = peer.requester_source == RequesterSource::client_parent
                                ? "the program that ran kosli-cred"
                                : "the requesting program";
    return who + " (pid " + std::to_string(peer.requester_pid) + ") could not be identified, and " + setting +
           " allows only listed programs";
  }
  if (std::find(allowed.begin(), allowed.end(), peer.requester) != allowed.end()) return std::nullopt;
  return "program " + display_safe(peer.requester) + std::string(how_found(peer.requester_source)) +
         " may not " + std::string(doing(route)) + " profile '" + std::string(profile) + "'; add it to " +
         setting + " to allow it";
}

}  // namespace kosli::daemon
