#include "daemon/transport/server.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "daemon/transport/connection.hpp"
#include "daemon/transport/fd_watch.hpp"
#include "daemon/transport/http_request.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "daemon/transport/refusal.hpp"
#include "daemon/transport/refused_peers.hpp"
#include "proto/display.hpp"
#include "proto/limits.hpp"

namespace kosli::daemon {

using namespace transport;

class Server::Impl {
 public:
  Impl(int listen_fd, Router& router, Metrics& metrics, ServerOptions options)
      : options_(std::move(options)),
        state_{router, metrics, options_.on_refused, options_.allowed_uids},
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
  void watch_readable(int fd, std::function<void()> fn) { watched_.push_back(watch_readable_fd(ioc_, fd, fn)); }

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
    state_.metrics.request_answered(std::nullopt, status, {});
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
    state_.on_refused(*peer, "uid not allowed");
  }

  void report_dropped(const RefusalLimiter::Dropped& dropped) {
    const std::string what = describe(dropped);
    spdlog::warn("{} (not logged one by one)", what);
    Peer peer;
    peer.uid = dropped.uid.value_or(static_cast<uid_t>(-1));
    state_.on_refused(peer, what);
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
    for (auto& watched : watched_) watched->close(ignored);
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
  std::vector<std::shared_ptr<asio::posix::stream_descriptor>> watched_;  // Server::watch_readable's
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

Server::Server(int listen_fd, Router& router, Metrics& metrics, ServerOptions options)
    : impl_(std::make_unique<Impl>(listen_fd, router, metrics, std::move(options))) {}
Server::~Server() = default;

void Server::run(const std::function<void()>& on_ready, std::function<void()> housekeeping) {
  impl_->run(on_ready, std::move(housekeeping));
}

void Server::post(std::function<void()> fn) { impl_->post(std::move(fn)); }
void Server::watch_readable(int fd, std::function<void()> fn) { impl_->watch_readable(fd, std::move(fn)); }
std::size_t Server::open_connections() const { return impl_->open_connections(); }

}  // namespace kosli::daemon
