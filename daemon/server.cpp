#include "daemon/server.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "daemon/peer_identity.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

// The first read of a request; the rest is read by the HTTP parser.
constexpr std::size_t kFirstReadBytes = 1024;
// A request in flight when the daemon is told to stop gets this long to finish.
constexpr std::chrono::seconds kShutdownGrace{10};

class Session;

// What the listener and every session share.
struct ServerState {
  Router& router;
  std::vector<uid_t> allowed_uids;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> open{0};

  std::mutex mutex;
  std::map<Session*, std::weak_ptr<Session>> sessions;
  std::function<void()> on_last_session_closed;  // set when stopping
};

std::string canned_response(ErrorCode code, const std::string& message) {
  http::response<http::string_body> res{static_cast<http::status>(http_status(code)), 11};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = error_body(ApiError{code, message});
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  return out.str();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket&& socket, const Peer& peer, ServerState& state)
      : stream_(std::move(socket)), peer_(peer), state_(state) {
    ++state_.open;
  }

  ~Session() {
    std::function<void()> last;
    {
      std::lock_guard lock(state_.mutex);
      state_.sessions.erase(this);
      if (state_.sessions.empty()) last = state_.on_last_session_closed;
    }
    --state_.open;
    if (last) last();
  }

  void start() {
    {
      std::lock_guard lock(state_.mutex);
      state_.sessions.emplace(this, weak_from_this());
    }
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

  // Called on shutdown: a connection waiting for its next request is closed now.
  void close_if_idle() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) self->stream_.cancel();
    });
  }

 private:
  void do_read() {
    if (state_.stopping) return do_close();
    parser_.emplace();
    parser_->header_limit(limits::kMaxHeaderBytes);
    parser_->body_limit(limits::kMaxBodyBytes);
    if (buffer_.size() > 0) return read_request();  // a pipelined request
    // Between requests the connection may idle; once a byte arrives, the whole
    // request must follow within the request deadline.
    idle_ = true;
    stream_.expires_after(limits::kIdleKeepAliveDeadline);
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    idle_ = false;
    if (ec) return do_close();  // closed by the peer, idle timeout, or shutdown
    buffer_.commit(n);
    read_request();
  }

  void read_request() {
    stream_.expires_after(limits::kRequestReadDeadline);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec) return refuse_request(ec);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    Request request{std::string(req.method_string()), std::string(req.target()),
                    std::string(req[http::field::content_type]), std::move(req.body())};
    wipe_consumed_input();
    method_ = request.method;
    target_ = request.target;
    state_.router.handle(std::move(request), peer_, [self = shared_from_this()](Response response) {
      asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->send(std::move(response));
      });
    });
  }

  // A request the parser could not accept: answer what can be answered, close.
  void refuse_request(beast::error_code ec) {
    keep_alive_ = false;
    if (ec == http::error::header_limit) {
      return send(error_response(ErrorCode::headers_too_large, "the request headers are larger than 8 KiB"));
    }
    if (ec == http::error::body_limit) {
      return send(error_response(ErrorCode::payload_too_large, "the request body is larger than 64 KiB"));
    }
    if (ec == beast::error::timeout) {
      return send(error_response(ErrorCode::timeout, "the request did not arrive within 10 s"));
    }
    if (ec.category() == beast::error_code(http::error::header_limit).category()) {  // any other framing error
      spdlog::debug("peer pid {}: malformed request: {}", peer_.pid, ec.message());
      return send(error_response(ErrorCode::bad_request, "malformed HTTP request: " + ec.message()));
    }
    do_close();
  }

  void send(Response response) {
    spdlog::debug("uid {} pid {}: {} {} -> {}", peer_.uid, peer_.pid, method_, target_, response.status);
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(response.status));
    res_.set(http::field::server, "kosli-credd");
    if (!response.body.empty()) res_.set(http::field::content_type, response.content_type);
    if (response.sensitive) res_.set(http::field::cache_control, "no-store");
    if (!response.allow.empty()) res_.set(http::field::allow, response.allow);
    sensitive_ = response.sensitive;
    res_.body() = std::move(response.body);
    res_.keep_alive(keep_alive_ && !state_.stopping);
    res_.prepare_payload();
    stream_.expires_after(limits::kRequestReadDeadline);
    http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (sensitive_) wipe(res_.body());
    if (ec || !res_.keep_alive()) return do_close();
    do_read();
  }

  // The read buffer still holds the raw bytes of the request (a PUT carries a
  // key): zero them once the parser has consumed them.
  void wipe_consumed_input() {
    if (buffer_.size() != 0) return;  // pipelined bytes remain; wiped with the next request
    auto whole = buffer_.prepare(buffer_.capacity());
    wipe(whole.data(), whole.size());
  }

  void do_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(local::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::basic_stream<local> stream_;
  beast::flat_buffer buffer_{limits::kMaxHeaderBytes + limits::kMaxBodyBytes + kFirstReadBytes};
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  Peer peer_;
  ServerState& state_;
  std::string method_, target_;
  bool keep_alive_ = false;
  bool sensitive_ = false;
  bool idle_ = false;
};

}  // namespace

