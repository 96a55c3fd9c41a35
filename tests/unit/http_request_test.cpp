#include "daemon/transport/http_request.hpp"

#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

#include "proto/errors.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon {
namespace {

namespace http = boost::beast::http;

// Parses `wire` as the server's parser would, all bytes at once, the peer
// closing after them.
ReadOutcome read(std::string_view wire) {
  RequestParser parser;
  apply_request_limits(parser);
  parser.eager(true);
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    const auto used = parser.put(boost::asio::buffer(wire.data(), wire.size()), ec);
    wire.remove_prefix(used);
    if (ec == http::error::need_more || (!ec && used == 0)) {
      ec = {};
      if (parser.got_some()) {
        parser.put_eof(ec);
      } else {
        ec = http::error::end_of_stream;
      }
      break;
    }
    if (ec) break;
  }
  return take_request(parser, ec);
}

std::string code_of(const ReadOutcome& outcome) {
  const auto* refused = std::get_if<RefusedRequest>(&outcome);
  if (refused == nullptr) return "";
  const auto error = parse_error_body(refused->response.body);
  return error ? std::string(code_name(error->code)) : "?";
}

int status_of(const ReadOutcome& outcome) {
  const auto* refused = std::get_if<RefusedRequest>(&outcome);
  return refused ? refused->response.status : 0;
}

TEST(HttpRequest, AWellFormedRequestGoesToTheRouter) {
  const auto outcome = read("PUT /v1/profiles/p HTTP/1.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: 2\r\n\r\n{}");
  const auto* parsed = std::get_if<ParsedRequest>(&outcome);
  ASSERT_NE(parsed, nullptr) << code_of(outcome);
  EXPECT_EQ(parsed->request.method, "PUT");
  EXPECT_EQ(parsed->request.target, "/v1/profiles/p");
  EXPECT_EQ(parsed->request.content_type, "application/json");
  EXPECT_EQ(parsed->request.body, "{}");
  EXPECT_TRUE(parsed->keep_alive);
}

TEST(HttpRequest, HeadersOverTheLimitAre431) {
  const std::string big(limits::kMaxHeaderBytes, 'x');
  const auto outcome = read("GET /v1/health HTTP/1.1\r\nX-Big: " + big + "\r\n\r\n");
  EXPECT_EQ(status_of(outcome), 431);
  EXPECT_EQ(code_of(outcome), "headers_too_large");
}

TEST(HttpRequest, ABodyOverTheLimitIs413BeforeItIsRead) {
  // Only the header is sent: the declared length alone is refused.
  const auto outcome = read("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: " +
                            std::to_string(limits::kMaxBodyBytes + 1) + "\r\n\r\n");
  EXPECT_EQ(status_of(outcome), 413);
  EXPECT_EQ(code_of(outcome), "payload_too_large");
}

TEST(HttpRequest, ATargetOverTheLimitIs414) {
  const auto outcome = read("GET /v1/" + std::string(limits::kMaxTargetBytes, 'a') + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(outcome), 414);
  EXPECT_EQ(code_of(outcome), "uri_too_long");
}

