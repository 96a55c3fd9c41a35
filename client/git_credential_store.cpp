// git's `store` and `erase` (approve, reject): the part of the helper that
// changes profiles, in the full command line only. bin/kosli-cred serves `get`
// and `capability` (git_credential.cpp) and hands these over, so what they
// need (OpenSSL's SHA-256, for a key's fingerprint) stays out of it.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "client/api.hpp"
#include "client/cli_error.hpp"
#include "client/git_credential.hpp"
#include "client/git_credential_detail.hpp"
#include "proto/fingerprint.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/host.hpp"
#include "proto/profile.hpp"

namespace kosli::client {
namespace {

using namespace git_detail;

// A profile name for a new org on a host: "<org>-eu", "<org>-us" or "<org>-<host>".
std::string new_profile_name(const std::string& org, const std::string& host) {
  std::string region = host == host_authority(kEuHost) ? "eu" : host == host_authority(kUsHost) ? "us" : host;
  std::string name = lower(org) + "-" + lower(region);
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '-';
  }
  name.resize(std::min<std::size_t>(name.size(), 64));
  return name;
}

// The profile on the request's host that holds the request's password: a
// credential this helper answered, whatever username it came back with. Known
// by the key's fingerprint in the list, so no key is asked for (and no person
// asked about a "confirm" profile) when git hands its answer back.
std::optional<ProfileMeta> holder_of(const std::vector<ProfileMeta>& profiles, const GitCredential& c) {
  const Secret& key = c.password.empty() ? c.credential : c.password;
  if (key.empty()) return std::nullopt;
  const std::string held = fingerprint(key);
  for (const auto& p : profiles) {
    if (serves(p, c) && !p.fingerprint.empty() && p.fingerprint == held) return p;
  }
  return std::nullopt;
}

int store(DaemonClient& daemon, const GitCredential& c) {
  if (lower(c.protocol) != "https" || c.host.empty() || c.password.empty()) return exit_code::ok;
  const std::string host = lower(c.host);
  const auto profiles = list_profiles(daemon);
  const bool used = std::any_of(profiles.begin(), profiles.end(), [&](const auto& p) { return serves(p, c); });
  if (!used && host != host_authority(kEuHost) && host != host_authority(kUsHost)) {
    if (looks_like_kosli(host)) {
      std::fprintf(stderr,
                   "git-credential-kosli: stored nothing: no profile uses https://%s; to keep a key for it, run "
                   "kosli-cred store --profile NAME --org ORG --host https://%s\n",
                   display_safe(host).c_str(), display_safe(host).c_str());
    }
    return exit_code::ok;
  }
  // git approves every credential that worked, ours included: nothing to do then.
  if (holder_of(profiles, c)) return exit_code::ok;
  if (c.username.empty() || c.username == c.password.reveal()) {
    // Kosli's Basic form names no org: which profile it would be is unknown.
    std::fprintf(stderr,
                 "git-credential-kosli: stored nothing for https://%s: the credential names no org (git's "
                 "username=<org>); store the key with kosli-cred store --org ORG\n",
                 display_safe(host).c_str());
    return exit_code::ok;
  }

  PutProfileRequest put;
  std::string name;
  if (const auto existing = choose(profiles, c)) {
    name = existing->name;
    put.kind = existing->kind;
    put.description = existing->description;
    put.service_account = existing->service_account;
    put.key_id = existing->key_id;
  } else {
    name = new_profile_name(c.username, host);
  }
  if (auto problem = profile_name_problem(name)) throw CliError(exit_code::usage, "cannot name a profile for org " + c.username);
  put.org = c.username;
  put.host = "https://" + host;
  put.expires_at = c.password_expiry_utc;
  put.api_key = c.password.clone();
  api::put_profile(daemon, name, put);
  return exit_code::ok;
}

int erase(DaemonClient& daemon, const GitCredential& c) {
  if (lower(c.protocol) != "https" || c.host.empty()) return exit_code::ok;
  const auto profiles = list_profiles(daemon);
  // Only the key git saw rejected (its password, or git 2.46's bearer
  // credential): another helper's is not ours to judge. Without either, the
  // profile git would be answered with.
  const auto profile =
      c.password.empty() && c.credential.empty() ? choose(profiles, c) : holder_of(profiles, c);
  if (!profile) return exit_code::ok;
  api::reject(daemon, profile->name);
  return exit_code::ok;
}

}  // namespace

int run_git_credential(DaemonClient& daemon, std::string_view operation) {
  if (operation == "capability" || operation == "get") return run_git_get(daemon, operation);
  if (operation != "store" && operation != "erase") return exit_code::ok;
  const GitCredential c = read_request(daemon);
  if (operation == "store") return store(daemon, c);
  return erase(daemon, c);
}

}  // namespace kosli::client
