#include "client/daemon_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "client/autostart.hpp"
#include "client/cli_error.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/routes.hpp"
#include "proto/secret.hpp"
#include "proto/socket_path.hpp"

namespace kosli::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

std::string unreachable_advice(const std::string& path) {
  return "start it with 'kosli-credd' (or 'systemctl --user start kosli-credd.socket'), "
         "or point --socket / KOSLI_CRED_SOCKET at the socket it serves (looked for " + path + ")";
}

// Nobody listens: no socket file, or a stale one.
bool nobody_listens(const beast::error_code& ec) {
  return ec == beast::errc::no_such_file_or_directory || ec == beast::errc::connection_refused;
}

// Interim answers read before the final one at most (a daemon sends one).
constexpr int kMaxInterimAnswers = 4;

// The seconds a 102's kAskingSecondsHeader gives (at most the longest a
// question stays open); nullopt when it names none.
std::optional<std::chrono::seconds> asking_seconds(std::string_view value) {
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc{} || end != value.data() + value.size() || seconds <= 0) return std::nullopt;
  return std::min(std::chrono::seconds(seconds), limits::kMaxConfirmTimeout);
}

beast::error_code last_error() { return {errno, boost::system::system_category()}; }

// A connected Unix socket as Beast's synchronous read and write want it (a
// SyncReadStream and SyncWriteStream), where each call waits no later than one
// deadline. One request needs no event loop: poll(2) before each read or write
// is the whole of it.
class DeadlineSocket {
 public:
  DeadlineSocket() = default;
  ~DeadlineSocket() { close(); }
  DeadlineSocket(const DeadlineSocket&) = delete;
  DeadlineSocket& operator=(const DeadlineSocket&) = delete;

  // A blocking connect(2), bounded by SO_SNDTIMEO. When the daemon's listen
  // backlog is full, connect on a Unix socket waits for it to accept (a
  // non-blocking one would fail with EAGAIN and connect nothing).
  beast::error_code connect(const std::string& path, std::chrono::seconds limit) {
    close();
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return last_error();
    const timeval deadline{static_cast<time_t>(limit.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
    const asio::local::stream_protocol::endpoint endpoint(path);
    if (::connect(fd_, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
      beast::error_code ec = last_error();
      if (ec == beast::errc::resource_unavailable_try_again) ec = beast::error::timeout;  // still no room
      close();
      return ec;
    }
    return {};
  }

  // The uid of the process that made the listening socket; nullopt when the
  // kernel does not say.
  std::optional<uid_t> peer_uid() const {
    ucred cred{};
    socklen_t size = sizeof cred;
    if (::getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0 || size != sizeof cred) return std::nullopt;
    return cred.uid;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void expires_at(Clock::time_point deadline) { deadline_ = deadline; }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    return transfer(buffers, POLLIN, ec);
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, beast::error_code& ec) {
    return transfer(buffers, POLLOUT, ec);
  }
  // The throwing forms the concepts also ask for; this client uses the others.
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    return or_throw([&](beast::error_code& ec) { return read_some(buffers, ec); });
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    return or_throw([&](beast::error_code& ec) { return write_some(buffers, ec); });
  }

 private:
  static constexpr int kMaxIovecs = 16;

  template <class Call>
  static std::size_t or_throw(Call call) {
    beast::error_code ec;
    const std::size_t n = call(ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // Reads into (POLLIN) or writes from (POLLOUT) the first buffers of the
  // sequence, once the socket is ready, or fails with timeout at the deadline.
  template <class BufferSequence>
  std::size_t transfer(const BufferSequence& buffers, short direction, beast::error_code& ec) {
    ec = {};
    iovec iov[kMaxIovecs];
    int count = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers) && count < kMaxIovecs;
         ++it) {
      const auto buffer = *it;
      if (buffer.size() == 0) continue;
      iov[count++] = iovec{const_cast<void*>(static_cast<const void*>(buffer.data())), buffer.size()};
    }
    if (count == 0) return 0;
    for (;;) {
      if (!wait_for(direction, ec)) return 0;
      msghdr message{};
      message.msg_iov = iov;
      message.msg_iovlen = static_cast<std::size_t>(count);
      const ssize_t n = direction == POLLIN ? ::recvmsg(fd_, &message, MSG_DONTWAIT)
                                            : ::sendmsg(fd_, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) return static_cast<std::size_t>(n);
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      ec = last_error();
      return 0;
    }
  }

  bool wait_for(short direction, beast::error_code& ec) {
    pollfd ready{fd_, direction, 0};
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) {
        ec = beast::error::timeout;
        return false;
      }
      const int n = ::poll(&ready, 1, static_cast<int>(left.count()));
      if (n > 0) return true;  // ready, or an error the next call reports
      if (n < 0 && errno != EINTR) {
        ec = last_error();
        return false;
      }
    }
  }

  int fd_ = -1;
  Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace

class DaemonClient::Connection {
 public:
  // Connects to a daemon it trusts; when nobody listens, starts kosli-credd on
  // demand (unless KOSLI_CRED_AUTOSTART=0) and connects once more. Never starts
  // one into a directory someone else owns: that is refused first.
  Connection(const std::string& path, std::optional<uid_t> daemon_uid, std::chrono::seconds limit,
             bool may_start_daemon)
      : daemon_uid_(daemon_uid), limit_(limit) {
    beast::error_code result = connect_trusted(path);
    if (nobody_listens(result) && may_start_daemon && autostart_enabled()) {
      const auto not_started = start_daemon(path);
      result = connect_trusted(path);  // also finds a daemon another client started meanwhile
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
                         std::to_string(limit_.count()) + " s");
    }
    if (result) {
      throw CliError(exit_code::daemon_unreachable,
                     "cannot connect to kosli-credd at " + path + ": " + result.message());
    }
  }

