// `kosli-cred git-setup [--global]`: makes git ask kosli, and only kosli, for
// the credentials of every Kosli host, so that no other helper configured for
// all hosts (credential.helper=store writes keys to ~/.git-credentials in
// plaintext) is handed a key to keep.
#pragma once

#include <string>
#include <vector>

#include "client/daemon_client.hpp"
#include "proto/profile.hpp"

namespace kosli::client {

// For Kosli's EU and US hosts and every profile's host, writes through
// `git config` (the current repository's configuration, or with `global` the
// user's) an empty `credential.<url>.helper`, which empties git's list of
// helpers for that URL, then `!exec '<bindir>/git-credential-kosli'`. Running it again leaves the same
// configuration. Says on stdout what it wrote; a git that fails is exit 1.
int cmd_git_setup(DaemonClient& daemon, bool global);

// The helper git-setup writes: `!exec '<bindir>/git-credential-kosli'`.
std::string git_helper_command();
// scheme://authority of every host git should ask kosli about: EU, US, then
// each of `profiles`' hosts, once each.
std::vector<std::string> kosli_git_urls(const std::vector<ProfileMeta>& profiles);

}  // namespace kosli::client
