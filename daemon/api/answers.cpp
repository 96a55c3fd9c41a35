#include "daemon/api/answers.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace kosli::daemon {

// Text from outside that is not UTF-8 becomes U+FFFD rather than an exception
// thrown out of a handler.
Response json_response(int status, const nlohmann::json& body) {
  return Response{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

ApiError store_failure(const StoreError& e) {
  if (e.kind == StoreError::Kind::internal) {
    spdlog::error("store: {}", e.message);
    return ApiError{ErrorCode::internal, e.message};
  }
  spdlog::warn("store: {}", e.message);
  return ApiError{ErrorCode::backend_unavailable, e.message};
}

Response store_error_response(const StoreError& e) {
  auto error = store_failure(e);
  return error_response(error.code, std::move(error.message));
}

ApiError no_such_profile_error(const std::string& name) {
  return ApiError{ErrorCode::not_found,
                  "no profile named '" + name + "'; store one with: kosli-cred store --profile " + name + " --org ORG"};
}

Response no_such_profile(const std::string& name) { return error_response(no_such_profile_error(name)); }

Response error_response(ApiError error) { return error_response(error.code, std::move(error.message)); }

// The audit result for an error answer.
std::string_view result_of(const Response& r) {
  if (r.status == 404) return "not_found";
  if (r.status == 403) return "refused";
  return "error";
}

}  // namespace kosli::daemon
