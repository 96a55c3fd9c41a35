// git's credential-helper protocol (git help credential): `key=value` lines on
// stdin up to a blank line or EOF; answers on stdout in the same form. Spoken
// by git and by every tool that reuses `git credential fill`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "client/daemon_client.hpp"
#include "proto/profile.hpp"
#include "proto/secret.hpp"

namespace kosli::client {

// git runs `git-credential-<helper> <operation>`: kosli-cred installed under this
// name (a link) speaks the protocol, as `kosli-cred git-credential <operation>`.
inline constexpr std::string_view kGitHelperName = "git-credential-kosli";
inline bool invoked_as_git_helper(std::string_view argv0) {
  return argv0.substr(argv0.rfind('/') + 1) == kGitHelperName;
}

// All the helper may take (connecting and every request): git waits on it
// with nothing on screen. Room for one keyring call at its deadline
// (limits::kStoreCallDeadline, 5 s), not the 15 s of other commands.
inline constexpr std::chrono::seconds kGitHelperDeadline{6};

// git's own limit on one line of the protocol.
inline constexpr std::size_t kMaxGitCredentialLine = 65535;

// The attributes this helper uses; every other attribute is ignored.
struct GitCredential {
  std::string protocol;
  std::string host;  // with ":port" when not the default
  std::string path;
  std::string username;
  Secret password;
  std::int64_t password_expiry_utc = 0;
  Secret credential;      // authtype's pre-encoded credential (git 2.46 hands back what get answered)
  bool authtype = false;  // the request offers capability[]=authtype (git 2.46 and later)
};

struct GitCredentialError {
  std::string message;
};

// Parses the helper's input. `url=` is expanded into its parts (later lines
// win, as in git); a line without '=', a value with a NUL or a line longer
// than kMaxGitCredentialLine is an error.
std::variant<GitCredential, GitCredentialError> parse_git_credential(std::string_view input);

// The profile git is answered with for `host` (and `org`, when the request
// names one as its username): among the profiles on that scheme and host, the
// one of that org (none if there is none), else $KOSLI_PROFILE, else
// "default", else the first by name. `profiles` must be sorted by name.
std::optional<ProfileMeta> profile_for_git(const std::vector<ProfileMeta>& profiles, std::string_view protocol,
                                           std::string_view host, std::string_view org);

// What `get` answers for `key`. Kosli takes a key as "Bearer <key>" or as
// HTTP Basic with the key as the username and any password, so the plain
// answer is username=<key> and password=<key>: a caller using either works.
// When the request offered capability[]=authtype, the answer is a bearer
// credential instead (authtype=Bearer, credential=<key>), marked ephemeral so
// that no other helper saves it; without the capability, never those fields.
// `expires_at` (Unix seconds, 0 = unknown) becomes password_expiry_utc.
std::string git_answer(bool authtype, std::string_view key, std::int64_t expires_at);

// What `capability` answers: the protocol version and what this helper can do.
inline constexpr std::string_view kGitCapabilities = "version 0\ncapability authtype\n";

// Runs one operation (get, store, erase, capability) with the input on stdin. Unknown
// operations are ignored, as git asks of helpers. stdout carries only the
// protocol's answer; every failure is one sentence on stderr.
// `get` and `capability` only: what bin/kosli-cred serves itself.
int run_git_get(DaemonClient& daemon, std::string_view operation);
// (git_credential_store.cpp: the full command line only.)
int run_git_credential(DaemonClient& daemon, std::string_view operation);

}  // namespace kosli::client
