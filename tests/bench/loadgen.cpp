// kosli-loadgen: measures kosli-credd from the outside, and the baselines it is
// compared with, in one small program (scripts/bench runs it):
//   http     N keep-alive connections asking the daemon's socket for one route
//   raw      the same client loop against an in-process Unix-socket ping-pong
//            server exchanging fixed-size messages: what the socket alone costs
//   compare  learns the sizes of one HTTP exchange, then runs raw and http
//   spawn    whole-process wall time of a command, started with posix_spawn
// Each prints one JSON line per run: "requests" counts every attempt, "rps"
// only the answered ones, and p50/p99 (microseconds) are of answered requests.
// Plain POSIX and the standard library: the tool must cost as little as
// possible itself, so that it measures the daemon. For the same reason its
// connections share a few client threads (--threads, 1 unless told), each
// waiting in epoll for whichever of its connections is answered first, as wrk
// and h2load do: a thread per connection would measure the scheduler switching
// between 16 client threads. A thread with one connection blocks in recv().
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage:\n"
    "  kosli-loadgen http --socket PATH [--connections N] [--threads T] [--duration SECONDS | --requests TOTAL]\n"
    "                     [--target PATH] [--warmup N]\n"
    "  kosli-loadgen raw --request-bytes A --response-bytes B [--connections N] [--threads T]\n"
    "                    [--duration SECONDS | --requests TOTAL] [--warmup N]\n"
    "  kosli-loadgen compare --socket PATH [--connections N] [--threads T] [--duration SECONDS] [--target PATH]\n"
    "                        [--warmup N]\n"
    "  kosli-loadgen spawn [--runs N] [--warmup N] [--stdin TEXT] -- CMD [ARG...]\n"
    "Prints one JSON line per run; exits 0 when no request or run failed, 1 otherwise, 2 on bad arguments.\n";

// The route asked for unless --target says otherwise: the daemon's hot path.
constexpr std::string_view kDefaultTarget = "/v1/profiles/default/token";
// A response larger than this is a parse failure (the daemon's are under 1 KiB).
constexpr std::size_t kMaxResponseBytes = 64 * 1024;
// How long an HTTP or raw run lasts unless --duration or --requests says otherwise.
constexpr double kDefaultDurationSeconds = 5.0;
// Requests each connection makes before the clock starts, unless --warmup says.
constexpr long kDefaultWarmupRequests = 100;
// Timed runs of a command, and untimed ones before them, unless told otherwise.
constexpr long kDefaultSpawnRuns = 300;
constexpr long kDefaultSpawnWarmup = 5;
// An answer not arriving for this long ends the run, its requests counted as errors.
constexpr int kStallTimeoutMs = 10'000;
// Bounds of the arguments: a sample per request.
constexpr long kMaxConnections = 1024;
constexpr double kMaxDurationSeconds = 3600;
constexpr long kMaxCount = 100'000'000;
constexpr long kMaxMessageBytes = 1024 * 1024;

struct UsageError {
  std::string message;
};

struct Options {
  std::string mode;
  std::string socket;
  long connections = 1;
  long threads = 1;  // client threads; each drives connections / threads of them
  double duration_s = kDefaultDurationSeconds;
  long requests = 0;  // > 0: stop after this many in total instead of after duration_s
  std::string target{kDefaultTarget};
  std::optional<long> warmup;
  long request_bytes = 0;
  long response_bytes = 0;
  long runs = kDefaultSpawnRuns;
  std::optional<std::string> stdin_text;
  std::vector<std::string> command;
};

// ---- arguments ------------------------------------------------------------

template <typename Number>
std::string number_text(Number value) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

