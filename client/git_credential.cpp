#include "client/git_credential.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "client/api.hpp"
#include "client/cli_error.hpp"
#include "client/git_credential_detail.hpp"
#include "client/token_io.hpp"
#include "proto/errors.hpp"
#include "proto/display.hpp"
#include "proto/host.hpp"
#include "proto/profile.hpp"

namespace kosli::client::git_detail {

// All the input a helper reads: more than any honest request.
constexpr std::size_t kMaxGitCredentialInput = 1024 * 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// url=<protocol>://[<user>[:<password>]@]<host>[/<path>], as git splits it.
// Like git, refuses a component that decodes to a newline (or a NUL): either
// would break the lines of the answer.
std::optional<GitCredentialError> apply_url(std::string_view url, GitCredential& c) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  c.protocol = std::string(url.substr(0, sep));
  std::string_view rest = url.substr(sep + 3);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  c.path = slash == std::string_view::npos ? std::string() : percent_decode(rest.substr(slash + 1));
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view user_info = authority.substr(0, at);
    c.username = percent_decode(user_info.substr(0, user_info.find(':')));
    authority = authority.substr(at + 1);
  }
  c.host = percent_decode(authority);
  for (const auto& [name, value] : {std::pair{"username", &c.username}, {"host", &c.host}, {"path", &c.path}}) {
    if (value->find_first_of(std::string_view("\n\0", 2)) != std::string::npos) {
      return GitCredentialError{std::string("the url has a newline or NUL in its ") + name + " (percent-encoded)"};
    }
  }
  return std::nullopt;
}

// The profiles the daemon keeps, metadata only.
std::vector<ProfileMeta> list_profiles(DaemonClient& daemon) { return api::readable_profiles(daemon); }

// Whether a profile's host is the one git asks about (scheme and authority).
bool serves(std::string_view base_url, std::string_view protocol, std::string_view host) {
  const auto sep = base_url.find("://");
  return sep != std::string_view::npos && base_url.substr(0, sep) == lower(protocol) &&
         host_authority(base_url) == lower(host);
}

bool serves(const ProfileMeta& meta, std::string_view protocol, std::string_view host) {
  return serves(meta.host, protocol, host);
}

bool serves(const ProfileMeta& meta, const GitCredential& c) { return serves(meta, c.protocol, c.host); }

std::optional<ProfileMeta> choose(const std::vector<ProfileMeta>& profiles, const GitCredential& c) {
  return profile_for_git(profiles, c.protocol, c.host, c.username);
}


// Whether a host no profile uses is plainly meant to be Kosli's (a label
// "kosli" in its name): storing nothing there deserves a word. Other hosts
// (github.com, …) reach this helper only through a global credential.helper,
// and get nothing, silently, as git asks.
bool looks_like_kosli(std::string_view host) {
  const std::string name = lower(host.substr(0, host.rfind(':') == std::string_view::npos ? host.size() : host.rfind(':')));
  return name == "kosli" || name.starts_with("kosli.") || name.find(".kosli.") != std::string::npos ||
         name.ends_with(".kosli");
}

// Kosli's EU or US host, or one that looks like Kosli's.
bool kosli_host(std::string_view host) {
  const std::string h = lower(host);
  return h == host_authority(kEuHost) || h == host_authority(kUsHost) || looks_like_kosli(h);
}

// When the request names no org and its host is Kosli's, the profile
// profile_for_git picks first ($KOSLI_PROFILE, else "default") is the answer if
// it is on the host: its token's answer names its host, so one request serves
// git's usual question, without listing the profiles (which reads the keyring
// every time). nullopt when it is on another host, or missing, or not this
// caller's to read. Never for another host (github.com, through a global
// credential.helper): that would issue (and audit, and perhaps ask a person
// about) a Kosli key git cannot use there.
std::optional<TokenResponse> preferred_token(DaemonClient& daemon, const GitCredential& c) {
  const char* env = std::getenv("KOSLI_PROFILE");
  const std::string name = env != nullptr && *env != '\0' ? env : std::string(kDefaultProfile);
  if (!c.username.empty() || profile_name_problem(name) || !kosli_host(c.host)) return std::nullopt;
  try {
    auto token = api::token(daemon, name);
    if (serves(token.info.host, c.protocol, c.host)) return token;
  } catch (const CliError& e) {
    // Only a profile that is not there sends git on to the list: a refusal (a
    // daemon not trusted, a policy, a person saying no) is the answer.
    if (e.exit_code != exit_code::no_such_profile) throw;
  }
  return std::nullopt;
}

