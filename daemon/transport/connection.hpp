// Private to daemon/transport/ (server.cpp and connection.cpp): what the listener
// and its connections share, a connection (Session) and a refused one
// (Refusal). The heavy Asio and Beast headers stay inside the transport.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/messages.hpp"
#include "daemon/handlers/router.hpp"
#include "daemon/ops/metrics.hpp"
#include "daemon/transport/http_request.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "proto/display.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon::transport {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

// The first read of a request; the rest is read by the HTTP parser.
constexpr std::size_t kFirstReadBytes = 1024;
// A request in flight when the daemon is told to stop gets this long to finish.
constexpr std::chrono::seconds kShutdownGrace{10};
// How often --idle-exit looks: a quarter of the idle time, within these bounds.
constexpr std::chrono::seconds kMinIdleCheck{1};
constexpr std::chrono::seconds kMaxIdleCheck{30};
// How often --parent-pid looks, where pidfd_open is not available.
constexpr std::chrono::seconds kParentPollInterval{1};

using Clock = std::chrono::steady_clock;

// How often open connections are checked against their deadlines (which are
// therefore kept to within this much).
constexpr std::chrono::milliseconds kSweepInterval{250};

// At the connection cap, making room is logged at most this often.
constexpr std::chrono::seconds kCapWarningInterval{60};

// After accept fails (out of descriptors, or of kernel memory), the next try
// comes this much later; the failures are logged at most once a minute.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
constexpr std::chrono::seconds kAcceptWarningInterval{60};
// Out of descriptors, this many idle or stalled connections are closed a try.
constexpr std::size_t kShedOnExhaustion = 16;

// A refused connection: its request is read (to the end of its header) and
// discarded within the first deadline, then, once the answer is written, what
// the peer still sends is discarded until it closes, within the second.
constexpr std::chrono::milliseconds kRefusalReadDeadline{1000};
constexpr std::chrono::milliseconds kRefusalLingerDeadline{1000};
// ... reading at most this much in all, and at most this many connections at
// once (beyond it they are answered and closed at once, as a reset may cut off).
constexpr std::size_t kRefusalReadBytes = limits::kMaxHeaderBytes + limits::kMaxBodyBytes;
constexpr std::size_t kMaxLingeringRefusals = 16;

class Session;

// What the listener and every session share.
struct ServerState {
  Router& router;
  Metrics& metrics;
  std::function<void(const Peer&, std::string_view)> on_refused;
  std::vector<uid_t> allowed_uids;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> open{0};
  // Connections chosen to make room at the cap that have not closed yet.
  std::atomic<std::size_t> leaving{0};
  std::atomic<Clock::rep> last_cap_warning{0};
  std::atomic<std::size_t> lingering_refusals{0};
  // When a connection last opened or closed, or the daemon was last busy.
  std::atomic<Clock::rep> last_busy{Clock::now().time_since_epoch().count()};

  void mark_busy() { last_busy = Clock::now().time_since_epoch().count(); }

  std::mutex mutex;
  std::map<Session*, std::weak_ptr<Session>> sessions;
  std::function<void()> on_last_session_closed;  // set when stopping
};

// A complete HTTP/1.1 error answer that closes the connection.
std::string canned_response(ErrorCode code, const std::string& message);

class Session : public std::enable_shared_from_this<Session>, private Interim {
 public:
  // Where a connection is: waiting for its next request, reading one, being
  // answered (routing, perhaps a store call), or writing the answer.
  enum class Phase { idle, reading, answering, writing };

  Session(local::socket&& socket, const Peer& peer, ServerState& state)
      : socket_(std::move(socket)), peer_(peer), state_(state) {
    ++state_.open;
    state_.metrics.connection_opened();
  }

  ~Session() {
    // A final answer held behind a 102 write, or one being written, when the
    // handler that would have wiped it never runs (the loop stopped first).
    if (pending_ && pending_->sensitive) wipe(pending_->body);
    if (sensitive_) wipe(res_.body());
    std::function<void()> last;
    {
      std::lock_guard lock(state_.mutex);
      state_.sessions.erase(this);
      if (state_.sessions.empty()) last = state_.on_last_session_closed;
    }
    if (leaving_.exchange(false)) --state_.leaving;
    --state_.open;
    state_.metrics.connection_closed();
    state_.mark_busy();
    if (last) last();
  }

