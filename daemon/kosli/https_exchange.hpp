// Private to daemon/kosli/https_client.cpp: what its calls share, and one
// request's exchange over a connected stream (plain or TLS).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <algorithm>
#include <tuple>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "daemon/kosli/https_client.hpp"
#include "daemon/kosli/url.hpp"

namespace kosli::daemon::https_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using asio::awaitable;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

// Kosli's answer headers; far larger ones are not Kosli's.
constexpr std::size_t kMaxAnswerHeaderBytes = 16 * 1024;
// Kosli's answer bodies (a rotation's is a few hundred bytes).
constexpr std::size_t kMaxAnswerBodyBytes = 64 * 1024;
// A Retry-After longer than this is cut to it (the whole call has a deadline anyway).
constexpr std::chrono::seconds kMaxRetryAfter{4};
// An attempt that would start with less time than this left is not made.
constexpr std::chrono::milliseconds kMinAttemptTime{500};

struct Attempt {
  HttpOutcome outcome;
  bool connect_failure = false;  // nothing was sent: safe to retry any call
};

// Wipes every byte a flat_buffer holds or held (it was reserved up front, so
// it never reallocated and left copies behind).
inline void wipe_buffer(beast::flat_buffer& buffer) {
  buffer.consume(buffer.size());
  auto whole = buffer.prepare(buffer.capacity());
  wipe(whole.data(), whole.size());
}


// Sends the request and reads the answer (its header only, unless the body is wanted).
template <class Stream, class Failure>
awaitable<Attempt> exchange(Stream& stream, const HttpCall& call, Clock::time_point deadline,
                             std::chrono::milliseconds request_deadline, const Failure& failure) {
  const auto url = parse_base(call.base);
  const std::string host = url ? url->authority : call.base;
  const std::string body_headers =
      call.body.empty() ? std::string()
                        : "Content-Type: application/json\r\nContent-Length: " + std::to_string(call.body.size()) + "\r\n";
  static constexpr std::string_view kAuthorization = "Authorization: Bearer ";
  std::string request;
  request.reserve(call.method.size() + call.path.size() + host.size() + body_headers.size() + call.body.size() +
                  kAuthorization.size() + call.bearer.size() + 256);
  request.append(call.method).append(" ").append(call.path).append(" HTTP/1.1\r\n");
  request.append("Host: ").append(host).append("\r\n");
  request.append("User-Agent: kosli-credd/" KOSLI_VERSION "\r\nAccept: application/json\r\nConnection: close\r\n");
  request.append(kAuthorization).append(call.bearer.reveal()).append("\r\n");
  request.append(body_headers).append("\r\n").append(call.body);

  const auto request_time =
      std::max<Clock::duration>(std::min<Clock::duration>(request_deadline, deadline - Clock::now()),
                                Clock::duration::zero());
  beast::get_lowest_layer(stream).expires_after(request_time);
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(request), kAwait);
  wipe(request);
  if (wec) {
    co_return Attempt{failure(wec == beast::error::timeout ? Unreachable::timeout : Unreachable::network,
                              "the connection broke while sending the request: " + wec.message(), true),
                      false};
  }

  const std::size_t limit = kMaxAnswerHeaderBytes + (call.want_body ? kMaxAnswerBodyBytes : 0);
  beast::flat_buffer buffer(limit);
  buffer.reserve(limit);
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxAnswerHeaderBytes);
  parser.body_limit(kMaxAnswerBodyBytes);
  beast::error_code rec;
  if (call.want_body) {
    std::tie(rec, std::ignore) = co_await http::async_read(stream, buffer, parser, kAwait);
  } else {
    std::tie(rec, std::ignore) = co_await http::async_read_header(stream, buffer, parser, kAwait);
  }
  wipe_buffer(buffer);
  if (rec) {
    auto& body = parser.get().body();
    wipe(body);
    if (rec == beast::error::timeout) {
      co_return Attempt{failure(Unreachable::timeout, "no answer within " + seconds_text(request_time) + " (timed out)",
                                true),
                        false};
    }
    co_return Attempt{failure(Unreachable::protocol, "the answer could not be read: " + rec.message(), true), false};
  }
  auto& res = parser.get();
  HttpAnswer answer{static_cast<int>(res.result_int()), std::move(res.body()), std::nullopt};
  if (const auto it = res.find(http::field::retry_after); it != res.end()) answer.retry_after = retry_after(it->value());
  co_return Attempt{std::move(answer), false};
}

}  // namespace kosli::daemon::https_detail
