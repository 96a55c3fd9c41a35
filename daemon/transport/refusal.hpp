// Private to daemon/transport/: a connection refused before a request is read
// from it, answered without a reset (server.cpp makes them).
#pragma once

#include "daemon/transport/connection.hpp"

namespace kosli::daemon::transport {

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
        beast::error_code ignored;  // (closed meanwhile: nothing to cancel)
        if (!ec && !self->answering_) self->socket_.cancel(ignored);  // answered without the rest of the request
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

}  // namespace kosli::daemon::transport
