#include "client/daemon_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "client/autostart.hpp"
#include "client/cli_error.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/secret.hpp"

namespace kosli::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

std::string unreachable_advice(const std::string& path) {
  return "start it with 'kosli-credd' (or 'systemctl --user start kosli-credd.socket'), "
         "or point --socket / KOSLI_CRED_SOCKET at the socket it serves (looked for " + path + ")";
}

// Nobody listens: no socket file, or a stale one.
bool nobody_listens(const beast::error_code& ec) {
  return ec == asio::error::not_found || ec == asio::error::connection_refused ||
         ec == beast::errc::no_such_file_or_directory;
}

}  // namespace

class DaemonClient::Connection {
 public:
  // Connects; when nobody listens, starts kosli-credd on demand (unless
  // KOSLI_CRED_AUTOSTART=0) and connects once more.
  explicit Connection(const std::string& path) : stream_(ioc_) {
    beast::error_code result = connect(path);
    if (nobody_listens(result) && autostart_enabled()) {
      const auto not_started = start_daemon(path);
      result = connect(path);  // also finds a daemon another client started meanwhile
      if (result && not_started) {
        throw CliError(exit_code::daemon_unreachable,
                       "kosli-credd is not running and could not be started: " + *not_started);
      }
    }
    if (nobody_listens(result)) {
      throw CliError(exit_code::daemon_unreachable, "kosli-credd is not running; " + unreachable_advice(path));
    }
    if (result == beast::error::timeout) {
      throw CliError(exit_code::daemon_unreachable,
                     "kosli-credd at " + path + " did not accept the connection within " +
                         std::to_string(limits::kClientRequestDeadline.count()) + " s");
    }
    if (result) {
      throw CliError(exit_code::daemon_unreachable,
                     "cannot connect to kosli-credd at " + path + ": " + result.message());
    }
  }

  HttpResult request(std::string_view method, const std::string& target, std::string* body,
                     const std::string& path) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::user_agent, "kosli-cred/" KOSLI_VERSION);
    req.keep_alive(true);
    if (body != nullptr) {
      req.set(http::field::content_type, "application/json");
      req.body() = std::move(*body);
    }
    req.prepare_payload();

    http::response_parser<http::string_body> parser;
    parser.body_limit(limits::kMaxResponseBodyBytes);
    beast::flat_buffer buffer;
    beast::error_code write_error, result;
    stream_.expires_after(limits::kClientRequestDeadline);
    http::async_write(stream_, req, [&](beast::error_code ec, std::size_t) {
      wipe(req.body());
      write_error = ec;
      // Read even after a failed write: a daemon that refuses this peer answers
      // (403) and closes before reading the request.
      http::async_read(stream_, buffer, parser, [&](beast::error_code ec2, std::size_t) { result = ec2; });
    });
    ioc_.restart();
    ioc_.run();
    if (buffer.size() == 0) {
      auto whole = buffer.prepare(buffer.capacity());
      wipe(whole.data(), whole.size());
    }
    if (result == beast::error::timeout) {
      throw CliError(exit_code::daemon_unreachable,
                     "kosli-credd at " + path + " did not answer within " +
                         std::to_string(limits::kClientRequestDeadline.count()) + " s");
    }
    if (result && write_error) result = write_error;
    if (result) {
      throw CliError(exit_code::daemon_unreachable,
                     "lost the connection to kosli-credd at " + path + ": " + result.message());
    }
    auto res = parser.release();
    return HttpResult{static_cast<int>(res.result_int()), std::move(res.body())};
  }

 private:
  // A blocking connect(2), bounded by SO_SNDTIMEO. When the daemon's listen
  // backlog is full, a non-blocking connect on a Unix socket fails with EAGAIN
  // and connects nothing, which Asio's async_connect takes for "in progress"
  // and then reports as success; the first write fails with ENOTCONN. A
  // blocking one waits for the daemon to accept.
  beast::error_code connect(const std::string& path) {
    beast::error_code ec;
    stream_.close();
    auto& socket = stream_.socket();
    socket.open(local(), ec);
    if (ec) return ec;
    const timeval deadline{static_cast<time_t>(limits::kClientRequestDeadline.count()), 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
    const local::endpoint endpoint(path);
    if (::connect(socket.native_handle(), endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
      ec.assign(errno, boost::system::system_category());
      if (ec == beast::errc::resource_unavailable_try_again) ec = beast::error::timeout;  // still no room
    }
    return ec;
  }

  asio::io_context ioc_;
  beast::basic_stream<local> stream_;
};

DaemonClient::DaemonClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}
DaemonClient::~DaemonClient() = default;

HttpResult DaemonClient::request(std::string_view method, const std::string& target, std::string* body) {
  if (!connection_) connection_ = std::make_unique<Connection>(socket_path_);
  HttpResult result = connection_->request(method, target, body, socket_path_);
  if (result.status >= 200 && result.status < 300) return result;
  const auto error = parse_error_body(result.body);
  wipe(result.body);
  if (!error) {
    throw CliError(exit_code::error, "kosli-credd answered HTTP " + std::to_string(result.status));
  }
  throw CliError(exit_code_for(error->code), error->message);
}

}  // namespace kosli::client