template <typename Number>
Number parse_number(std::string_view flag, std::string_view text, Number min, Number max) {
  Number value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || !(value >= min && value <= max)) {
    throw UsageError{std::string(flag) + ": expected a number from " + number_text(min) + " to " + number_text(max) +
                     ", got '" + std::string(text) + "'"};
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  if (argc < 2) throw UsageError{"no mode given"};
  Options opt;
  opt.mode = argv[1];
  if (opt.mode != "http" && opt.mode != "raw" && opt.mode != "compare" && opt.mode != "spawn") {
    throw UsageError{"unknown mode '" + opt.mode + "'"};
  }
  bool duration_given = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--" && opt.mode == "spawn") {
      opt.command.assign(argv + i + 1, argv + argc);
      break;
    }
    if (i + 1 >= argc) throw UsageError{std::string(flag) + ": missing value"};
    const std::string_view value = argv[++i];
    if (flag == "--socket") {
      opt.socket = value;
    } else if (flag == "--connections") {
      opt.connections = parse_number<long>(flag, value, 1L, kMaxConnections);
    } else if (flag == "--threads" && opt.mode != "spawn") {
      opt.threads = parse_number<long>(flag, value, 1L, kMaxConnections);
    } else if (flag == "--duration") {
      opt.duration_s = parse_number<double>(flag, value, 0.001, kMaxDurationSeconds);
      duration_given = true;
    } else if (flag == "--requests" && opt.mode != "compare") {
      opt.requests = parse_number<long>(flag, value, 1L, kMaxCount);
    } else if (flag == "--target") {
      opt.target = value;
    } else if (flag == "--warmup") {
      opt.warmup = parse_number<long>(flag, value, 0L, kMaxCount);
    } else if (flag == "--request-bytes" && opt.mode == "raw") {
      opt.request_bytes = parse_number<long>(flag, value, 1L, kMaxMessageBytes);
    } else if (flag == "--response-bytes" && opt.mode == "raw") {
      opt.response_bytes = parse_number<long>(flag, value, 1L, kMaxMessageBytes);
    } else if (flag == "--runs" && opt.mode == "spawn") {
      opt.runs = parse_number<long>(flag, value, 1L, kMaxCount);
    } else if (flag == "--stdin" && opt.mode == "spawn") {
      opt.stdin_text = value;
    } else {
      throw UsageError{"unknown option '" + std::string(flag) + "' for mode " + opt.mode};
    }
  }
  if (duration_given && opt.requests > 0) throw UsageError{"give --duration or --requests, not both"};
  if ((opt.mode == "http" || opt.mode == "compare") && opt.socket.empty()) throw UsageError{"--socket is required"};
  if (opt.mode == "raw" && (opt.request_bytes == 0 || opt.response_bytes == 0)) {
    throw UsageError{"--request-bytes and --response-bytes are required"};
  }
  if (opt.mode == "spawn" && opt.command.empty()) throw UsageError{"no command after --"};
  return opt;
}

// ---- output ---------------------------------------------------------------

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The nearest-rank percentile of `samples` (nanoseconds) in microseconds; reorders them.
double percentile_us(std::vector<std::int64_t>& samples, double fraction) {
  if (samples.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(samples.size())));
  const auto nth = samples.begin() + static_cast<std::ptrdiff_t>(std::clamp<std::size_t>(rank, 1, samples.size()) - 1);
  std::nth_element(samples.begin(), nth, samples.end());
  return static_cast<double>(*nth) / 1000.0;
}

// ---- socket I/O -----------------------------------------------------------

