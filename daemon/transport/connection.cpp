#include "daemon/transport/connection.hpp"

#include <sstream>

namespace kosli::daemon::transport {

std::string canned_response(ErrorCode code, const std::string& message) {
  http::response<http::string_body> res{static_cast<http::status>(http_status(code)), 11};
  res.set(http::field::content_type, kJsonContentType);
  res.keep_alive(false);
  res.body() = error_body(ApiError{code, message});
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  return out.str();
}

}  // namespace kosli::daemon::transport
