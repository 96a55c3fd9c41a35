// The error vocabulary of the wire protocol and the client's exit codes.
// Every error body is {"error":{"code":"…","message":"…"}}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kosli {

enum class ErrorCode {
  bad_request,
  forbidden,       // another uid, not served by this daemon
  policy_refused,  // the user's own policy said no: allowed_clients, or an approval denied
  not_found,
  method_not_allowed,
  timeout,
  payload_too_large,
  unsupported_media_type,
  too_many_requests,
  headers_too_large,
  uri_too_long,  // the request target is longer than limits::kMaxTargetBytes
  not_implemented,
  kosli_unreachable,
  backend_unavailable,
  internal,
  key_rejected,  // Kosli refused the key (401, or 403 for the profile's org)
  key_expired,   // the stored key is past its expires_at: no token is handed out
  conflict,      // the profile is busy (a rotation is in flight)
};

// HTTP status for the code (400, 403, 404, …).
int http_status(ErrorCode code) noexcept;
// The code's wire name ("bad_request", …).
std::string_view code_name(ErrorCode code) noexcept;
// The code for a wire name; nullopt for a name this build does not know.
std::optional<ErrorCode> code_from_name(std::string_view name) noexcept;

// An error as sent on the wire.
struct ApiError {
  ErrorCode code = ErrorCode::internal;
  std::string message;
};

std::string error_body(const ApiError& error);
// Parses an error body; nullopt when the text is not one.
std::optional<ApiError> parse_error_body(std::string_view body);

// kosli-cred's exit codes (DESIGN.md, "Client").
namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int error = 1;
inline constexpr int usage = 2;
inline constexpr int no_such_profile = 3;
inline constexpr int daemon_unreachable = 4;
inline constexpr int refused_by_policy = 5;
inline constexpr int store_unavailable = 6;
inline constexpr int key_rejected = 7;
}  // namespace exit_code

// The exit code the client uses for an error the daemon answered with.
int exit_code_for(ErrorCode code) noexcept;

}  // namespace kosli