int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return -1;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// For a pipe (send() is for sockets only).
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool recv_exactly(int fd, char* buf, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::recv(fd, buf, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// ---- one exchange per protocol ----------------------------------------------

// Result of one exchange: whether it succeeded, whether the connection may be
// used again, and how many bytes the response had. A failed one is not kept alive.
struct Exchange {
  bool ok = false;
  bool keep_alive = false;
  std::size_t response_bytes = 0;
};

// What one recv() brought.
enum class Received { data, nothing_yet, failed };

// One recv() into buf; `flags` is 0 to wait for data or MSG_DONTWAIT not to.
Received receive_some(int fd, char* buf, std::size_t size, int flags, std::size_t& got) {
  ssize_t n;
  do {
    n = ::recv(fd, buf, size, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Received::nothing_yet;
  if (n <= 0) return Received::failed;
  got = static_cast<std::size_t>(n);
  return Received::data;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

// Both exchangers send a request, then take what arrives, one recv() at a
// time, until `receive` returns the whole response (nullopt until then).

// An HTTP/1.1 client for one connection: sends a GET and reads one response
// (status line, headers to the blank line, a Content-Length body), keeping
// whatever arrives after it for the next one.
class HttpExchanger {
 public:
  explicit HttpExchanger(std::string_view target)
      : request_("GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n\r\n") {}

  std::size_t request_bytes() const { return request_.size(); }
  void reset() { buffered_ = 0; }
  bool send(int fd) const { return send_all(fd, request_); }

  std::optional<Exchange> receive(int fd, int flags) {
    if (auto whole = take_response()) return whole;
    if (buffered_ == sizeof buf_) return Exchange{};
    std::size_t got = 0;
    switch (receive_some(fd, buf_ + buffered_, sizeof buf_ - buffered_, flags, got)) {
      case Received::failed: return Exchange{};
      case Received::nothing_yet: return std::nullopt;
      case Received::data: break;
    }
    buffered_ += got;
    return take_response();
  }

 private:
  // The response at the front of the buffer when it is whole (taken out of the
  // buffer), a failed exchange when it is malformed, or nullopt.
  std::optional<Exchange> take_response() {
    const auto pos = std::string_view(buf_, buffered_).find("\r\n\r\n");
    if (pos == std::string_view::npos) return std::nullopt;
    const std::size_t header_end = pos + 4;
    Exchange result;
    std::optional<std::size_t> content_length;
    if (!parse_head(std::string_view(buf_, header_end), result, content_length) || !content_length ||
        header_end + *content_length > sizeof buf_) {
      return Exchange{};
    }
    const std::size_t total = header_end + *content_length;
    if (buffered_ < total) return std::nullopt;
    std::memmove(buf_, buf_ + total, buffered_ - total);
    buffered_ -= total;
    result.response_bytes = total;
    return result;
  }

  // Status 200 is success; Content-Length is required (the daemon always sends
  // it); "Connection: close" ends the connection after this response.
  static bool parse_head(std::string_view head, Exchange& result, std::optional<std::size_t>& content_length) {
    constexpr std::string_view kVersion = "HTTP/1.1 ";
    if (!head.starts_with(kVersion) || head.size() < kVersion.size() + 3) return false;
    result.ok = head.substr(kVersion.size(), 3) == "200";
    result.keep_alive = true;
    auto line_end = head.find("\r\n");
    while (line_end + 4 < head.size()) {
      const auto start = line_end + 2;
      line_end = head.find("\r\n", start);
      const auto line = head.substr(start, line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) return false;
      const auto name = line.substr(0, colon);
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (iequals(name, "content-length")) {
        std::size_t length = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        if (ec != std::errc{} || end != value.data() + value.size()) return false;
        content_length = length;
      } else if (iequals(name, "connection") && iequals(value, "close")) {
        result.keep_alive = false;
      }
    }
    return true;
  }

  std::string request_;
  char buf_[kMaxResponseBytes];
  std::size_t buffered_ = 0;
};

// The baseline's client: writes a fixed-size request, reads a fixed-size response.
class RawExchanger {
 public:
  RawExchanger(std::size_t request_bytes, std::size_t response_bytes)
      : request_(request_bytes, 'q'), response_(response_bytes) {}

  std::size_t request_bytes() const { return request_.size(); }
  void reset() { received_ = 0; }
  bool send(int fd) const { return send_all(fd, request_); }

  std::optional<Exchange> receive(int fd, int flags) {
    std::size_t got = 0;
    switch (receive_some(fd, response_.data() + received_, response_.size() - received_, flags, got)) {
      case Received::failed: return Exchange{};
      case Received::nothing_yet: return std::nullopt;
      case Received::data: break;
    }
    received_ += got;
    if (received_ < response_.size()) return std::nullopt;
    received_ = 0;
    return Exchange{true, true, response_.size()};
  }

 private:
  std::string request_;
  std::vector<char> response_;
  std::size_t received_ = 0;
};

// ---- the client loop (http and raw) ---------------------------------------

struct RunResult {
  long requests = 0;
  long errors = 0;
  double seconds = 0;
  std::size_t request_bytes = 0;
  std::size_t response_bytes = 0;
  std::vector<std::int64_t> samples_ns;
};

// One connection of a client thread, and the request it has in flight.
template <typename Exchanger>
struct Connection {
  int fd = -1;
  Exchanger exchanger;
  bool in_flight = false;
  Clock::time_point sent;
};

// Every client thread connects its share of the connections and warms each
// up, then all start the clock together; each records the round trip of every
// request until the shared request budget or the deadline runs out. A failed
// exchange counts as an error and the connection is made again; a failed
// connect ends that connection (and counts as one error).
template <typename Exchanger, typename MakeExchanger>
RunResult run_clients(const Options& opt, const std::string& socket, long warmup, MakeExchanger make_exchanger) {
  const auto connections = static_cast<std::size_t>(opt.connections);
  const auto threads = std::min(static_cast<std::size_t>(opt.threads), connections);
  std::vector<RunResult> per_thread(threads);
  std::atomic<long> budget{opt.requests};
  std::atomic<std::int64_t> last_finish_ns{0};
  const std::chrono::duration<double> duration(opt.duration_s);
  Clock::time_point start;
  std::barrier ready(static_cast<std::ptrdiff_t>(threads), [&start]() noexcept { start = Clock::now(); });

  auto client = [&](std::size_t first, RunResult& mine) {
    std::vector<Connection<Exchanger>> conns;
    for (std::size_t i = first; i < connections; i += threads) {
      conns.push_back(Connection<Exchanger>{connect_unix(socket), make_exchanger()});
    }
    mine.request_bytes = conns.front().exchanger.request_bytes();
    // The end of an exchange: kept when it succeeded; the connection made
    // again when it may not be used any more.
    auto finish = [&](Connection<Exchanger>& c, const Exchange& result) {
      if (result.ok) mine.response_bytes = result.response_bytes;
      if (result.keep_alive) return;
      ::close(c.fd);
      c.exchanger.reset();
      c.fd = connect_unix(socket);
      if (c.fd < 0) ++mine.errors;
    };
    auto exchange_waiting = [&](Connection<Exchanger>& c) {
      std::optional<Exchange> result;
      if (!c.exchanger.send(c.fd)) result = Exchange{};
      while (!result) result = c.exchanger.receive(c.fd, 0);
      finish(c, *result);
      return result->ok;
    };
    for (auto& c : conns) {
      if (c.fd < 0) ++mine.errors;
      for (long i = 0; i < warmup && c.fd >= 0; ++i) exchange_waiting(c);
    }
    mine.samples_ns.reserve(opt.requests > 0 ? static_cast<std::size_t>(opt.requests) / threads + 1 : 1 << 20);
    ready.arrive_and_wait();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(duration);
    auto may_start = [&](Clock::time_point now) {
      return opt.requests > 0 ? budget.fetch_sub(1, std::memory_order_relaxed) > 0 : now < deadline;
    };
    auto answered = [&](Clock::time_point sent, Clock::time_point now, bool ok) {
      ++mine.requests;
      if (ok) {
        mine.samples_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count());
      } else {
        ++mine.errors;
      }
    };
    auto now = start;

    if (conns.size() == 1) {
      auto& c = conns.front();
      while (c.fd >= 0 && may_start(now)) {
        const auto sent = Clock::now();
        const bool ok = exchange_waiting(c);
        now = Clock::now();
        answered(sent, now, ok);
      }
    } else {
      const int ep = ::epoll_create1(EPOLL_CLOEXEC);
      if (ep < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
      auto watch = [&](std::size_t index) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = index;
        if (conns[index].fd >= 0) ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[index].fd, &ev);
      };
      std::size_t in_flight = 0;
      // Sends the next request on connection `index` unless the run is over.
      auto start_next = [&](std::size_t index) {
        auto& c = conns[index];
        while (c.fd >= 0 && may_start(now)) {
          c.sent = Clock::now();
          if (c.exchanger.send(c.fd)) {
            c.in_flight = true;
            ++in_flight;
            return;
          }
          const int old_fd = c.fd;
          answered(c.sent, c.sent, false);
          finish(c, Exchange{});
          if (c.fd != old_fd) watch(index);
        }
      };
      for (std::size_t i = 0; i < conns.size(); ++i) {
        watch(i);
        start_next(i);
      }
      epoll_event events[64];
      while (in_flight > 0) {
        const int ready_count = ::epoll_wait(ep, events, 64, kStallTimeoutMs);
        if (ready_count < 0 && errno == EINTR) continue;
        if (ready_count <= 0) {  // stalled (or broken): what is in flight failed
          mine.requests += static_cast<long>(in_flight);
          mine.errors += static_cast<long>(in_flight);
          break;
        }
        for (int e = 0; e < ready_count; ++e) {
          const auto index = static_cast<std::size_t>(events[e].data.u64);
          auto& c = conns[index];
          if (!c.in_flight) {  // its part of the run is over: whatever comes now is not waited for
            ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            continue;
          }
          const auto result = c.exchanger.receive(c.fd, MSG_DONTWAIT);
          if (!result) continue;
          now = Clock::now();
          c.in_flight = false;
          --in_flight;
          answered(c.sent, now, result->ok);
          const int old_fd = c.fd;
          finish(c, *result);
          if (c.fd != old_fd) watch(index);
          start_next(index);
        }
      }
      ::close(ep);
    }
    for (auto& c : conns) {
      if (c.fd >= 0) ::close(c.fd);
    }
    const auto finished = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count();
    auto seen = last_finish_ns.load();
    while (seen < finished && !last_finish_ns.compare_exchange_weak(seen, finished)) {
    }
  };

  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t) workers.emplace_back(client, t, std::ref(per_thread[t]));
  for (auto& w : workers) w.join();

  RunResult total;
  total.seconds = static_cast<double>(last_finish_ns.load()) / 1e9;
  for (auto& r : per_thread) {
    total.requests += r.requests;
    total.errors += r.errors;
    total.request_bytes = std::max(total.request_bytes, r.request_bytes);
    total.response_bytes = std::max(total.response_bytes, r.response_bytes);
    total.samples_ns.insert(total.samples_ns.end(), r.samples_ns.begin(), r.samples_ns.end());
  }
  return total;
}

void print_run(const char* mode, long connections, RunResult& r) {
  const double rps = r.seconds > 0 ? static_cast<double>(r.requests - r.errors) / r.seconds : 0;
  const double p50 = percentile_us(r.samples_ns, 0.50);
  const double p99 = percentile_us(r.samples_ns, 0.99);
  std::printf(
      "{\"mode\":\"%s\",\"connections\":%ld,\"requests\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.1f,"
      "\"p50_us\":%.2f,\"p99_us\":%.2f,\"request_bytes\":%zu,\"response_bytes\":%zu}\n",
      mode, connections, r.requests, r.errors, r.seconds, rps, p50, p99, r.request_bytes, r.response_bytes);
  std::fflush(stdout);
}

RunResult run_http(const Options& opt) {
  return run_clients<HttpExchanger>(opt, opt.socket, opt.warmup.value_or(kDefaultWarmupRequests),
                                    [&] { return HttpExchanger(opt.target); });
}

// ---- the raw ping-pong server ---------------------------------------------

// Serves the baseline on a socket in a fresh temporary directory: one thread per
// connection reads exactly request_bytes, writes response_bytes, and repeats
// until the client closes. Stops and cleans up when destroyed.
class PingPongServer {
 public:
  PingPongServer(std::size_t request_bytes, std::size_t response_bytes)
      : request_bytes_(request_bytes), response_(response_bytes, 'r') {
    char dir[] = "/tmp/kosli-loadgen.XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir_ = dir;
    path_ = dir_ + "/sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, SOMAXCONN) != 0) {
      const int error = errno;
      cleanup_files();
      throw std::system_error(error, std::generic_category(), "raw server socket");
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~PingPongServer() {
    // Wakes accept(); each connection thread ends when its client has closed.
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : connections_) t.join();
    cleanup_files();
  }

  PingPongServer(const PingPongServer&) = delete;
  PingPongServer& operator=(const PingPongServer&) = delete;

  const std::string& path() const { return path_; }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::vector<char> request(request_bytes_);
    while (recv_exactly(fd, request.data(), request.size()) && send_all(fd, response_)) {
    }
    ::close(fd);
  }

  void cleanup_files() {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  std::size_t request_bytes_;
  std::string response_;
  std::string dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // touched by the acceptor thread only, until it is joined
};

RunResult run_raw(const Options& opt, std::size_t request_bytes, std::size_t response_bytes) {
  PingPongServer server(request_bytes, response_bytes);
  return run_clients<RawExchanger>(opt, server.path(), opt.warmup.value_or(kDefaultWarmupRequests),
                                   [&] { return RawExchanger(request_bytes, response_bytes); });
}

// ---- spawn ----------------------------------------------------------------

// Runs the command once, stdout to /dev/null, stdin from `stdin_text` (or
// /dev/null), stderr inherited. Returns its wall time, or nullopt when it did
// not exit 0; throws when it cannot be started at all.
std::optional<std::int64_t> spawn_once(const std::vector<char*>& argv, const std::optional<std::string>& stdin_text) {
  int input = -1;
  if (stdin_text) {
    // The text is in the pipe before the child starts (it is far below a pipe's
    // capacity), so writing it never blocks nor meets a closed reader.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
    const bool written = write_all(fds[1], *stdin_text);
    ::close(fds[1]);
    if (!written) {
      ::close(fds[0]);
      return std::nullopt;
    }
    input = fds[0];
  } else {
    input = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  const int null_out = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, null_out, STDOUT_FILENO);

  const auto started = Clock::now();
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  int status = 0;
  if (spawned == 0) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  const auto finished = Clock::now();

  posix_spawn_file_actions_destroy(&actions);
  ::close(input);
  ::close(null_out);
  if (spawned != 0) throw std::system_error(spawned, std::generic_category(), std::string("cannot start ") + argv[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(finished - started).count();
}

int run_spawn(const Options& opt) {
  std::vector<char*> argv;
  for (const auto& arg : opt.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  const long warmup = opt.warmup.value_or(kDefaultSpawnWarmup);
  for (long i = 0; i < warmup; ++i) spawn_once(argv, opt.stdin_text);
  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(opt.runs));
  long errors = 0;
  for (long i = 0; i < opt.runs; ++i) {
    if (const auto ns = spawn_once(argv, opt.stdin_text)) {
      samples.push_back(*ns);
    } else {
      ++errors;
    }
  }

  std::string command;
  for (const auto& arg : opt.command) command += (command.empty() ? "" : " ") + arg;
  double mean = 0;
  for (const auto ns : samples) mean += static_cast<double>(ns) / 1000.0;
  if (!samples.empty()) mean /= static_cast<double>(samples.size());
  const double p50 = percentile_us(samples, 0.50);
  const double p90 = percentile_us(samples, 0.90);
  std::printf("{\"mode\":\"spawn\",\"command\":%s,\"runs\":%ld,\"errors\":%ld,\"p50_us\":%.1f,\"p90_us\":%.1f,"
              "\"mean_us\":%.1f}\n",
              json_string(command).c_str(), opt.runs, errors, p50, p90, mean);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_options(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "kosli-loadgen: %s\n%s", e.message.c_str(), kUsage);
    return 2;
  }

  try {
    if (opt.mode == "spawn") return run_spawn(opt);
    if (opt.mode == "http") {
      auto r = run_http(opt);
      print_run("http", opt.connections, r);
      return r.errors == 0 ? 0 : 1;
    }
    if (opt.mode == "raw") {
      auto r = run_raw(opt, static_cast<std::size_t>(opt.request_bytes), static_cast<std::size_t>(opt.response_bytes));
      print_run("raw", opt.connections, r);
      return r.errors == 0 ? 0 : 1;
    }
    // compare: one request learns the sizes, so the baseline moves the same bytes.
    Options probe = opt;
    probe.connections = 1;
    probe.requests = 1;
    const auto sizes = run_clients<HttpExchanger>(probe, opt.socket, 0, [&] { return HttpExchanger(opt.target); });
    if (sizes.errors != 0) {
      std::fprintf(stderr, "kosli-loadgen: GET %s on %s failed; nothing to compare\n", opt.target.c_str(),
                   opt.socket.c_str());
      return 1;
    }
    auto raw = run_raw(opt, sizes.request_bytes, sizes.response_bytes);
    print_run("raw", opt.connections, raw);
    auto http = run_http(opt);
    print_run("http", opt.connections, http);
    return raw.errors == 0 && http.errors == 0 ? 0 : 1;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "kosli-loadgen: %s\n", e.what());
    return 1;
  }
}