  HttpResult request(std::string_view method, const std::string& target, std::string_view profile, std::string* body,
                     std::chrono::seconds deadline, const std::string& path, bool keep_alive,
                     const std::string& exec_program) {
    // The check was made when this connection was; each request reuses it.
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::user_agent, client_user_agent());
    if (!exec_program.empty()) req.set(kExecProgramHeader, exec_program);
    req.keep_alive(keep_alive);
    if (body != nullptr) {
      req.set(http::field::content_type, kJsonContentType);
      req.body() = std::move(*body);
    }
    req.prepare_payload();

    beast::flat_buffer buffer;
    beast::error_code write_error, result;
    socket_.expires_at(Clock::now() + deadline);
    http::write(socket_, req, write_error);
    wipe(req.body());
    // Read even after a failed write: a daemon that refuses this peer answers
    // (403) and closes before reading the request. An interim answer (1xx) comes
    // before the final one, each read with a parser of its own; a daemon that
    // asks a person says so (102) and how long for, and is waited for that long.
    std::optional<http::response_parser<http::string_body>> parser;
    for (int interim = 0;; ++interim) {
      parser.emplace();
      parser->body_limit(limits::kMaxResponseBodyBytes);
      http::read(socket_, buffer, *parser, result);
      if (result || parser->get().result_int() / 100 != 1 || interim == kMaxInterimAnswers) break;
      if (const auto asking = asking_seconds(parser->get()[kAskingSecondsHeader])) {
        deadline = *asking + limits::kClientAskingMargin;
        socket_.expires_at(Clock::now() + deadline);
        std::fprintf(stderr, "%s: waiting for you to approve profile '%s' in the dialog (%lld s)...\n",
                     program_invocation_short_name, display_safe(profile).c_str(),
                     static_cast<long long>(asking->count()));
      }
    }
    if (buffer.size() == 0) {
      auto whole = buffer.prepare(buffer.capacity());
      wipe(whole.data(), whole.size());
    }
    if (result == beast::error::timeout) {
      throw CliError(exit_code::daemon_unreachable,
                     "kosli-credd at " + path + " did not answer within " + std::to_string(deadline.count()) +
                         " s");
    }
    if (result && write_error) result = write_error;
    if (result) {
      throw CliError(exit_code::daemon_unreachable,
                     "lost the connection to kosli-credd at " + path + ": " + result.message());
    }
    if (!result && parser->get().result_int() / 100 == 1) {
      throw CliError(exit_code::error, "kosli-credd at " + path + " sent interim answers and no final one");
    }
    auto res = parser->release();
    return HttpResult{static_cast<int>(res.result_int()), std::move(res.body())};
  }

 private:
  // Checks the path, connects, and checks who answered, before a byte is sent.
  // A daemon that fails a check gets nothing: CliError, exit 5.
  beast::error_code connect_trusted(const std::string& path) {
    if (auto problem = socket_trust_problem(path, daemon_uid_)) throw CliError(exit_code::refused_by_policy, *problem);
    const beast::error_code result = socket_.connect(path, limit_);
    if (result) return result;
    const auto peer = socket_.peer_uid();
    if (!peer) {
      socket_.close();
      throw CliError(exit_code::refused_by_policy,
                     "refusing to talk to " + path + ": cannot tell which uid the daemon answering there runs as");
    }
    if (auto problem = daemon_peer_problem(path, *peer, daemon_uid_)) {
      socket_.close();
      throw CliError(exit_code::refused_by_policy, *problem);
    }
    return result;
  }

  DeadlineSocket socket_;
  std::optional<uid_t> daemon_uid_;
  std::chrono::seconds limit_;
};

DaemonClient::DaemonClient(std::string socket_path, Connections connections, std::optional<uid_t> daemon_uid)
    : socket_path_(std::move(socket_path)), connections_(connections), daemon_uid_(daemon_uid) {}
DaemonClient::~DaemonClient() = default;

void DaemonClient::give_up_after(std::chrono::seconds limit) {
  give_up_at_ = Clock::now() + limit;
}

HttpResult DaemonClient::request(Route route, std::string_view profile, std::string* body) {
  // With a limit, what is left of it (at least a second).
  auto bounded = [&](std::chrono::seconds deadline) {
    if (!give_up_at_) return deadline;
    const auto left = std::chrono::ceil<std::chrono::seconds>(*give_up_at_ - Clock::now());
    return std::min(deadline, std::max(left, std::chrono::seconds(1)));
  };
  if (!connection_) {
    connection_ = std::make_unique<Connection>(socket_path_, daemon_uid_, bounded(limits::kClientRequestDeadline),
                                               may_start_daemon_);
  }
  const bool keep_alive = connections_ == Connections::kept;
  HttpResult result = connection_->request(route_spec(route).method, route_target(route, profile), profile, body,
                                           bounded(route_deadline(route)), socket_path_, keep_alive, exec_program_);
  if (!keep_alive) connection_.reset();
  if (result.status >= 200 && result.status < 300) return result;
  const auto error = parse_error_body(result.body);
  wipe(result.body);
  if (!error) {
    throw CliError(exit_code::error, "kosli-credd answered HTTP " + std::to_string(result.status));
  }
  throw CliError(exit_code_for(error->code), error->message);
}

}  // namespace kosli::client