  void start() {
    {
      std::lock_guard lock(state_.mutex);
      state_.sessions.emplace(this, weak_from_this());
    }
    asio::dispatch(socket_.get_executor(), beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

  // Called on shutdown: a connection waiting for its next request is closed now.
  void close_if_idle() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;  // a connection closed meanwhile has nothing to cancel
      if (self->phase_ == Phase::idle) self->socket_.cancel(ignored);
    });
  }

  Phase phase() const { return phase_; }
  Clock::rep phase_since() const { return phase_since_; }

  // Called by the server's sweep (a few times a second while connections are
  // open) in place of a timer per request: acts when this connection's deadline
  // has passed. A request still arriving is cancelled and answered 408; an idle
  // connection, or one whose peer does not read its answer, is closed.
  void expire_if_due(Clock::rep now) {
    const auto due = deadline_.load(std::memory_order_relaxed);
    if (due == 0 || due > now) return;
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      const auto due = self->deadline_.load(std::memory_order_relaxed);
      if (due == 0 || due > Clock::now().time_since_epoch().count()) return;  // it moved on meanwhile
      if (self->phase_ == Phase::reading && !self->timed_out_) {
        // The read is cancelled and answered 408. Should the cancel find no
        // operation to stop (its completion already queued), the next sweep closes.
        self->timed_out_ = true;
        self->deadline_ = Clock::now().time_since_epoch().count() + Clock::duration(kSweepInterval).count();
        beast::error_code ignored;
        self->socket_.cancel(ignored);
      } else {
        self->deadline_ = 0;
        self->do_close();
      }
    });
  }

  // Closes this connection to make room at the cap, unless it is being
  // answered; false when it is, or was chosen already.
  bool make_room() {
    if (busy(phase_) || leaving_.exchange(true)) return false;
    ++state_.leaving;
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      if (!busy(self->phase_)) return self->do_close();
      if (self->leaving_.exchange(false)) --self->state_.leaving;  // its request came in after all
    });
    return true;
  }

  static bool busy(Phase phase) { return phase == Phase::answering || phase == Phase::writing; }

 private:
  void do_read() {
    if (state_.stopping) return do_close();
    parser_.emplace();
    apply_request_limits(*parser_);
    parser_->eager(true);
    if (buffer_.size() > 0) return parse_buffered();  // a pipelined request
    // Between requests the connection may idle; once a byte arrives, the whole
    // request must follow within the request deadline.
    enter(Phase::idle, limits::kIdleKeepAliveDeadline);
    socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    if (ec) return do_close();  // closed by the peer, idle timeout, or shutdown
    buffer_.commit(n);
    parse_buffered();
  }

  // A request nearly always arrives whole in one read: parse what is buffered
  // here, and read more only when the parser needs it.
  void parse_buffered() {
    enter(Phase::reading, limits::kRequestReadDeadline);
    beast::error_code ec;
    buffer_.consume(parser_->put(buffer_.data(), ec));
    // An eager parser stops without an error once what is buffered is used up
    // and the body is not whole yet; need_more means the header is not.
    const bool whole_or_broken = ec ? ec != http::error::need_more : parser_->is_done();
    if (whole_or_broken) return on_read(ec, 0);
    timed_out_ = false;
    if (parser_->is_header_done()) return on_header({}, 0);
    http::async_read_header(socket_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  // The header is whole and a body is still to come. A request refused on its
  // header is answered without reading the body; a peer that waits with
  // `Expect: 100-continue` is told to send it.
  void on_header(beast::error_code ec, std::size_t) {
    if (ec || parser_->is_done() || header_refused(*parser_)) return on_read(ec, 0);
    if (!expects_continue(*parser_)) return read_body();
    asio::async_write(socket_, asio::buffer(kContinueResponse),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return self->on_read(ec, 0);
                        self->read_body();
                      });
  }

  void read_body() {
    http::async_read(socket_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (timed_out_ && ec == asio::error::operation_aborted) ec = beast::error::timeout;
    enter(Phase::answering);
    auto outcome = take_request(*parser_, ec);
    if (std::holds_alternative<CloseConnection>(outcome)) return do_close();
    if (auto* refused = std::get_if<RefusedRequest>(&outcome)) {
      // Answer what can be answered, then close; nothing more is read.
      state_.metrics.request_answered(std::nullopt, refused->response.status, {});
      keep_alive_ = false;
      buffer_.consume(buffer_.size());
      wipe_consumed_input();
      method_.clear();
      target_ = ec ? "(refused: " + ec.message() + ")" : "(refused on its header)";
      return send(std::move(refused->response));
    }
    auto& parsed = std::get<ParsedRequest>(outcome);
    keep_alive_ = parsed.keep_alive;
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 peer.
    if (parser_->get().version() >= 11) parsed.request.interim = this;
    wipe_consumed_input();
    // The request line is only logged at debug level, escaped: the parser lets
    // through bytes (C1 controls, bidi overrides in UTF-8) a terminal acts on.
    if (spdlog::should_log(spdlog::level::debug)) {
      method_ = display_safe(parsed.request.method);
      target_ = display_safe(parsed.request.target);
    }
    // A cached token is answered inline, on this strand: dispatch sends it at
    // once. A store call answers from the store's thread: dispatch posts it here.
    state_.router.handle(std::move(parsed.request), peer_, [self = shared_from_this()](Response response) {
      asio::dispatch(self->socket_.get_executor(), [self, response = std::move(response)]() mutable {
        self->send(std::move(response));
      });
    });
  }

  // Interim: from any thread, while the request's Reply is pending (which keeps this session).
  void asking_person(std::chrono::seconds open_for) override {
    asio::dispatch(socket_.get_executor(),
                   [self = shared_from_this(), open_for] { self->send_interim(open_for); });
  }

  // "102 Processing" before the final answer: one write in flight at a time, so
  // a final answer that comes meanwhile waits for it (send()).
  void send_interim(std::chrono::seconds open_for) {
    if (phase_ != Phase::answering || interim_writing_) return;
    spdlog::debug("uid {} pid {}: {} {} -> 102 (asking a person, {} s)", peer_.uid, peer_.pid, method_, target_,
                  open_for.count());
    interim_ = interim_response(open_for);
    interim_writing_ = true;
    asio::async_write(socket_, asio::buffer(interim_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->interim_writing_ = false;
      auto pending = std::exchange(self->pending_, std::nullopt);
      if (ec) {
        if (pending && pending->sensitive) wipe(pending->body);
        return self->do_close();
      }
      if (pending) self->send(std::move(*pending));
    });
  }

  void send(Response response) {
    if (interim_writing_) {
      pending_ = std::move(response);
      return;
    }
    spdlog::debug("uid {} pid {}: {} {} -> {}", peer_.uid, peer_.pid, method_, target_, response.status);
    sensitive_ = response.sensitive;
    res_ = to_http_response(std::move(response), keep_alive_ && !state_.stopping);
    enter(Phase::writing, limits::kRequestReadDeadline);
    http::async_write(socket_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
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

  // Moves to `phase`; its deadline counts from now (none while answering: the
  // router bounds its own store calls).
  void enter(Phase phase, std::chrono::seconds deadline = {}) {
    const auto now = Clock::now().time_since_epoch().count();
    phase_since_ = now;
    phase_ = phase;
    deadline_.store(deadline.count() == 0 ? 0 : now + Clock::duration(deadline).count(), std::memory_order_relaxed);
  }

  void do_close() {
    beast::error_code ignored;
    deadline_ = 0;
    socket_.shutdown(local::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  local::socket socket_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_{limits::kMaxHeaderBytes + limits::kMaxBodyBytes + kFirstReadBytes};
  std::optional<RequestParser> parser_;
  HttpResponse res_;
  Peer peer_;
  ServerState& state_;
  std::string method_, target_;
  bool keep_alive_ = false;
  bool sensitive_ = false;
  // The interim answer being written, and a final one that came meanwhile.
  std::string interim_;
  bool interim_writing_ = false;
  std::optional<Response> pending_;
  // Read by the acceptor (make_room) and the sweep, written on this connection's strand.
  std::atomic<Phase> phase_{Phase::answering};
  std::atomic<Clock::rep> phase_since_{0};
  std::atomic<Clock::rep> deadline_{0};  // 0: none
  std::atomic<bool> leaving_{false};
};

}  // namespace kosli::daemon::transport
