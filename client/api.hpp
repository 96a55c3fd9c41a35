// kosli-credd's API as the client calls it: one function per route, in the
// spirit of OpenSSH's authfd.c. Each sends its route (method, target and
// deadline come from proto/routes.hpp), reads the answer with proto's codec,
// and throws CliError (client/cli_error.hpp) for an error or an answer it
// cannot read. Commands call these; none spells a method, a path or a field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/daemon_client.hpp"
#include "proto/answers.hpp"
#include "proto/profile.hpp"

namespace kosli::client::api {

// An answer read into its struct, and the document it came as (what --json prints).
template <class T>
struct Answer {
  T value;
  nlohmann::json json;
};

// The profile; CliError (exit 1) when this client could not read it.
ProfileMeta require_profile(std::optional<ProfileMeta> meta);

// GET /v1/profiles/{name}/token. What is not a Kosli API key is never handed
// on as one: exit 1. `raw`, when given, receives the answer as it came.
TokenResponse token(DaemonClient& daemon, const std::string& profile, std::string* raw = nullptr);

// PUT /v1/profiles/{name}: the profile as stored, and whether it is new (201)
// rather than replaced (200).
struct Stored {
  ProfileMeta profile;
  bool created = false;
};
Stored put_profile(DaemonClient& daemon, const std::string& profile, const PutProfileRequest& request);

// GET /v1/profiles/{name}. The value is nullopt when this client cannot read the
// profile (--json prints it all the same).
Answer<std::optional<ProfileMeta>> show(DaemonClient& daemon, const std::string& profile);
// GET /v1/profiles. Items this client cannot read are counted (ListAnswer::unreadable).
Answer<ListAnswer> list(DaemonClient& daemon);
// The same, for git's credential helper: the profiles it can read, none when
// the answer is not a list.
std::vector<ProfileMeta> readable_profiles(DaemonClient& daemon);
// DELETE /v1/profiles/{name}
void erase(DaemonClient& daemon, const std::string& profile);
// POST /v1/profiles/{name}/verify (the long deadline: the daemon asks Kosli).
Answer<VerifyAnswer> verify(DaemonClient& daemon, const std::string& profile);
// POST /v1/profiles/{name}/rotate (the long deadline).
Answer<RotateAnswer> rotate(DaemonClient& daemon, const std::string& profile, const RotateRequest& request);
// POST /v1/profiles/{name}/reject: git saw the profile's key refused.
void reject(DaemonClient& daemon, const std::string& profile);
// GET /v1/health: what `kosli-cred status` shows.
Answer<HealthAnswer> health(DaemonClient& daemon);
// POST /v1/lock: the daemon forgets every cached key.
void lock(DaemonClient& daemon);

}  // namespace kosli::client::api
