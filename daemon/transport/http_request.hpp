// One HTTP request off the wire, with the protocol's limits (proto/limits.hpp):
// the parser's configuration, the checks made before a request reaches the
// Router, and the answers to requests that fail them. Shared by the server and
// the http_request fuzz target, so what is fuzzed is what serves.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "daemon/handlers/router.hpp"

namespace kosli::daemon {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// Sets the header and body limits on a fresh parser, before it reads a byte.
void apply_request_limits(RequestParser& parser);

// A request for the Router; `keep_alive`: the connection may carry another one.
struct ParsedRequest {
  Request request;
  bool keep_alive = false;
};
// A request refused before routing: send `response`, then close the connection.
struct RefusedRequest {
  Response response;
};
// The peer went away, or nothing can be answered: close without a word.
struct CloseConnection {};

using ReadOutcome = std::variant<ParsedRequest, RefusedRequest, CloseConnection>;

// What to do with what `parser` read: a whole request (`ec` empty), or the
// error it stopped with (a limit, the read deadline, broken framing, EOF).
// Moves the body out of the parser; a body that is refused is wiped.
ReadOutcome take_request(RequestParser& parser, boost::beast::error_code ec);

// Once the header is whole and a body is still to come: whether take_request
// will refuse the request whatever its body (a version, transfer coding or
// target it does not serve), so the body need not be read.
bool header_refused(const RequestParser& parser);

// Whether the peer waits for "100 Continue" before sending the body it
// announced (HTTP/1.1, `Expect: 100-continue`): only asked of a header that
// passed the limits and was not refused.
bool expects_continue(const RequestParser& parser);

// The interim answer to `Expect: 100-continue`.
inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

// The interim answer telling the peer the daemon asks a person, for up to
// `open_for` (proto/routes.hpp's kAskingSecondsHeader).
std::string interim_response(std::chrono::seconds open_for);

// Whether `text` nests arrays and objects deeper than `limit` (strings and
// escapes are skipped; the text need not be valid JSON).
bool json_nests_deeper_than(std::string_view text, std::size_t limit);

// The HTTP/1.1 response for the Router's answer.
HttpResponse to_http_response(Response response, bool keep_alive);

}  // namespace kosli::daemon