class Server::Impl {
 public:
  Impl(int listen_fd, Router& router, ServerOptions options)
      : options_(std::move(options)),
        state_{router, options_.allowed_uids},
        acceptor_(ioc_, local(), listen_fd),
        signals_(ioc_, SIGINT, SIGTERM),
        housekeeping_timer_(ioc_),
        shutdown_timer_(ioc_),
        work_(asio::make_work_guard(ioc_)) {}

  void run(const std::function<void()>& on_ready, std::function<void()> housekeeping) {
    housekeeping_ = std::move(housekeeping);
    signals_.async_wait([this](beast::error_code ec, int signo) {
      if (!ec) stop(signo);
    });
    schedule_housekeeping();
    do_accept();
    if (on_ready) on_ready();
    std::vector<std::thread> extra;
    for (std::size_t i = 1; i < options_.threads; ++i) extra.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& t : extra) t.join();
  }

 private:
  void do_accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, local::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) spdlog::error("accept failed: {}", ec.message());
        return;  // stop accepting rather than spin
      }
      on_accept(std::move(socket));
      do_accept();
    });
  }

  void on_accept(local::socket socket) {
    const auto peer = peer_of(socket.native_handle());
    const uid_t me = ::geteuid();
    if (!peer || (peer->uid != me && std::find(state_.allowed_uids.begin(), state_.allowed_uids.end(),
                                               peer->uid) == state_.allowed_uids.end())) {
      spdlog::warn("refused a connection from uid {} pid {}: not this daemon's user",
                   peer ? static_cast<long>(peer->uid) : -1L, peer ? peer->pid : -1);
      if (peer) state_.router.connection_refused(*peer, "uid not allowed");
      return refuse(std::move(socket), ErrorCode::forbidden,
                    "this kosli-credd serves uid " + std::to_string(me) +
                        " only; start your own, or ask its owner to add --allow-uid");
    }
    if (state_.open >= limits::kMaxOpenConnections) {
      spdlog::warn("refused a connection from pid {}: {} connections are open", peer->pid,
                   limits::kMaxOpenConnections);
      return refuse(std::move(socket), ErrorCode::too_many_requests,
                    "too many open connections to kosli-credd; close some and retry");
    }
    std::make_shared<Session>(std::move(socket), *peer, state_)->start();
  }

  static void refuse(local::socket socket, ErrorCode code, const std::string& message) {
    beast::error_code ignored;
    asio::write(socket, asio::buffer(canned_response(code, message)), ignored);
    socket.shutdown(local::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  void schedule_housekeeping() {
    housekeeping_timer_.expires_after(options_.housekeeping_interval);
    housekeeping_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      if (housekeeping_) housekeeping_();
      schedule_housekeeping();
    });
  }

  void stop(int signo) {
    spdlog::info("received signal {}: finishing requests in flight, then exiting", signo);
    state_.stopping = true;
    beast::error_code ignored;
    acceptor_.close(ignored);
    housekeeping_timer_.cancel();
    shutdown_timer_.expires_after(kShutdownGrace);
    shutdown_timer_.async_wait([this](beast::error_code ec) {
      if (!ec) {
        spdlog::warn("requests still in flight after {} s; exiting anyway", kShutdownGrace.count());
        ioc_.stop();
      }
    });
    std::vector<std::shared_ptr<Session>> alive;
    {
      std::lock_guard lock(state_.mutex);
      for (auto& [ptr, weak] : state_.sessions) {
        if (auto s = weak.lock()) alive.push_back(std::move(s));
      }
      if (state_.sessions.empty()) {
        return asio::post(ioc_, [this] { finish(); });
      }
      state_.on_last_session_closed = [this] { asio::post(ioc_, [this] { finish(); }); };
    }
    for (auto& s : alive) s->close_if_idle();
  }

  void finish() {
    shutdown_timer_.cancel();
    work_.reset();
  }

  ServerOptions options_;
  ServerState state_;  // outlives ioc_: sessions destroyed with it still use it
  asio::io_context ioc_;
  local::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer housekeeping_timer_;
  asio::steady_timer shutdown_timer_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::function<void()> housekeeping_;
};

Server::Server(int listen_fd, Router& router, ServerOptions options)
    : impl_(std::make_unique<Impl>(listen_fd, router, std::move(options))) {}
Server::~Server() = default;

void Server::run(const std::function<void()>& on_ready, std::function<void()> housekeeping) {
  impl_->run(on_ready, std::move(housekeeping));
}

}  // namespace kosli::daemon
