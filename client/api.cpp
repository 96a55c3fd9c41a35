#include "client/api.hpp"

#include "client/cli_error.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/routes.hpp"
#include "proto/secret.hpp"

namespace kosli::client::api {
namespace {

using nlohmann::json;

constexpr const char* kNotJson = "kosli-credd sent an answer that is not JSON";
constexpr const char* kUnreadable = "kosli-credd sent an answer this client cannot read";
constexpr const char* kUnreadableProfile = "kosli-credd sent a profile this client cannot read";

json parse(const std::string& body, const char* when_not) {
  auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw CliError(exit_code::error, when_not);
  return j;
}

// An answer read by `read` (one of proto/answers.hpp's readers).
template <class T, class Reader>
Answer<T> read(const HttpResult& result, Reader reader, const char* when_not_json, const char* when_unreadable) {
  auto j = parse(result.body, when_not_json);
  auto value = reader(j);
  if (!value) throw CliError(exit_code::error, when_unreadable);
  return Answer<T>{std::move(*value), std::move(j)};
}

}  // namespace

ProfileMeta require_profile(std::optional<ProfileMeta> meta) {
  if (!meta) throw CliError(exit_code::error, kUnreadableProfile);
  return std::move(*meta);
}

TokenResponse token(DaemonClient& daemon, const std::string& profile, std::string* raw) {
  auto result = daemon.request(Route::token, profile);
  if (raw != nullptr) raw->assign(result.body);
  auto parsed = parse_token(result.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) throw CliError(exit_code::error, e->message);
  auto& answer = std::get<TokenResponse>(parsed);
  // Whatever the daemon answers, what is not a key is never handed on as one
  // (an empty KOSLI_API_TOKEN, an empty git password, with exit code 0).
  if (api_key_problem(answer.token.reveal())) {
    if (raw != nullptr) wipe(*raw);
    throw CliError(exit_code::error,
                   "kosli-credd answered profile '" + display_safe(profile) + "' with " +
                       (answer.token.empty() ? "an empty token" : "a token that is not a Kosli API key") +
                       "; nothing was handed on. See what the keyring holds: kosli-cred show --profile " +
                       display_safe(profile) + ", and store the key again if need be");
  }
  return std::move(answer);
}

Stored put_profile(DaemonClient& daemon, const std::string& profile, const PutProfileRequest& request) {
  std::string body = serialize_put_profile(request);
  const auto result = daemon.request(Route::put_profile, profile, &body);
  return Stored{require_profile(profile_from_json(parse(result.body, kNotJson))), result.status == 201};
}

Answer<std::optional<ProfileMeta>> show(DaemonClient& daemon, const std::string& profile) {
  const auto result = daemon.request(Route::get_profile, profile);
  auto j = parse(result.body, kNotJson);
  auto meta = profile_from_json(j);
  return Answer<std::optional<ProfileMeta>>{std::move(meta), std::move(j)};
}

Answer<ListAnswer> list(DaemonClient& daemon) {
  const auto result = daemon.request(Route::list_profiles);
  auto j = parse(result.body, kNotJson);
  auto answer = list_from_json(j);
  return Answer<ListAnswer>{answer ? std::move(*answer) : ListAnswer{}, std::move(j)};
}

std::vector<ProfileMeta> readable_profiles(DaemonClient& daemon) {
  const auto result = daemon.request(Route::list_profiles);
  auto answer = list_from_json(json::parse(result.body, nullptr, false));
  return answer ? std::move(answer->profiles) : std::vector<ProfileMeta>{};
}

void erase(DaemonClient& daemon, const std::string& profile) { daemon.request(Route::delete_profile, profile); }

Answer<VerifyAnswer> verify(DaemonClient& daemon, const std::string& profile) {
  return read<VerifyAnswer>(daemon.request(Route::verify, profile), verify_from_json, kUnreadable, kUnreadable);
}

Answer<RotateAnswer> rotate(DaemonClient& daemon, const std::string& profile, const RotateRequest& request) {
  std::string body = serialize_rotate(request);
  const auto result = daemon.request(Route::rotate, profile, &body);
  auto j = parse(result.body, kUnreadable);
  if (!j.is_object()) throw CliError(exit_code::error, kUnreadable);
  auto answer = rotate_answer_from_json(j);
  if (!answer) throw CliError(exit_code::error, kUnreadableProfile);
  return Answer<RotateAnswer>{std::move(*answer), std::move(j)};
}

void reject(DaemonClient& daemon, const std::string& profile) { daemon.request(Route::reject, profile); }

Answer<HealthAnswer> health(DaemonClient& daemon) {
  return read<HealthAnswer>(daemon.request(Route::health), health_from_json, kNotJson, kUnreadable);
}

void lock(DaemonClient& daemon) { daemon.request(Route::lock); }

}  // namespace kosli::client::api
