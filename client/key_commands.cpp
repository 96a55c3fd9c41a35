// kosli-cred verify and kosli-cred rotate: the commands that ask Kosli, through
// the daemon, about a key.
#include <cstdio>
#include <exception>

#include "client/api.hpp"
#include "client/cli_error.hpp"
#include "client/commands.hpp"
#include "client/key_input.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {
namespace {

void warn(const std::string& text) { std::fprintf(stderr, "kosli-cred: warning: %s\n", text.c_str()); }

}  // namespace

int verify_and_report(DaemonClient& daemon, const std::string& profile, bool as_json);

int cmd_verify(DaemonClient& daemon, const std::string& profile, bool as_json) {
  if (as_json) {
    // A script reads JSON whatever happens: an answer that never came is an
    // object saying the key was not checked, and why (also said on stderr).
    try {
      return verify_and_report(daemon, profile, true);
    } catch (const std::exception& e) {
      VerifyAnswer not_checked;
      not_checked.profile = profile;
      not_checked.result = kVerifyNotChecked;
      not_checked.message = e.what();
      std::printf("%s\n", to_json(not_checked).dump(2).c_str());
      throw;
    }
  }
  return verify_and_report(daemon, profile, false);
}

int verify_and_report(DaemonClient& daemon, const std::string& profile, bool as_json) {
  const auto answer = api::verify(daemon, profile);
  const VerifyAnswer& v = answer.value;
  const int code = v.result == kVerifyValid     ? exit_code::ok
                   : v.result == kVerifyInvalid ? exit_code::key_rejected
                                                : exit_code::error;
  const auto or_unknown = [](const std::string& s) { return s.empty() ? std::string("?") : s; };
  if (as_json) {
    std::printf("%s\n", answer.json.dump(2).c_str());
  } else if (code == exit_code::ok) {
    std::printf("Profile '%s': Kosli accepts the key (%s) for org %s on %s.\n", profile.c_str(),
                or_unknown(v.fingerprint).c_str(), or_unknown(v.org).c_str(), or_unknown(v.host).c_str());
    std::printf("Its key expires: %s\n",
                v.expires_at == 0 ? "unknown (kosli-cred show says how to learn it)"
                                  : (format_rfc3339(v.expires_at) +
                                     (v.expiry_source == kExpiryFromKosli ? " (from Kosli)" : " (as given)"))
                                        .c_str());
  } else {
    std::fprintf(stderr, "kosli-cred: %s\n", v.message.c_str());
  }
  if (!v.warning.empty()) warn(v.warning);
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
    request.grace_period_hours = args.grace_hours.value_or(limits::kDefaultGraceHours);
    if (request.grace_period_hours < limits::kMinGraceHours || request.grace_period_hours > limits::kMaxGraceHours) {
      throw CliError(exit_code::usage,
                     "--grace-hours must be " + std::string(limits::kGraceHoursRange) + " (Kosli's limits)");
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

  const auto answer = api::rotate(daemon, args.profile, request).value;
  const ProfileMeta* meta = &answer.profile;
  const std::string previous = answer.previous_fingerprint.empty() ? "?" : answer.previous_fingerprint;
  const std::string& verify_result = answer.verify_result;
  if (args.via_api) {
    const std::string grace = answer.grace_period_expires_at != 0 ? format_rfc3339(answer.grace_period_expires_at)
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
  if (!answer.warning.empty()) warn(answer.warning);
  if (!meta->persistent) {
    warn("profile '" + meta->name + "' is kept in kosli-credd's memory only (backend 'memory'); it is lost when "
         "the daemon stops");
  }
  // Kosli issued a key it then refused: stored, but the user must know.
  return verify_result == kVerifyInvalid ? exit_code::key_rejected : exit_code::ok;
}

}  // namespace kosli::client
