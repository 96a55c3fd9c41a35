#include "daemon/transport/http_request.hpp"

#include <iterator>
#include <optional>
#include <string>

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include "proto/limits.hpp"
#include "proto/routes.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

std::string kib(std::size_t bytes) { return std::to_string(bytes / 1024) + " KiB"; }

RefusedRequest refuse(ErrorCode code, std::string message) {
  return RefusedRequest{error_response(code, std::move(message))};
}

// What the header alone decides: nothing, or the refusal.
std::optional<RefusedRequest> check_header(const http::request_header<>& req) {
  if (req.version() != 10 && req.version() != 11) {
    return refuse(ErrorCode::bad_request, "HTTP/" + std::to_string(req.version() / 10) + "." +
                                              std::to_string(req.version() % 10) +
                                              " is not supported; kosli-credd speaks HTTP/1.1");
  }
  // The parser frames a body as chunked when "chunked" comes last and reads no
  // body at all for a coding it does not know, so anything else, "xchunked" or
  // "gzip, chunked", would be served as something it is not.
  const auto codings = req.equal_range(http::field::transfer_encoding);
  if (codings.first != codings.second &&
      (std::next(codings.first) != codings.second || !beast::iequals(codings.first->value(), "chunked"))) {
    return refuse(ErrorCode::not_implemented,
                  "the only Transfer-Encoding kosli-credd reads is chunked; send the body with Content-Length");
  }
  if (req.target().size() > limits::kMaxTargetBytes) {
    return refuse(ErrorCode::uri_too_long,
                  "the request target is longer than " + std::to_string(limits::kMaxTargetBytes) + " bytes");
  }
  return std::nullopt;
}

}  // namespace

bool header_refused(const RequestParser& parser) { return check_header(parser.get()).has_value(); }

bool expects_continue(const RequestParser& parser) {
  const auto& req = parser.get();
  return !parser.is_done() && req.version() == 11 && beast::iequals(req[http::field::expect], "100-continue");
}

void apply_request_limits(RequestParser& parser) {
  parser.header_limit(static_cast<std::uint32_t>(limits::kMaxHeaderBytes));
  parser.body_limit(limits::kMaxBodyBytes);
}

bool json_nests_deeper_than(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

ReadOutcome take_request(RequestParser& parser, beast::error_code ec) {
  if (ec) {
    wipe(parser.get().body());  // a body cut off halfway may hold part of a key
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return CloseConnection{};
    if (ec == http::error::header_limit) {
      return refuse(ErrorCode::headers_too_large,
                    "the request line and headers are larger than " + kib(limits::kMaxHeaderBytes));
    }
    if (ec == http::error::body_limit) {
      return refuse(ErrorCode::payload_too_large, "the request body is larger than " + kib(limits::kMaxBodyBytes));
    }
    if (ec == beast::error::timeout) {
      return refuse(ErrorCode::timeout, "the request did not arrive whole within " +
                                            std::to_string(limits::kRequestReadDeadline.count()) + " s");
    }
    if (ec.category() == beast::error_code(http::error::bad_method).category()) {
      return refuse(ErrorCode::bad_request,
                    "malformed HTTP request (" + ec.message() + "); kosli-credd speaks HTTP/1.1 with JSON bodies");
    }
    return CloseConnection{};  // the socket failed, or the server is closing it
  }

  auto& req = parser.get();
  if (auto refused = check_header(req)) {
    wipe(req.body());
    return std::move(*refused);
  }
  if (json_nests_deeper_than(req.body(), limits::kMaxJsonDepth)) {
    wipe(req.body());
    return refuse(ErrorCode::bad_request,
                  "the JSON body nests deeper than " + std::to_string(limits::kMaxJsonDepth) + " levels");
  }
  ParsedRequest parsed{Request{std::string(req.method_string()), std::string(req.target()),
                               std::string(req[http::field::content_type]), std::move(req.body()),
                               std::string(req[kExecProgramHeader])},
                       req.keep_alive()};
  return parsed;
}

HttpResponse to_http_response(Response response, bool keep_alive) {
  HttpResponse res;
  res.version(11);
  res.result(static_cast<unsigned>(response.status));
  res.set(http::field::server, "kosli-credd");
  if (!response.body.empty()) res.set(http::field::content_type, response.content_type);
  if (response.sensitive) res.set(http::field::cache_control, "no-store");
  if (!response.allow.empty()) res.set(http::field::allow, response.allow);
  res.body() = std::move(response.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

std::string interim_response(std::chrono::seconds open_for) {
  return "HTTP/1.1 102 Processing\r\n" + std::string(kAskingSecondsHeader) + ": " + std::to_string(open_for.count()) +
         "\r\n\r\n";
}

}  // namespace kosli::daemon
