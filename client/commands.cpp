#include "client/commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>

#include "client/cli_error.hpp"
#include "client/key_input.hpp"
#include "proto/errors.hpp"
#include "proto/host.hpp"
#include "proto/profile.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {
namespace {

using nlohmann::json;

json parse_json(const std::string& body) {
  auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw CliError(exit_code::error, "kosli-credd sent an answer that is not JSON");
  return j;
}

ProfileMeta parse_profile(const json& j) {
  auto meta = profile_from_json(j);
  if (!meta) throw CliError(exit_code::error, "kosli-credd sent a profile this client cannot read");
  return *meta;
}

void warn_if_not_persistent(const ProfileMeta& meta) {
  if (meta.persistent) return;
  std::fprintf(stderr,
               "kosli-cred: warning: profile '%s' is kept in kosli-credd's memory only "
               "(backend 'memory'); it is lost when the daemon stops\n",
               meta.name.c_str());
}

std::string when(std::int64_t t) { return t == 0 ? "never" : format_rfc3339(t); }

// Writes all of `data` to stdout with write(2): no stdio buffer keeps a copy.
void write_stdout(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError(exit_code::error, "cannot write to standard output");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

TokenResponse fetch_token(DaemonClient& daemon, const std::string& profile, std::string* raw = nullptr) {
  auto result = daemon.request("GET", route_target(Route::token, profile));
  if (raw != nullptr) raw->assign(result.body);
  auto parsed = parse_token(result.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) throw CliError(exit_code::error, e->message);
  return std::move(std::get<TokenResponse>(parsed));
}

}  // namespace

int cmd_store(DaemonClient& daemon, const StoreArgs& args) {
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
    const auto t = parse_rfc3339(args.expires_at);
    if (!t) {
      throw CliError(exit_code::usage, "--expires-at must be an RFC 3339 time such as 2027-01-31T00:00:00Z");
    }
    put.expires_at = *t;
  }
  put.description = args.description;
  put.service_account = args.service_account;
  put.key_id = args.key_id;
  put.api_key = read_api_key("Kosli API key for profile '" + args.profile + "' (input hidden): ");

  std::string body = serialize_put_profile(put);
  const auto result = daemon.request("PUT", route_target(Route::put_profile, args.profile), &body);
  const auto meta = parse_profile(parse_json(result.body));
  std::printf("%s profile '%s': org %s on %s, key %s\n", result.status == 201 ? "Stored" : "Replaced",
              meta.name.c_str(), meta.org.c_str(), meta.host.c_str(), meta.fingerprint.c_str());
  warn_if_not_persistent(meta);
  return exit_code::ok;
}

int cmd_token(DaemonClient& daemon, const std::string& profile, bool as_json) {
  std::string raw;
  auto token = fetch_token(daemon, profile, as_json ? &raw : nullptr);
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
  auto token = fetch_token(daemon, profile);
  static constexpr std::string_view kPrefix = "Authorization: Bearer ";
  std::string line;
  line.reserve(kPrefix.size() + token.token.size() + 1);
  line.append(kPrefix).append(token.token.reveal()).push_back('\n');
  write_stdout(line);
  wipe(line);
  return exit_code::ok;
}

int cmd_exec(DaemonClient& daemon, const std::string& profile, std::vector<std::string> command) {
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (command.empty()) throw CliError(exit_code::usage, "exec needs a command: kosli-cred exec -- CMD [ARG...]");
  auto token = fetch_token(daemon, profile);
  // The environment of the one command this runs: every name Kosli's tools read.
  const std::string token_text(token.token.reveal());
  ::setenv("KOSLI_API_TOKEN", token_text.c_str(), 1);
  ::setenv("KOSLI_ORG", token.info.org.c_str(), 1);
  ::setenv("KOSLI_HOST", token.info.host.c_str(), 1);
  ::setenv("KOSLI_API_URL", token.info.host.c_str(), 1);
  ::setenv("KOSLI_BASE_URL", token.info.host.c_str(), 1);

  std::vector<char*> argv;
  for (auto& arg : command) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  std::signal(SIGPIPE, SIG_DFL);  // the command gets default signal dispositions
  ::execvp(argv[0], argv.data());
  const int err = errno;
  throw CliError(err == ENOENT ? 127 : 126, "cannot run " + command.front() + ": " + std::strerror(err));
}

