// The answers every route can give, built in one place: a JSON body, a store
// failure, a profile that does not exist.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "daemon/api/messages.hpp"
#include "daemon/store/store.hpp"

namespace kosli::daemon {

// `body` as the answer, with `status`.
Response json_response(int status, const nlohmann::json& body);

// A store that failed: internal for an internal fault (logged as an error),
// backend_unavailable otherwise (logged as a warning).
ApiError store_failure(const StoreError& e);
// store_failure as the answer: 500 or 503.
Response store_error_response(const StoreError& e);

// 404 for `name`, saying how to store it.
ApiError no_such_profile_error(const std::string& name);
Response no_such_profile(const std::string& name);
// An error as the answer.
Response error_response(ApiError error);

// The audit log's result for an error answer: not_found, refused or error.
std::string_view result_of(const Response& r);

}  // namespace kosli::daemon
