#include "daemon/transport/server.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "daemon/transport/http_request.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "daemon/transport/refused_peers.hpp"
#include "proto/display.hpp"
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

// A connection refused before a request is read from it (another uid, or no
// room). Its peer has usually sent a request, or is sending one: closed with
// that unread, the connection would be reset, and the peer could read the reset
// instead of the answer. So the request is read and discarded first, the answer
// written, the connection half-closed, and what the peer still sends discarded
// until it closes; all bounded by the kRefusal* limits.
class Refusal : public std::enable_shared_from_this<Refusal> {
 public:
  Refusal(local::socket&& socket, std::shared_ptr<const std::string> answer, ServerState& state)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), answer_(std::move(answer)), state_(state) {
    ++state_.lingering_refusals;
  }
  ~Refusal() { --state_.lingering_refusals; }

  void start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      self->timer_.expires_after(kRefusalReadDeadline);
      self->timer_.async_wait([self](beast::error_code ec) {
        if (!ec && !self->answering_) self->socket_.cancel();  // answered without the rest of the request
      });
      self->read_request();
    });
  }

 private:
  void read_request() {
    socket_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->read_ += n;
      if (!ec && !self->header_ends_in(n) && self->read_ < limits::kMaxHeaderBytes) return self->read_request();
      self->answer();  // the header is whole, too large, or no more is coming
    });
  }

  // Whether the `n` bytes just read complete the header's closing CRLF CRLF.
  bool header_ends_in(std::size_t n) {
    static constexpr std::string_view kEnd = "\r\n\r\n";
    for (std::size_t i = 0; i < n; ++i) {
      const char c = scratch_[i];
      matched_ = c == kEnd[matched_] ? matched_ + 1 : c == '\r' ? 1 : 0;
      if (matched_ == kEnd.size()) return true;
    }
    return false;
  }

  void answer() {
    answering_ = true;
    timer_.expires_after(kRefusalLingerDeadline);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->close();
    });
    asio::async_write(socket_, asio::buffer(*answer_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      beast::error_code ignored;
      self->socket_.shutdown(local::socket::shutdown_send, ignored);
      self->drain();
    });
  }

  void drain() {
    socket_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->read_ += n;
      if (ec || self->read_ > kRefusalReadBytes) return self->close();  // ec: the peer closed, or the deadline
      self->drain();
    });
  }

  void close() {
    beast::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  local::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<const std::string> answer_;
  ServerState& state_;
  std::array<char, 4096> scratch_;
  std::size_t read_ = 0;
  std::size_t matched_ = 0;  // how much of the header's end the last bytes were
  bool answering_ = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // Where a connection is: waiting for its next request, reading one, being
  // answered (routing, perhaps a store call), or writing the answer.
  enum class Phase { idle, reading, answering, writing };

  Session(local::socket&& socket, const Peer& peer, ServerState& state)
      : socket_(std::move(socket)), peer_(peer), state_(state) {
    ++state_.open;
    state_.router.metrics().connection_opened();
  }

  ~Session() {
    std::function<void()> last;
    {
      std::lock_guard lock(state_.mutex);
      state_.sessions.erase(this);
      if (state_.sessions.empty()) last = state_.on_last_session_closed;
    }
    if (leaving_.exchange(false)) --state_.leaving;
    --state_.open;
    state_.router.metrics().connection_closed();
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
      if (self->phase_ == Phase::idle) self->socket_.cancel();
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
        self->socket_.cancel();
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
      state_.router.metrics().request_answered(std::nullopt, refused->response.status, {});
      keep_alive_ = false;
      buffer_.consume(buffer_.size());
      wipe_consumed_input();
      method_.clear();
      target_ = ec ? "(refused: " + ec.message() + ")" : "(refused on its header)";
      return send(std::move(refused->response));
    }
    auto& parsed = std::get<ParsedRequest>(outcome);
    keep_alive_ = parsed.keep_alive;
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

  void send(Response response) {
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
  // Read by the acceptor (make_room) and the sweep, written on this connection's strand.
  std::atomic<Phase> phase_{Phase::answering};
  std::atomic<Clock::rep> phase_since_{0};
  std::atomic<Clock::rep> deadline_{0};  // 0: none
  std::atomic<bool> leaving_{false};
};

}  // namespace

class Server::Impl {
 public:
  Impl(int listen_fd, Router& router, ServerOptions options)
      : options_(std::move(options)),
        state_{router, options_.allowed_uids},
        acceptor_(ioc_, local(), listen_fd),
        signals_(ioc_, SIGINT, SIGTERM, SIGHUP),
        housekeeping_timer_(ioc_),
        shutdown_timer_(ioc_),
        idle_timer_(ioc_),
        parent_timer_(ioc_),
        parent_watch_(ioc_),
        sweep_strand_(asio::make_strand(ioc_)),
        sweep_timer_(sweep_strand_),
        work_(asio::make_work_guard(ioc_)) {}

