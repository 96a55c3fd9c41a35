#include "client/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "client/approvals_status.hpp"
#include "client/cli_error.hpp"
#include "client/core_dumps.hpp"
#include "client/exec_program.hpp"
#include "client/expiry_text.hpp"
#include "client/exec_targets.hpp"
#include "client/git_credential.hpp"
#include "client/key_input.hpp"
#include "client/token_io.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/host.hpp"
#include "proto/profile.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {
namespace {

using nlohmann::json;

void warn_if_not_persistent(const ProfileMeta& meta) {
  if (meta.persistent) return;
  std::fprintf(stderr,
               "kosli-cred: warning: profile '%s' is kept in kosli-credd's memory only "
               "(backend 'memory'); it is lost when the daemon stops\n",
               meta.name.c_str());
}

// Through stdio, as everything else these commands print.
void print_json(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string when(std::int64_t t) { return t == 0 ? "never" : format_rfc3339(t); }

// One line on stderr (stdout carries the token) when the key is close to expiry.
void warn_if_expiring(const std::string& profile, const TokenInfo& info) {
  if (info.expiry_warning_days <= 0 || !expiring_within(info.expires_at, info.expiry_warning_days, now_s())) return;
  std::fprintf(stderr,
               "kosli-cred: warning: the key of profile '%s' expires %s (%s); rotate it: kosli-cred rotate "
               "--profile %s --via-api, or with a new key on stdin\n",
               profile.c_str(), days_left_text(info.expires_at).c_str(), format_rfc3339(info.expires_at).c_str(),
               profile.c_str());
}

// Which profile git's credential protocol answers with, for each host and org.
void print_git_mapping(const std::vector<ProfileMeta>& profiles) {
  std::vector<std::string> hosts;
  for (const auto& p : profiles) {
    if (p.host.rfind("https://", 0) == 0 && std::find(hosts.begin(), hosts.end(), p.host) == hosts.end()) {
      hosts.push_back(p.host);
    }
  }
  if (hosts.empty()) return;
  std::printf("\ngit credential (https):\n");
  for (const auto& host : hosts) {
    const std::string authority = host_authority(host);
    const auto any = profile_for_git(profiles, "https", authority, "");
    std::printf("  %-28s -> %s", display_safe(authority).c_str(), display_safe(any->name).c_str());
    std::vector<std::string> orgs;
    for (const auto& p : profiles) {
      if (p.host == host && std::find(orgs.begin(), orgs.end(), p.org) == orgs.end()) orgs.push_back(p.org);
    }
    for (const auto& org : orgs) {
      if (org == any->org) continue;
      std::printf(", username=%s -> %s", display_safe(org).c_str(),
                  display_safe(profile_for_git(profiles, "https", authority, org)->name).c_str());
    }
    std::printf("\n");
  }
}

// The profile's token, warning on stderr when its key expires soon.
TokenResponse fetch_token_and_warn(DaemonClient& daemon, const std::string& profile, std::string* raw = nullptr) {
  auto token = api::token(daemon, profile, raw);
  warn_if_expiring(profile, token.info);
  return token;
}

}  // namespace

int cmd_store(DaemonClient& daemon, const StoreArgs& args) {
  if (auto problem = org_problem(args.org)) throw CliError(exit_code::usage, "--org " + *problem);
  PutProfileRequest put;
  put.org = args.org;
  if (!args.host.empty()) {
    auto normalized = normalize_host(args.host);
    if (auto* e = std::get_if<HostError>(&normalized)) throw CliError(exit_code::usage, "--host: " + e->message);
    put.host = std::get<std::string>(normalized);
  } else {
    put.host = host_for_region(args.region.empty() ? "eu" : args.region).value_or(std::string(kEuHost));
  }
  put.kind = kind_from_name(args.kind).value_or(KeyKind::service_account);
  if (!args.expires_at.empty()) {
    auto t = parse_expiry(args.expires_at, "--expires-at");
    if (auto* problem = std::get_if<std::string>(&t)) throw CliError(exit_code::usage, std::move(*problem));
    put.expires_at = std::get<std::int64_t>(t);
  }
  put.description = args.description;
  put.service_account = args.service_account;
  put.key_id = args.key_id;
  put.api_key = read_api_key("Kosli API key for profile '" + args.profile + "' (input hidden): ");

  const auto stored = api::put_profile(daemon, args.profile, put);
  const auto& meta = stored.profile;
  std::printf("%s profile '%s': org %s on %s, key %s\n", stored.created ? "Stored" : "Replaced",
              meta.name.c_str(), meta.org.c_str(), meta.host.c_str(), meta.fingerprint.c_str());
  if (meta.expires_at != 0) {
    std::printf("Its key expires at %s.\n", expiry_sentence(meta).c_str());
  } else if (!meta.service_account.empty() && !meta.key_id.empty() && meta.kind == KeyKind::service_account) {
    std::printf("Its key's expiry is being learned from Kosli; see it with: kosli-cred show --profile %s\n",
                meta.name.c_str());
  } else {
    std::printf("Its key's expiry is %s\n", expiry_sentence(meta).c_str());
  }
  warn_if_not_persistent(meta);
  return exit_code::ok;
}

int cmd_token(DaemonClient& daemon, const std::string& profile, bool as_json) {
  std::string raw;
  auto token = fetch_token_and_warn(daemon, profile, as_json ? &raw : nullptr);
  if (as_json) {
    raw.push_back('\n');
    write_stdout(raw);
    wipe(raw);
  } else {
    std::string line;
    line.reserve(token.token.size() + 1);
    line.append(token.token.reveal()).push_back('\n');
    write_stdout(line);
    wipe(line);
  }
  return exit_code::ok;
}

int cmd_header(DaemonClient& daemon, const std::string& profile) {
  auto token = fetch_token_and_warn(daemon, profile);
  static constexpr std::string_view kPrefix = "Authorization: Bearer ";
  std::string line;
  line.reserve(kPrefix.size() + token.token.size() + 1);
  line.append(kPrefix).append(token.token.reveal()).push_back('\n');
  write_stdout(line);
  wipe(line);
  return exit_code::ok;
}

int cmd_exec(DaemonClient& daemon, const std::string& profile, std::vector<std::string> command) {
  return cmd_exec(daemon, std::vector<std::string>{profile}, std::move(command));
}

int cmd_exec(DaemonClient& daemon, const std::vector<std::string>& profiles, std::vector<std::string> command) {
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (command.empty()) throw CliError(exit_code::usage, "exec needs a command: kosli-cred exec -- CMD [ARG...]");
  if (auto problem = repeated_profile_problem(profiles)) throw CliError(problem->exit_code, problem->message);
  // The program is found first: kosli-credd is told which it is (allowed_clients
  // lists what users run, not kosli-cred), and exactly that file is run.
  const auto program = find_program(command.front());
  if (!program) {
    const int err = errno;
    throw CliError(err == ENOENT || err == ENOTDIR ? 127 : 126,
                   "cannot run " + command.front() + ": " + std::strerror(err));
  }
  if (program->find_first_of("\r\n") != std::string::npos) {
    throw CliError(126, "cannot run " + command.front() + ": its path holds a line break");
  }
  daemon.set_exec_program(*program);
  std::vector<TokenResponse> tokens;
  std::vector<ExecTarget> targets;
  for (const auto& profile : profiles) {
    tokens.push_back(fetch_token_and_warn(daemon, profile));
    targets.push_back({profile, tokens.back().info.org, tokens.back().info.host});
  }
  if (auto problem = exec_targets_problem(targets)) throw CliError(problem->exit_code, problem->message);
  // The environment of the one command this runs: every name Kosli's tools read.
  // Several profiles: the Kosli CLI's multi-host mode, hosts and tokens in the
  // same order; the Terraform provider and the MCP server serve one host, so
  // their variables are left out rather than naming one host of several.
  std::string token_text, hosts;
  for (const auto& token : tokens) {
    if (!hosts.empty()) {
      token_text.push_back(',');
      hosts.push_back(',');
    }
    token_text.append(token.token.reveal());
    hosts.append(token.info.host);
  }
  ::setenv("KOSLI_API_TOKEN", token_text.c_str(), 1);
  wipe(token_text);
  ::setenv("KOSLI_ORG", targets.front().org.c_str(), 1);
  ::setenv("KOSLI_HOST", hosts.c_str(), 1);
  for (const char* name : {"KOSLI_API_URL", "KOSLI_BASE_URL"}) {
    if (tokens.size() == 1) {
      ::setenv(name, hosts.c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }

  std::vector<char*> argv;
  for (auto& arg : command) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  std::signal(SIGPIPE, SIG_DFL);  // the command gets default signal dispositions
  restore_core_dumps();           // and the core-file limit kosli-cred was given
  ::execv(program->c_str(), argv.data());
  const int err = errno;
  throw CliError(err == ENOENT ? 127 : 126, "cannot run " + command.front() + ": " + std::strerror(err));
}

int cmd_list(DaemonClient& daemon, bool as_json) {
  const auto answer = api::list(daemon);
  if (as_json) {
    print_json(answer.json);
    return exit_code::ok;
  }
  const auto& list = answer.value;
  if (list.profiles.empty() && list.unreadable == 0) {
    std::printf("No profiles. Store one with: kosli-cred store --org ORG < key-file\n");
    return exit_code::ok;
  }
  if (list.unreadable > 0) api::require_profile(std::nullopt);  // exit 1: an item this client cannot read
  std::printf("%-20s %-20s %-28s %-16s %-21s %-18s %s\n", "PROFILE", "ORG", "HOST", "KIND", "EXPIRES", "LEFT", "KEY");
  bool any_volatile = false, any_unknown = false;
  const auto& metas = list.profiles;
  for (const auto& meta : metas) {
    any_volatile |= !meta.persistent;
    any_unknown |= meta.expires_at == 0;
    const std::string left = meta.expires_at == 0 ? "-" : days_left_text(meta.expires_at);
    std::printf("%-20s %-20s %-28s %-16s %-21s %-18s %s\n", display_safe(meta.name).c_str(),
                display_safe(meta.org).c_str(), display_safe(meta.host).c_str(),
                std::string(kind_name(meta.kind)).c_str(), expiry_column(meta).c_str(), left.c_str(),
                display_safe(meta.fingerprint).c_str());
  }
  if (any_unknown) std::printf("(every Kosli key expires; kosli-cred show --profile P says how to learn an unknown expiry)\n");
  print_git_mapping(metas);
  if (any_volatile) {
    std::fprintf(stderr, "kosli-cred: warning: kosli-credd keeps these keys in memory only (backend "
                         "'memory'); they are lost when the daemon stops\n");
  }
  return exit_code::ok;
}

int cmd_show(DaemonClient& daemon, const std::string& profile, bool as_json) {
  auto answer = api::show(daemon, profile);
  if (as_json) {
    print_json(answer.json);
    return exit_code::ok;
  }
  const auto meta = api::require_profile(std::move(answer.value));
  // Every text a user or the daemon set, escaped for the terminal (a description
  // may hold bidi and C1 controls); --json above keeps them as they are.
  const auto text = [](const std::string& value) { return display_safe(value); };
  std::printf("profile:          %s\n", text(meta.name).c_str());
  std::printf("org:              %s\n", text(meta.org).c_str());
  std::printf("host:             %s\n", text(meta.host).c_str());
  std::printf("kind:             %s\n", std::string(kind_name(meta.kind)).c_str());
  if (!meta.description.empty()) std::printf("description:      %s\n", text(meta.description).c_str());
  std::printf("created:          %s\n", when(meta.created_at).c_str());
  std::printf("expires:          %s\n", expiry_sentence(meta).c_str());
  std::printf("key fingerprint:  %s\n", text(meta.fingerprint).c_str());
  if (!meta.service_account.empty()) std::printf("service account:  %s\n", text(meta.service_account).c_str());
  if (!meta.key_id.empty()) std::printf("key id:           %s\n", text(meta.key_id).c_str());
  if (meta.last_verified_at != 0) {
    std::printf("last verified:    %s (%s)\n", format_rfc3339(meta.last_verified_at).c_str(),
                text(meta.last_verify_result).c_str());
  }
  std::printf("persistent:       %s\n", meta.persistent ? "yes" : "no (memory backend)");
  warn_if_not_persistent(meta);
  return exit_code::ok;
}

int cmd_erase(DaemonClient& daemon, const std::string& profile) {
  api::erase(daemon, profile);
  std::printf("Erased profile '%s'.\n", profile.c_str());
  return exit_code::ok;
}

int cmd_lock(DaemonClient& daemon) {
  api::lock(daemon);
  std::printf("kosli-credd forgot every cached key; the next request reads the keyring again.\n");
  return exit_code::ok;
}

}  // namespace kosli::client