TEST(HttpRequest, JsonNestedTooDeepIs400BeforeItIsParsed) {
  const std::string ok = std::string(limits::kMaxJsonDepth, '[') + std::string(limits::kMaxJsonDepth, ']');
  const std::string deep = "[" + ok + "]";
  EXPECT_FALSE(json_nests_deeper_than(ok, limits::kMaxJsonDepth));
  EXPECT_TRUE(json_nests_deeper_than(deep, limits::kMaxJsonDepth));
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_FALSE(json_nests_deeper_than(R"({"a":"[[[[[[[[[[[[\"[[[[[[[["})", 2));

  const auto outcome = read("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: " + std::to_string(deep.size()) +
                            "\r\n\r\n" + deep);
  EXPECT_EQ(status_of(outcome), 400);
  EXPECT_EQ(code_of(outcome), "bad_request");
}

TEST(HttpRequest, BrokenFramingIs400) {
  for (const std::string wire : {
           "GET /v1/health HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "GET /v1/health HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "GET /v1/health HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
           "GET /v1/health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "GET /v1/health\r\n\r\n",               // HTTP/0.9
           "GET /v1/health HTTP/2.0\r\n\r\n",
           "GET /v1/health HTTP/1.7\r\n\r\n",
           "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  // a TLS ClientHello
       }) {
    const auto outcome = read(wire);
    EXPECT_EQ(status_of(outcome), 400) << wire;
    EXPECT_EQ(code_of(outcome), "bad_request") << wire;
  }
}

TEST(HttpRequest, ATransferCodingOtherThanChunkedIs501) {
  for (const std::string coding : {"xchunked", "gzip, chunked", "identity", "chunked, gzip"}) {
    const auto outcome = read("POST /v1/lock HTTP/1.1\r\nTransfer-Encoding: " + coding + "\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(status_of(outcome), 501) << coding;
    EXPECT_EQ(code_of(outcome), "not_implemented") << coding;
  }
  for (const std::string coding : {"chunked", "Chunked"}) {
    const auto outcome = read("PUT /v1/profiles/p HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: " +
                              coding + "\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    const auto* parsed = std::get_if<ParsedRequest>(&outcome);
    ASSERT_NE(parsed, nullptr) << coding << ": " << code_of(outcome);
    EXPECT_EQ(parsed->request.body, "{}");
  }
}

// The header alone, as the server parses it before reading a body.
const RequestParser& header_of(std::string_view wire) {
  static std::unique_ptr<RequestParser> parser;
  parser = std::make_unique<RequestParser>();
  apply_request_limits(*parser);
  parser->eager(true);
  boost::beast::error_code ec;
  parser->put(boost::asio::buffer(wire.data(), wire.size()), ec);
  EXPECT_TRUE(parser->is_header_done()) << wire << ": " << ec.message();
  return *parser;
}

TEST(HttpRequest, AHeaderRefusedForWhatItSaysIsKnownBeforeTheBody) {
  EXPECT_TRUE(header_refused(header_of("POST /v1/lock HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")));
  EXPECT_TRUE(header_refused(header_of("PUT /v1/" + std::string(limits::kMaxTargetBytes, 'a') +
                                       " HTTP/1.1\r\nContent-Length: 5\r\n\r\n")));
  EXPECT_FALSE(header_refused(header_of("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: 5\r\n\r\n")));
}

TEST(HttpRequest, OnlyAnHttp11PeerWaitingForItsBodyIsSent100Continue) {
  EXPECT_TRUE(
      expects_continue(header_of("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")));
  EXPECT_TRUE(expects_continue(
      header_of("PUT /v1/profiles/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n")));
  // Not asked, HTTP/1.0 (which must ignore it), no body, or the body already here.
  EXPECT_FALSE(expects_continue(header_of("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: 5\r\n\r\n")));
  EXPECT_FALSE(
      expects_continue(header_of("PUT /v1/profiles/p HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")));
  EXPECT_FALSE(expects_continue(header_of("GET /v1/health HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")));
  EXPECT_FALSE(expects_continue(
      header_of("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n{}")));
}

TEST(HttpRequest, APeerThatLeavesIsClosedWithoutAWord) {
  EXPECT_TRUE(std::holds_alternative<CloseConnection>(read("")));
  EXPECT_TRUE(std::holds_alternative<CloseConnection>(read("GET /v1/health HTTP/1.1\r\nHost:")));
  EXPECT_TRUE(std::holds_alternative<CloseConnection>(
      read("PUT /v1/profiles/p HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a")));
}

TEST(HttpRequest, TheReadDeadlineIs408) {
  RequestParser parser;
  apply_request_limits(parser);
  const auto outcome = take_request(parser, boost::beast::error::timeout);
  EXPECT_EQ(status_of(outcome), 408);
  EXPECT_EQ(code_of(outcome), "timeout");
}

TEST(HttpRequest, ResponsesCarryTheRouterAnswer) {
  Response r{405, R"({"error":{}})"};
  r.allow = "GET, PUT";
  r.sensitive = true;
  const auto res = to_http_response(std::move(r), false);
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[http::field::allow], "GET, PUT");
  EXPECT_EQ(res[http::field::cache_control], "no-store");
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res.body(), R"({"error":{}})");
}

}  // namespace
}  // namespace kosli::daemon