int get(DaemonClient& daemon, const GitCredential& c) {
  if (lower(c.protocol) != "https" || c.host.empty()) return exit_code::ok;  // not ours: git asks the next helper
  auto token = preferred_token(daemon, c);
  if (!token) {
    const auto profile = choose(list_profiles(daemon), c);
    if (!profile) return exit_code::ok;
    token = api::token(daemon, profile->name);
  }
  std::string answer = git_answer(c.authtype, token->token.reveal(), token->info.expires_at);
  write_stdout(answer);
  wipe(answer);
  return exit_code::ok;
}

std::string read_input() {
  std::string input;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // Only what arrived now (and the 3 bytes before it) can complete the end:
    // scanning all the input after every read would be quadratic.
    const std::size_t from = input.size() < 3 ? 0 : input.size() - 3;
    input.append(buf, static_cast<std::size_t>(n));
    // The description ends at a blank line; git may keep the pipe open after it.
    if (input.find("\n\n", from) != std::string::npos || input.find("\r\n\r\n", from) != std::string::npos ||
        input.compare(0, 1, "\n") == 0) {
      break;
    }
    if (input.size() > kMaxGitCredentialInput) break;
  }
  wipe(buf, sizeof buf);
  return input;
}

GitCredential read_request(DaemonClient& daemon) {
  // git waits on its helper with nothing on screen.
  daemon.give_up_after(kGitHelperDeadline);
  std::string input = read_input();
  auto parsed = parse_git_credential(input);
  wipe(input);
  if (auto* e = std::get_if<GitCredentialError>(&parsed)) throw CliError(exit_code::usage, e->message);
  return std::move(std::get<GitCredential>(parsed));
}

}  // namespace kosli::client::git_detail

namespace kosli::client {

using namespace git_detail;

std::optional<ProfileMeta> profile_for_git(const std::vector<ProfileMeta>& profiles, std::string_view protocol,
                                           std::string_view host, std::string_view org) {
  std::vector<const ProfileMeta*> on_host;
  for (const auto& p : profiles) {
    if (serves(p, protocol, host) && (org.empty() || p.org == org)) on_host.push_back(&p);
  }
  if (on_host.empty()) return std::nullopt;
  const char* env = std::getenv("KOSLI_PROFILE");
  for (const std::string_view preferred : {std::string_view(env != nullptr ? env : ""), kDefaultProfile}) {
    for (const auto* p : on_host) {
      if (!preferred.empty() && p->name == preferred) return *p;
    }
  }
  return *on_host.front();
}

std::variant<GitCredential, GitCredentialError> parse_git_credential(std::string_view input) {
  if (input.size() > kMaxGitCredentialInput) return GitCredentialError{"the input is larger than 1 MiB"};
  GitCredential c;
  while (!input.empty()) {
    const auto eol = input.find('\n');
    std::string_view line = input.substr(0, eol);
    input = eol == std::string_view::npos ? std::string_view{} : input.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the description
    if (line.size() > kMaxGitCredentialLine) {
      return GitCredentialError{"a line of the input is longer than 65535 bytes"};
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return GitCredentialError{"a line of the input is not key=value"};
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (value.find('\0') != std::string_view::npos || key.find('\0') != std::string_view::npos) {
      return GitCredentialError{"a value in the input contains a NUL byte"};
    }
    if (key == "url") {
      if (auto e = apply_url(value, c)) return *e;
    } else if (key == "protocol") {
      c.protocol = value;
    } else if (key == "host") {
      c.host = value;
    } else if (key == "path") {
      c.path = value;
    } else if (key == "username") {
      c.username = value;
    } else if (key == "password") {
      c.password = Secret(value);
    } else if (key == "credential") {
      c.credential = Secret(value);
    } else if (key == "capability[]") {
      c.authtype = c.authtype || value == "authtype";
    } else if (key == "password_expiry_utc") {
      std::int64_t t = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), t);
      c.password_expiry_utc = ec == std::errc() && end == value.data() + value.size() && t > 0 ? t : 0;
    }
    // Every other attribute (wwwauth[], state[], other capabilities, …) is not ours.
  }
  return c;
}

std::string git_answer(bool authtype, std::string_view key, std::int64_t expires_at) {
  std::string answer;
  answer.reserve(128 + 2 * key.size());
  if (authtype) {
    answer.append("capability[]=authtype\nauthtype=Bearer\ncredential=").append(key).append("\nephemeral=1\n");
  } else {
    answer.append("username=").append(key).append("\npassword=").append(key).append("\n");
  }
  if (expires_at != 0) answer.append("password_expiry_utc=").append(std::to_string(expires_at)).append("\n");
  return answer;
}

int run_git_get(DaemonClient& daemon, std::string_view operation) {
  if (operation == "capability") {
    write_stdout(kGitCapabilities);
    return exit_code::ok;
  }
  if (operation != "get") return exit_code::ok;
  return get(daemon, read_request(daemon));
}

}  // namespace kosli::client