  void post(std::function<void()> fn) { asio::post(ioc_, std::move(fn)); }
  std::size_t open_connections() const { return state_.open; }

  void run(const std::function<void()>& on_ready, std::function<void()> housekeeping) {
    housekeeping_ = std::move(housekeeping);
    wait_for_signal();
    schedule_housekeeping();
    schedule_idle_check();
    watch_parent();
    do_accept();
    if (on_ready) on_ready();
    std::vector<std::thread> extra;
    for (std::size_t i = 1; i < options_.threads; ++i) extra.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& t : extra) t.join();
  }

 private:
  void do_accept() {
    acceptor_.async_accept(connection_executor(), [this](beast::error_code ec, local::socket socket) {
      if (ec == asio::error::operation_aborted || state_.stopping) return;  // shutting down
      if (ec) return accept_failed(ec);
      if (accept_failure_logged_) {
        spdlog::info("accepting connections again");
        accept_failure_logged_ = false;
      }
      on_accept(std::move(socket));
      do_accept();
    });
  }

  // Out of descriptors (EMFILE, ENFILE), of kernel memory (ENOBUFS, ENOMEM) or
  // anything else: accepting is tried again after a pause rather than spinning,
  // and never given up while the daemon serves. Out of descriptors, the
  // connections idle or stalled longest are closed to make room, so the owner's
  // next connection gets in.
  void accept_failed(beast::error_code ec) {
    ++accept_failures_;
    const bool out_of_descriptors = ec == asio::error::no_descriptors || ec == std::errc::too_many_files_open_in_system;
    const std::size_t shed = out_of_descriptors ? close_idlest(kShedOnExhaustion) : 0;
    const auto now = Clock::now();
    if (!last_accept_warning_ || now - *last_accept_warning_ >= kAcceptWarningInterval) {
      spdlog::error(
          "accept failed: {} ({} open connections{}); trying again every {} ms, logged at most once a "
          "minute{}",
          ec.message(), state_.open.load(), shed > 0 ? ", closing the " + std::to_string(shed) + " idle longest" : "",
          kAcceptRetryDelay.count(),
          accept_failures_ > 1 ? " (" + std::to_string(accept_failures_) + " failures since the last)" : "");
      last_accept_warning_ = now;
      accept_failures_ = 0;
      accept_failure_logged_ = true;
    }
    accept_timer_.expires_after(kAcceptRetryDelay);
    accept_timer_.async_wait([this](beast::error_code ec) {
      if (!ec && !state_.stopping) do_accept();
    });
  }

  // Where a connection's handlers run: with one event-loop thread they cannot
  // overlap, so a strand of its own would only add a queue and a lock per handler.
  asio::any_io_executor connection_executor() {
    if (options_.threads <= 1) return ioc_.get_executor();
    return asio::make_strand(ioc_);
  }

  void on_accept(local::socket socket) {
    state_.mark_busy();
    const auto peer = peer_of(socket.native_handle());
    if (!peer || (peer->uid != own_uid_ && std::find(state_.allowed_uids.begin(), state_.allowed_uids.end(),
                                                     peer->uid) == state_.allowed_uids.end())) {
      note_refused(peer);
      return refuse(std::move(socket), forbidden_answer_, http_status(ErrorCode::forbidden));
    }
    const std::size_t open = state_.open;
    if (open - std::min(open, state_.leaving.load()) >= limits::kMaxOpenConnections && !make_room()) {
      spdlog::warn("refused a connection from pid {}: all {} open connections are being answered", peer->pid,
                   limits::kMaxOpenConnections);
      return refuse(std::move(socket), too_busy_answer_, http_status(ErrorCode::too_many_requests));
    }
    std::make_shared<Session>(std::move(socket), *peer, state_)->start();
    asio::post(sweep_strand_, [this] {
      if (!sweeping_) {
        sweeping_ = true;
        schedule_sweep();
      }
    });
  }

  // Deadlines: one timer for every connection, running while any is open,
  // instead of a timer armed and cancelled for each request.
  void schedule_sweep() {
    sweep_timer_.expires_after(kSweepInterval);
    sweep_timer_.async_wait([this](beast::error_code ec) {
      std::vector<std::shared_ptr<Session>> alive;
      if (!ec) {
        std::lock_guard lock(state_.mutex);
        for (auto& [ptr, weak] : state_.sessions) {
          if (auto s = weak.lock()) alive.push_back(std::move(s));
        }
      }
      if (alive.empty()) {
        sweeping_ = false;  // the next connection starts it again
        return;
      }
      const auto now = Clock::now().time_since_epoch().count();
      for (const auto& s : alive) s->expire_if_due(now);
      schedule_sweep();
    });
  }

  // At the cap: closes the connection that has waited longest for its next
  // request or, when none waits, the one slowest to send its request, so a
  // process holding hundreds of connections cannot lock the owner out. False
  // when every connection is being answered.
  bool make_room() {
    if (close_idlest(1) == 0) return false;
    const auto now = Clock::now().time_since_epoch().count();
    auto last = state_.last_cap_warning.load();
    if (now - last >= Clock::duration(kCapWarningInterval).count() &&
        state_.last_cap_warning.compare_exchange_strong(last, now)) {
      spdlog::warn("{} connections are open (the cap): closing the ones idle or stalled longest to make "
                   "room for new ones (is a program leaking connections?)",
                   limits::kMaxOpenConnections);
    }
    return true;
  }

  // Closes up to `wanted` connections, those idle longest first, then those
  // slowest to send their request; how many it closed.
  std::size_t close_idlest(std::size_t wanted) {
    // Idle ones first, then readers; the longest in that state first. (Ranked
    // once: the sessions move on while this runs.)
    std::vector<std::shared_ptr<Session>> alive;
    {
      std::lock_guard lock(state_.mutex);
      alive.reserve(state_.sessions.size());
      for (auto& [ptr, weak] : state_.sessions) {
        if (auto s = weak.lock()) alive.push_back(std::move(s));
      }
    }  // (released outside the lock: a last reference runs ~Session, which takes it)
    using Candidate = std::pair<std::pair<int, Clock::rep>, Session*>;
    std::vector<Candidate> candidates;
    for (const auto& s : alive) {
      const auto phase = s->phase();
      if (!Session::busy(phase)) {
        candidates.emplace_back(std::pair(phase == Session::Phase::idle ? 0 : 1, s->phase_since()), s.get());
      }
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.first < b.first; });
    std::size_t closed = 0;
    for (const auto& [rank, s] : candidates) {
      if (closed == wanted) break;
      if (s->make_room()) ++closed;
    }
    return closed;
  }

  void refuse(local::socket socket, std::shared_ptr<const std::string> answer, int status) {
    state_.router.metrics().request_answered(std::nullopt, status, {});
    if (state_.lingering_refusals < kMaxLingeringRefusals) {
      return std::make_shared<Refusal>(std::move(socket), std::move(answer), state_)->start();
    }
    beast::error_code ignored;
    asio::write(socket, asio::buffer(*answer), ignored);
    socket.shutdown(local::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  // SIGTERM and SIGINT stop the server; SIGHUP runs on_hangup and it serves on.
  void wait_for_signal() {
    signals_.async_wait([this](beast::error_code ec, int signo) {
      if (ec) return;
      if (signo != SIGHUP) return stop("received signal " + std::to_string(signo));
      if (options_.on_hangup) options_.on_hangup();
      wait_for_signal();
    });
  }

  // A refused peer is logged and audited, up to RefusalLimiter's few a minute
  // for each uid; the rest are counted, and reported when their minute is over.
  void note_refused(const std::optional<Peer>& peer) {
    const auto decision = refusals_.refused(peer ? std::optional(peer->uid) : std::nullopt, Clock::now());
    if (decision.dropped) report_dropped(*decision.dropped);
    if (decision.report_at) report_dropped_at(*decision.report_at);
    if (!decision.record) return;
    if (!peer) return spdlog::warn("refused a connection whose peer could not be identified");
    spdlog::warn("refused a connection from uid {} pid {} ({}): not this daemon's user", peer->uid, peer->pid,
                 peer->exe.empty() ? std::string("program unknown") : display_safe(peer->exe));
    state_.router.connection_refused(*peer, "uid not allowed");
  }

  void report_dropped(const RefusalLimiter::Dropped& dropped) {
    const std::string what = describe(dropped);
    spdlog::warn("{} (not logged one by one)", what);
    Peer peer;
    peer.uid = dropped.uid.value_or(static_cast<uid_t>(-1));
    state_.router.connection_refused(peer, what);
  }

  void report_dropped_at(Clock::time_point when) {
    asio::post(sweep_strand_, [this, when] {
      refusal_report_timer_.expires_at(when);
      refusal_report_timer_.async_wait([this](beast::error_code ec) {
        if (ec) return;
        const auto taken = refusals_.take_dropped(Clock::now());
        for (const auto& dropped : taken.dropped) report_dropped(dropped);
        if (taken.next) report_dropped_at(*taken.next);
      });
    });
  }

  void schedule_housekeeping() {
    housekeeping_timer_.expires_after(options_.housekeeping_interval);
    housekeeping_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      if (housekeeping_) housekeeping_();
      schedule_housekeeping();
    });
  }

  // --idle-exit: no open connection, and nothing `busy`, for that long.
  void schedule_idle_check() {
    const auto idle_exit = options_.idle_exit;
    if (idle_exit.count() <= 0) return;
    idle_timer_.expires_after(std::clamp(idle_exit / 4, kMinIdleCheck, kMaxIdleCheck));
    idle_timer_.async_wait([this, idle_exit](beast::error_code ec) {
      if (ec) return;
      if (state_.open > 0 || (options_.busy && options_.busy())) state_.mark_busy();
      const auto idle = Clock::now().time_since_epoch() - Clock::duration(state_.last_busy.load());
      if (idle >= idle_exit) {
        return stop("no connection and no cached key for " + std::to_string(idle_exit.count()) +
                    " s (--idle-exit)");
      }
      schedule_idle_check();
    });
  }

  // --parent-pid: a pidfd becomes readable when the process exits; where
  // pidfd_open is refused (old kernels, some seccomp profiles), poll instead.
  void watch_parent() {
    const pid_t parent = options_.parent_pid;
    if (parent <= 0) return;
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, parent, 0));
    if (fd < 0 && errno == ESRCH) return asio::post(ioc_, [this] { parent_gone(); });
    if (fd < 0) return poll_parent();
    parent_watch_.assign(fd);
    parent_watch_.async_wait(asio::posix::descriptor_base::wait_read, [this](beast::error_code ec) {
      if (!ec) parent_gone();
    });
  }

  void poll_parent() {
    parent_timer_.expires_after(kParentPollInterval);
    parent_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      if (::kill(options_.parent_pid, 0) != 0 && errno == ESRCH) return parent_gone();
      poll_parent();
    });
  }

  void parent_gone() { stop("process " + std::to_string(options_.parent_pid) + " (--parent-pid) exited"); }

  void stop(const std::string& why) {
    if (state_.stopping.exchange(true)) return;
    spdlog::info("{}: finishing requests in flight, then exiting", why);
    beast::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& dropped : refusals_.take_dropped(Clock::now(), true).dropped) report_dropped(dropped);
    signals_.cancel(ignored);
    idle_timer_.cancel();
    parent_timer_.cancel();
    parent_watch_.close(ignored);
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
    asio::post(sweep_strand_, [this] {
      sweep_timer_.cancel();
      refusal_report_timer_.cancel();
    });
    work_.reset();
  }

  ServerOptions options_;
  ServerState state_;  // outlives ioc_: sessions destroyed with it still use it
  asio::io_context ioc_;
  local::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer housekeeping_timer_;
  asio::steady_timer shutdown_timer_;
  asio::steady_timer idle_timer_;
  asio::steady_timer parent_timer_;
  asio::posix::stream_descriptor parent_watch_;  // a pidfd
  asio::strand<asio::io_context::executor_type> sweep_strand_;
  asio::steady_timer sweep_timer_;  // on sweep_strand_, as is sweeping_
  bool sweeping_ = false;
  asio::steady_timer accept_timer_{ioc_};
  // Touched only by the accept loop, one step at a time.
  std::size_t accept_failures_ = 0;  // since the last one logged
  std::optional<Clock::time_point> last_accept_warning_;
  bool accept_failure_logged_ = false;  // and accepting again not yet
  asio::steady_timer refusal_report_timer_{sweep_strand_};
  RefusalLimiter refusals_;
  const uid_t own_uid_ = ::geteuid();
  // The answers to connections refused before a request is read, made once.
  const std::shared_ptr<const std::string> forbidden_answer_ = std::make_shared<const std::string>(
      canned_response(ErrorCode::forbidden, "this kosli-credd serves " + served_uids(own_uid_, options_.allowed_uids) +
                                                " only; start your own, or ask its owner to add --allow-uid"));
  const std::shared_ptr<const std::string> too_busy_answer_ = std::make_shared<const std::string>(
      canned_response(ErrorCode::too_many_requests, "too many open connections to kosli-credd; close some and retry"));
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::function<void()> housekeeping_;
};

Server::Server(int listen_fd, Router& router, ServerOptions options)
    : impl_(std::make_unique<Impl>(listen_fd, router, std::move(options))) {}
Server::~Server() = default;

void Server::run(const std::function<void()>& on_ready, std::function<void()> housekeeping) {
  impl_->run(on_ready, std::move(housekeeping));
}

void Server::post(std::function<void()> fn) { impl_->post(std::move(fn)); }

std::size_t Server::open_connections() const { return impl_->open_connections(); }

}  // namespace kosli::daemon
