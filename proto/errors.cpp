#include "proto/errors.hpp"

#include <array>

#include <nlohmann/json.hpp>

namespace kosli {
namespace {

struct ErrorInfo {
  ErrorCode code;
  std::string_view name;
  int status;
  int exit;
};

constexpr std::array<ErrorInfo, 18> kErrors{{
    {ErrorCode::bad_request, "bad_request", 400, exit_code::error},
    {ErrorCode::forbidden, "forbidden", 403, exit_code::refused_by_policy},
    {ErrorCode::policy_refused, "policy_refused", 403, exit_code::refused_by_policy},
    {ErrorCode::not_found, "not_found", 404, exit_code::no_such_profile},
    {ErrorCode::conflict, "conflict", 409, exit_code::error},
    {ErrorCode::key_expired, "key_expired", 410, exit_code::key_rejected},
    {ErrorCode::key_rejected, "key_rejected", 422, exit_code::key_rejected},
    {ErrorCode::method_not_allowed, "method_not_allowed", 405, exit_code::error},
    {ErrorCode::timeout, "timeout", 408, exit_code::error},
    {ErrorCode::payload_too_large, "payload_too_large", 413, exit_code::error},
    {ErrorCode::unsupported_media_type, "unsupported_media_type", 415, exit_code::error},
    {ErrorCode::too_many_requests, "too_many_requests", 429, exit_code::error},
    {ErrorCode::headers_too_large, "headers_too_large", 431, exit_code::error},
    {ErrorCode::uri_too_long, "uri_too_long", 414, exit_code::error},
    {ErrorCode::not_implemented, "not_implemented", 501, exit_code::error},
    {ErrorCode::kosli_unreachable, "kosli_unreachable", 502, exit_code::error},
    {ErrorCode::backend_unavailable, "backend_unavailable", 503, exit_code::store_unavailable},
    {ErrorCode::internal, "internal", 500, exit_code::error},
}};

const ErrorInfo& info(ErrorCode code) noexcept {
  for (const auto& e : kErrors) {
    if (e.code == code) return e;
  }
  return kErrors.back();
}

}  // namespace

int http_status(ErrorCode code) noexcept { return info(code).status; }
std::string_view code_name(ErrorCode code) noexcept { return info(code).name; }
int exit_code_for(ErrorCode code) noexcept { return info(code).exit; }

std::optional<ErrorCode> code_from_name(std::string_view name) noexcept {
  for (const auto& e : kErrors) {
    if (e.name == name) return e.code;
  }
  return std::nullopt;
}

std::string error_body(const ApiError& error) {
  const nlohmann::json j = {
      {"error", {{"code", code_name(error.code)}, {"message", error.message}}}};
  // A message may quote what the peer sent (a route): bytes that are not UTF-8
  // become U+FFFD instead of throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<ApiError> parse_error_body(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto it = j.find("error");
  if (it == j.end() || !it->is_object()) return std::nullopt;
  const auto code = it->find("code");
  const auto message = it->find("message");
  if (code == it->end() || !code->is_string() || message == it->end() || !message->is_string()) {
    return std::nullopt;
  }
  return ApiError{code_from_name(code->get<std::string>()).value_or(ErrorCode::internal),
                  message->get<std::string>()};
}

}  // namespace kosli
