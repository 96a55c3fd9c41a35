// Bytes on the daemon's socket → Beast's request parser with the protocol's
// limits (daemon/http_request.*, as the server uses it) → the Router with an
// in-memory store → the response as it would be written. Pipelined requests in
// one input run one after another on the same connection, as in the server.
//
// Besides crashes and sanitizer reports, it traps when the Router answers other
// than exactly once, answers 500, or sends an error whose body is not
// {"error":{"code","message"}}.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "daemon/ops/audit_log.hpp"
#include "daemon/transport/http_request.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/handlers/router.hpp"
#include "daemon/store/memory_store.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "proto/errors.hpp"

namespace {

using namespace kosli;
using namespace kosli::daemon;
namespace beast = boost::beast;
namespace http = beast::http;

// A second pass feeds the same bytes this many at a time, as a slow peer would.
constexpr std::size_t kSlowChunk = 7;

// One daemon's worth of state: a fresh one for every input.
struct Daemon {
  MemoryStore store;
  StoreWorker worker{store};
  TokenCache cache{std::chrono::seconds(600)};
  Policy policy;
  Metrics metrics;
  Router router;
  Peer peer;

  explicit Daemon(AuditLog& audit) : router(worker, cache, policy, audit, metrics) {
    peer.pid = ::getpid();
    peer.uid = ::getuid();
    peer.exe = "/usr/bin/kosli";
    peer.requester = peer.exe;
    peer.requester_pid = peer.pid;
  }
};

// Feeds `in` to `parser` as a stream delivering `chunk` bytes at a time, the way
// http::async_read does; returns the error the read ends with. Consumes what
// the parser used, leaving a pipelined request's bytes in `in`.
beast::error_code read_one(RequestParser& parser, std::string_view& in, std::size_t chunk) {
  std::size_t available = 0;
  bool need_more = true;
  for (;;) {
    if (parser.is_done()) return {};
    if (need_more || available == 0) {
      const std::size_t grown = std::min(available + chunk, in.size());
      if (grown == available) {  // the peer sent nothing more and closed
        if (!parser.got_some()) return http::error::end_of_stream;
        beast::error_code ec;
        parser.put_eof(ec);
        return ec;
      }
      available = grown;
    }
    beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(in.data(), available), ec);
    in.remove_prefix(used);
    available -= used;
    need_more = ec == http::error::need_more;
    if (ec && !need_more) return ec;
  }
}

void check_response(const Response& response) {
  if (response.status < 200 || response.status > 599 || response.status == 500) __builtin_trap();
  if (response.status >= 400 && !parse_error_body(response.body)) __builtin_trap();
}

void write(Response response, bool keep_alive) {
  check_response(response);
  std::ostringstream out;
  out << to_http_response(std::move(response), keep_alive);
}

void serve(AuditLog& audit, std::string_view in, std::size_t chunk) {
  Daemon daemon(audit);
  for (;;) {
    RequestParser parser;
    apply_request_limits(parser);
    parser.eager(true);
    const auto ec = read_one(parser, in, chunk);
    auto outcome = take_request(parser, ec);
    if (std::holds_alternative<CloseConnection>(outcome)) return;
    if (auto* refused = std::get_if<RefusedRequest>(&outcome)) return write(std::move(refused->response), false);

    auto& parsed = std::get<ParsedRequest>(outcome);
    int replies = 0;
    std::optional<Response> answer;
    daemon.router.handle(std::move(parsed.request), daemon.peer, [&](Response r) {
      ++replies;
      answer = std::move(r);
    });
    if (replies != 1) __builtin_trap();  // the memory store answers inline, exactly once
    write(std::move(*answer), parsed.keep_alive);
    if (!parsed.keep_alive) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static AuditLog audit("/dev/null");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  serve(audit, input, input.size() + 1);
  serve(audit, input, kSlowChunk);
  return 0;
}
