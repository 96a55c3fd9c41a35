// What git's `get` (git_credential.cpp, in both programs) and `store`/`erase`
// (git_credential_store.cpp, in the full command line only) share.
#pragma once

#include <string_view>
#include <optional>
#include <vector>

#include "client/daemon_client.hpp"
#include "client/git_credential.hpp"
#include "proto/profile.hpp"

namespace kosli::client::git_detail {

// The profiles the daemon keeps, metadata only.
std::vector<ProfileMeta> list_profiles(DaemonClient& daemon);
// Whether a profile's host is the one git asks about (scheme and authority).
bool serves(const ProfileMeta& meta, const GitCredential& c);
// The profile git's request is answered with (profile_for_git).
std::optional<ProfileMeta> choose(const std::vector<ProfileMeta>& profiles, const GitCredential& c);
// Whether a host no profile uses is plainly meant to be Kosli's (a "kosli" label).
bool looks_like_kosli(std::string_view host);
// Reads and parses git's request from stdin, within git's short bound; a bad one throws.
GitCredential read_request(DaemonClient& daemon);

}  // namespace kosli::client::git_detail