int cmd_list(DaemonClient& daemon, bool as_json) {
  const auto result = daemon.request("GET", route_target(Route::list_profiles));
  const auto j = parse_json(result.body);
  if (as_json) {
    std::cout << j.dump(2) << '\n';
    return exit_code::ok;
  }
  const auto profiles = j.value("profiles", json::array());
  if (profiles.empty()) {
    std::cout << "No profiles. Store one with: kosli-cred store --org ORG < key-file\n";
    return exit_code::ok;
  }
  std::printf("%-20s %-20s %-28s %-16s %-21s %s\n", "PROFILE", "ORG", "HOST", "KIND", "EXPIRES", "KEY");
  bool any_volatile = false;
  for (const auto& p : profiles) {
    const auto meta = parse_profile(p);
    any_volatile |= !meta.persistent;
    std::printf("%-20s %-20s %-28s %-16s %-21s %s\n", meta.name.c_str(), meta.org.c_str(),
                meta.host.c_str(), std::string(kind_name(meta.kind)).c_str(), when(meta.expires_at).c_str(),
                meta.fingerprint.c_str());
  }
  if (any_volatile) {
    std::fprintf(stderr, "kosli-cred: warning: kosli-credd keeps these keys in memory only (backend "
                         "'memory'); they are lost when the daemon stops\n");
  }
  return exit_code::ok;
}

int cmd_show(DaemonClient& daemon, const std::string& profile, bool as_json) {
  const auto result = daemon.request("GET", route_target(Route::get_profile, profile));
  const auto j = parse_json(result.body);
  if (as_json) {
    std::cout << j.dump(2) << '\n';
    return exit_code::ok;
  }
  const auto meta = parse_profile(j);
  std::printf("profile:          %s\n", meta.name.c_str());
  std::printf("org:              %s\n", meta.org.c_str());
  std::printf("host:             %s\n", meta.host.c_str());
  std::printf("kind:             %s\n", std::string(kind_name(meta.kind)).c_str());
  if (!meta.description.empty()) std::printf("description:      %s\n", meta.description.c_str());
  std::printf("created:          %s\n", when(meta.created_at).c_str());
  std::printf("expires:          %s\n", when(meta.expires_at).c_str());
  std::printf("key fingerprint:  %s\n", meta.fingerprint.c_str());
  if (!meta.service_account.empty()) std::printf("service account:  %s\n", meta.service_account.c_str());
  if (!meta.key_id.empty()) std::printf("key id:           %s\n", meta.key_id.c_str());
  std::printf("persistent:       %s\n", meta.persistent ? "yes" : "no (memory backend)");
  warn_if_not_persistent(meta);
  return exit_code::ok;
}

int cmd_erase(DaemonClient& daemon, const std::string& profile) {
  daemon.request("DELETE", route_target(Route::delete_profile, profile));
  std::printf("Erased profile '%s'.\n", profile.c_str());
  return exit_code::ok;
}

int cmd_status(DaemonClient& daemon, bool as_json) {
  const auto result = daemon.request("GET", route_target(Route::health));
  const auto j = parse_json(result.body);
  if (as_json) {
    std::cout << j.dump(2) << '\n';
    return exit_code::ok;
  }
  const bool persistent = j.value("persistent", false);
  std::printf("kosli-credd %s serving %s\n", j.value("version", "?").c_str(), daemon.socket_path().c_str());
  std::printf("backend:   %s%s\n", j.value("backend", "?").c_str(),
              persistent ? "" : " (keys are lost when the daemon stops)");
  if (j.contains("profiles") && j["profiles"].is_number()) {
    std::printf("profiles:  %d\n", j["profiles"].get<int>());
  } else {
    std::printf("profiles:  unknown: %s\n", j.value("store_error", "the store did not answer").c_str());
  }
  std::printf("cached:    %d key(s)\n", j.value("cached", 0));
  std::printf("uptime:    %lld s\n", static_cast<long long>(j.value("uptime_s", 0LL)));
  return exit_code::ok;
}

int cmd_lock(DaemonClient& daemon) {
  daemon.request("POST", route_target(Route::lock));
  std::printf("kosli-credd forgot every cached key; the next request reads the keyring again.\n");
  return exit_code::ok;
}

}  // namespace kosli::client
