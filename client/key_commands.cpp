// kosli-cred verify and kosli-cred rotate: the commands that ask Kosli, through
// the daemon, about a key.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "client/cli_error.hpp"
#include "client/commands.hpp"
#include "client/key_input.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {
namespace {

using nlohmann::json;

json parse_answer(const std::string& body) {
  auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw CliError(exit_code::error, "kosli-credd sent an answer this client cannot read");
  return j;
}

void warn(const std::string& text) { std::fprintf(stderr, "kosli-cred: warning: %s\n", text.c_str()); }

}  // namespace

int cmd_verify(DaemonClient& daemon, const std::string& profile, bool as_json) {
  const auto result = daemon.request("POST", route_target(Route::verify, profile), nullptr,
                                     limits::kClientKosliRequestDeadline);
  const auto j = parse_answer(result.body);
  const std::string outcome = j.value("result", "");
  const std::string message = j.value("message", "");
  const int code = outcome == kVerifyValid     ? exit_code::ok
                   : outcome == kVerifyInvalid ? exit_code::key_rejected
                                               : exit_code::error;
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else if (code == exit_code::ok) {
    std::printf("Profile '%s': Kosli accepts the key (%s) for org %s on %s.\n", profile.c_str(),
                j.value("fingerprint", "?").c_str(), j.value("org", "?").c_str(), j.value("host", "?").c_str());
  } else {
    std::fprintf(stderr, "kosli-cred: %s\n", message.c_str());
  }
  if (j.contains("warning") && j["warning"].is_string()) warn(j["warning"].get<std::string>());
  return code;
}

int cmd_rotate(DaemonClient& daemon, const RotateArgs& args) {
  RotateRequest request;
  request.via_api = args.via_api;
  if (!args.expires_at.empty()) {
    auto t = parse_expiry(args.expires_at, "--expires-at");
    if (auto* problem = std::get_if<std::string>(&t)) throw CliError(exit_code::usage, std::move(*problem));
    request.expires_at = std::get<std::int64_t>(t);
  }
  if (args.via_api) {
    request.grace_period_hours = args.grace_hours.value_or(kDefaultGraceHours);
    if (request.grace_period_hours < kMinGraceHours || request.grace_period_hours > kMaxGraceHours) {
      throw CliError(exit_code::usage, "--grace-hours must be from 1 to 720 (Kosli's limits)");
    }
  } else {
    request.verify = !args.no_verify;
    request.key_id = args.key_id;
    request.api_key = read_api_key("New Kosli API key for profile '" + args.profile + "' (input hidden): ");
    if (args.no_verify) {
      warn("--no-verify: the new key is stored without asking Kosli whether it works; "
           "check it later with: kosli-cred verify --profile " + args.profile);
    }
  }

  std::string body = serialize_rotate(request);
  const auto result = daemon.request("POST", route_target(Route::rotate, args.profile), &body,
                                     limits::kClientKosliRequestDeadline);
  const auto j = parse_answer(result.body);
  const auto meta = profile_from_json(j.value("profile", json::object()));
  if (!meta) throw CliError(exit_code::error, "kosli-credd sent a profile this client cannot read");
  const std::string previous = j.value("previous_fingerprint", "?");
  const auto verify_result = j.contains("verify_result") && j["verify_result"].is_string()
                                 ? j["verify_result"].get<std::string>()
                                 : std::string();
  if (args.via_api) {
    const std::string grace = j.contains("grace_period_expires_at") && j["grace_period_expires_at"].is_string()
                                  ? j["grace_period_expires_at"].get<std::string>()
                                  : "the end of its grace period";
    std::printf("Rotated profile '%s' through Kosli: key %s -> %s (key id %s). The old key keeps working until %s.\n",
                meta->name.c_str(), previous.c_str(), meta->fingerprint.c_str(),
                meta->key_id.empty() ? "not given" : meta->key_id.c_str(), grace.c_str());
  } else {
    std::printf("Rotated profile '%s': key %s -> %s, %s.\n", meta->name.c_str(), previous.c_str(),
                meta->fingerprint.c_str(),
                verify_result == kVerifyValid ? "checked with Kosli" : "not checked with Kosli (--no-verify)");
  }
  if (meta->expires_at != 0) std::printf("The new key expires at %s.\n", format_rfc3339(meta->expires_at).c_str());
  if (j.contains("warning") && j["warning"].is_string()) warn(j["warning"].get<std::string>());
  if (!meta->persistent) {
    warn("profile '" + meta->name + "' is kept in kosli-credd's memory only (backend 'memory'); it is lost when "
         "the daemon stops");
  }
  // Kosli issued a key it then refused: stored, but the user must know.
  return verify_result == kVerifyInvalid ? exit_code::key_rejected : exit_code::ok;
}

}  // namespace kosli::client
