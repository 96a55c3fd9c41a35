#include "daemon/kosli/kosli_api.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

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
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "proto/host.hpp"
#include "proto/secret_json.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

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
// Kosli's own error message is cut to this many bytes in ours.
constexpr std::size_t kMaxKosliMessage = 300;

struct HttpCall {
  std::string base;  // normalised host URL
  std::string method;
  std::string path;
  std::string body;  // JSON; never a secret
  Secret bearer;
  bool idempotent = true;
  bool want_body = false;
};

struct HttpAnswer {
  int status = 0;
  std::string body;  // may hold a key: wiped by whoever reads it
  std::optional<std::chrono::seconds> retry_after;
};

using HttpOutcome = std::variant<HttpAnswer, KosliFailure>;

struct Attempt {
  HttpOutcome outcome;
  bool connect_failure = false;  // nothing was sent: safe to retry any call
};

// A base URL split for connecting: "https://[::1]:8443" → tls, "[::1]", "::1", "8443".
struct Url {
  bool tls = true;
  std::string authority;  // host[:port] as in the URL, for Host and CONNECT
  std::string hostname;   // without brackets, for resolving and verifying
  std::string port;
};

std::optional<Url> parse_base(std::string_view base) {
  const auto sep = base.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  Url url;
  const std::string_view scheme = base.substr(0, sep);
  if (scheme == "https") {
    url.tls = true;
  } else if (scheme == "http") {
    url.tls = false;
  } else {
    return std::nullopt;
  }
  url.authority = std::string(base.substr(sep + 3));
  std::string_view host = url.authority;
  url.port = url.tls ? "443" : "80";
  const auto close = host.rfind(']');
  const auto colon = host.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    url.port = std::string(host.substr(colon + 1));
    host = host.substr(0, colon);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return std::nullopt;
  url.hostname = std::string(host);
  // The CONNECT target always names the port.
  return url;
}

std::string connect_target(const Url& url) {
  const bool v6 = url.hostname.find(':') != std::string::npos;
  return (v6 ? "[" + url.hostname + "]" : url.hostname) + ":" + url.port;
}

// Percent-encodes a path segment (org, service account and key id names are
// plain already; this keeps anything else from changing the path).
std::string path_segment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string seconds_text(Clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string((ms + 999) / 1000) + " s";
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      const auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// A time in Kosli's answers: Unix seconds (maybe fractional), RFC 3339, or null.
std::int64_t answer_time(const SecretJson& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_number()) {
    const double v = it->get<double>();
    return std::isfinite(v) && v > 0 && v < 253402300800.0 ? static_cast<std::int64_t>(v) : 0;
  }
  if (it->is_string()) return parse_rfc3339(it->get_ref<const WipingString&>()).value_or(0);
  return 0;
}

// Kosli's own explanation in an error answer, made safe to repeat.
std::string kosli_message(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string text;
  if (j.is_object()) {
    for (const char* field : {"message", "error", "detail"}) {
      if (const auto it = j.find(field); it != j.end() && it->is_string()) {
        text = it->get<std::string>();
        break;
      }
    }
  }
  std::string out;
  for (const char c : text) {
    if (out.size() >= kMaxKosliMessage) break;
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  return out;
}

std::optional<std::chrono::seconds> retry_after(std::string_view value) {
  int seconds = 0;
  const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc() || p != value.data() + value.size() || seconds < 0) return std::nullopt;
  return std::chrono::seconds(seconds);
}

// Wipes every byte a flat_buffer holds or held (it was reserved up front, so
// it never reallocated and left copies behind).
void wipe_buffer(beast::flat_buffer& buffer) {
  buffer.consume(buffer.size());
  auto whole = buffer.prepare(buffer.capacity());
  wipe(whole.data(), whole.size());
}

}  // namespace

std::string_view reason_name(Unreachable reason) noexcept {
  switch (reason) {
    case Unreachable::certificate: return "certificate";
    case Unreachable::tls: return "tls";
    case Unreachable::refused: return "refused";
    case Unreachable::timeout: return "timeout";
    case Unreachable::resolve: return "resolve";
    case Unreachable::proxy: return "proxy";
    case Unreachable::protocol: return "protocol";
    case Unreachable::network: return "network";
    case Unreachable::stopping: return "stopping";
  }
  return "network";
}

std::variant<ProxySetting, std::string> parse_proxy_url(std::string_view text) {
  std::string url = trim(text);
  const auto sep = url.find("://");
  std::string_view rest = url;
  if (sep != std::string::npos) {
    if (lower(url.substr(0, sep)) != "http") {
      return "only http:// proxies are supported (kosli-credd tunnels HTTPS through them with CONNECT)";
    }
    rest = std::string_view(url).substr(sep + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  ProxySetting proxy;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const auto colon = userinfo.find(':');
    const std::string user = percent_decode(userinfo.substr(0, colon));
    const std::string password = colon == std::string_view::npos ? "" : percent_decode(userinfo.substr(colon + 1));
    std::string credentials = user + ":" + password;
    proxy.basic_credentials = base64(credentials);
    wipe(credentials);
    rest = rest.substr(at + 1);
  }
  auto parsed = parse_base("http://" + std::string(rest));
  if (!parsed || parsed->hostname.empty()) return "the proxy URL has no host";
  const auto& port = parsed->port;
  int port_number = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (ec != std::errc() || p != port.data() + port.size() || port_number < 1 || port_number > 65535) {
    return "the proxy URL's port must be a number from 1 to 65535";
  }
  proxy.host = parsed->hostname;
  proxy.port = port;
  proxy.url = "http://" + connect_target(*parsed);
  return proxy;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host_in) {
  std::string host = lower(host_in);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  while (!no_proxy.empty()) {
    const auto comma = no_proxy.find(',');
    std::string entry = lower(trim(no_proxy.substr(0, comma)));
    no_proxy = comma == std::string_view::npos ? std::string_view{} : no_proxy.substr(comma + 1);
    if (entry == "*") return true;
    if (entry.size() >= 2 && entry.front() == '[' && entry.back() == ']') entry = entry.substr(1, entry.size() - 2);
    if (entry.rfind("*.", 0) == 0) entry.erase(0, 1);
    if (!entry.empty() && entry.front() == '.') entry.erase(0, 1);
    if (entry.empty()) continue;
    if (host == entry) return true;
    if (host.size() > entry.size() && host.compare(host.size() - entry.size(), entry.size(), entry) == 0 &&
        host[host.size() - entry.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

// The TLS client context for Kosli: TLS 1.2 or later, the system's trusted
// certificates (SSL_CERT_FILE and SSL_CERT_DIR are honoured) and `ca_file`'s.
// A ca_file that cannot be read gives the reason instead.
std::variant<ssl::context, std::string> make_tls_context(const std::optional<std::string>& ca_file) {
  ssl::context context(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  context.set_default_verify_paths(ec);
  if (ec) spdlog::warn("kosli: the system's trusted certificates could not be loaded: {}", ec.message());
  if (ca_file) {
    context.load_verify_file(*ca_file, ec);
    if (ec) return "ca_file " + *ca_file + ": cannot be read as PEM certificates (" + ec.message() + ")";
  }
  context.set_verify_mode(ssl::verify_peer);
  return context;
}

class KosliApi::Impl {
 public:
  Impl(KosliApiOptions options, std::optional<ssl::context> context,
       std::variant<std::monostate, ProxySetting, std::string> proxy, std::string no_proxy)
      : options_(std::move(options)),
        ssl_(std::move(context)),
        proxy_(std::move(proxy)),
        no_proxy_(std::move(no_proxy)),
        work_(asio::make_work_guard(ioc_)) {
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~Impl() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      asio::post(ioc_, [this] {
        for (const auto& timer : timers_) timer->cancel();
      });
    }
    work_.reset();
    if (thread_.joinable()) thread_.join();
  }

  // Runs `fn` on the API's thread; false (and `fn` dropped) once stopping.
  bool post(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    asio::post(ioc_, std::move(fn));
    return true;
  }

  void after(std::chrono::milliseconds delay, std::function<void()> fn) {
    post([this, delay, fn = std::move(fn)] {
      auto timer = std::make_shared<asio::steady_timer>(ioc_, delay);
      timers_.insert(timer);
      timer->async_wait([this, timer, fn](beast::error_code ec) {
        timers_.erase(timer);
        if (!ec) fn();
      });
    });
  }

  void perform(std::shared_ptr<HttpCall> call, std::function<void(HttpOutcome)> done) {
    const bool posted = post([this, call, done] {
      asio::co_spawn(ioc_, run_call(call), [call, done](std::exception_ptr e, HttpOutcome outcome) {
        if (e) {
          std::string what = "unknown error";
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            what = ex.what();
          }
          outcome = KosliFailure{Unreachable::network, "Kosli at " + call->base + ": " + what + " (network)", true};
        }
        done(std::move(outcome));
      });
    });
    if (!posted) {
      done(KosliFailure{Unreachable::stopping, "kosli-credd is stopping; Kosli at " + call->base + " was not asked"});
    }
  }

 private:
  awaitable<HttpOutcome> run_call(std::shared_ptr<HttpCall> call) {
    const auto url = parse_base(call->base);
    if (!url) {
      co_return KosliFailure{Unreachable::protocol, "the host " + call->base + " is not a usable URL (protocol)"};
    }
    if (!url->tls && std::holds_alternative<HostError>(normalize_host(call->base))) {
      co_return KosliFailure{Unreachable::protocol,
                             "refusing plain http:// to " + call->base + ", which is not a loopback host (protocol)"};
    }
    const auto deadline = Clock::now() + options_.call_deadline;
    auto backoff = std::chrono::duration_cast<Clock::duration>(options_.first_backoff);
    for (int attempt = 1;; ++attempt) {
      Attempt result = co_await attempt_once(*call, *url, deadline);
      std::optional<Clock::duration> wait;
      if (std::holds_alternative<KosliFailure>(result.outcome)) {
        if (result.connect_failure) wait = backoff;
      } else {
        const auto& answer = std::get<HttpAnswer>(result.outcome);
        // A rotation that got 5xx may have happened: only "not done" answers are retried.
        const bool retry = answer.status == 429 || answer.status == 503 || (call->idempotent && answer.status >= 500);
        if (retry) wait = answer.retry_after ? std::min<Clock::duration>(*answer.retry_after, kMaxRetryAfter) : backoff;
      }
      if (!wait || attempt >= options_.max_attempts || Clock::now() + *wait + kMinAttemptTime >= deadline) {
        if (auto* f = std::get_if<KosliFailure>(&result.outcome); f && attempt > 1) {
          f->message += "; tried " + std::to_string(attempt) + " times";
        }
        co_return std::move(result.outcome);
      }
      if (auto* answer = std::get_if<HttpAnswer>(&result.outcome)) {
        spdlog::debug("kosli: {} {}{} answered {}; retrying", call->method, call->base, call->path, answer->status);
        wipe(answer->body);
      } else {
        spdlog::debug("kosli: {}; retrying", std::get<KosliFailure>(result.outcome).message);
      }
      asio::steady_timer timer(co_await asio::this_coro::executor, *wait);
      co_await timer.async_wait(kAwait);
      backoff *= 2;
    }
  }

  awaitable<Attempt> attempt_once(const HttpCall& call, const Url& url, Clock::time_point deadline) {
    const auto step = [&](std::chrono::milliseconds cap) {
      return std::max<Clock::duration>(std::min<Clock::duration>(cap, deadline - Clock::now()), Clock::duration::zero());
    };
    const auto failure = [&](Unreachable reason, const std::string& what, bool delivered = false) {
      return KosliFailure{reason, "Kosli at " + call.base + ": " + what + " (" + std::string(reason_name(reason)) + ")",
                          delivered};
    };
    const auto connect_failure = [&](Unreachable reason, const std::string& what) {
      return Attempt{failure(reason, what), true};
    };

    const ProxySetting* proxy = nullptr;
    if (url.tls && !no_proxy_matches(no_proxy_, url.hostname)) {
      if (auto* bad = std::get_if<std::string>(&proxy_)) {
        co_return Attempt{failure(Unreachable::proxy, "HTTPS_PROXY is not usable: " + *bad), false};
      }
      proxy = std::get_if<ProxySetting>(&proxy_);
    }
    const std::string& connect_host = proxy ? proxy->host : url.hostname;
    const std::string& connect_port = proxy ? proxy->port : url.port;
    const std::string via = proxy ? " through the proxy " + proxy->url : "";

    auto executor = co_await asio::this_coro::executor;

    // Resolve, bounded: a resolver cannot be interrupted, so its answer is
    // simply ignored when the timer wins.
    struct Resolving {
      explicit Resolving(asio::any_io_executor ex) : resolver(ex), timer(ex) {}
      tcp::resolver resolver;
      asio::steady_timer timer;
      bool done = false;
      beast::error_code ec;
      tcp::resolver::results_type results;
    };
    auto resolving = std::make_shared<Resolving>(executor);
    const auto resolve_time = step(options_.connect_deadline);
    resolving->timer.expires_after(resolve_time);
    resolving->resolver.async_resolve(connect_host, connect_port,
                                      [resolving](beast::error_code ec, tcp::resolver::results_type results) {
                                        if (resolving->done) return;
                                        resolving->done = true;
                                        resolving->ec = ec;
                                        resolving->results = std::move(results);
                                        resolving->timer.cancel();
                                      });
    co_await resolving->timer.async_wait(kAwait);
    if (!resolving->done) {
      resolving->done = true;
      resolving->resolver.cancel();
      co_return connect_failure(Unreachable::timeout, "no DNS answer for " + connect_host + " within " +
                                                          seconds_text(resolve_time));
    }
    if (resolving->ec) {
      Attempt a = connect_failure(Unreachable::resolve,
                                  "cannot resolve " + connect_host + via + ": " + resolving->ec.message());
      a.connect_failure = resolving->ec != asio::error::host_not_found;  // authoritative: do not retry
      co_return a;
    }

    beast::tcp_stream stream(executor);
    const auto connect_time = step(options_.connect_deadline);
    stream.expires_after(connect_time);
    auto [cec, endpoint] = co_await stream.async_connect(resolving->results, kAwait);
    if (cec == beast::error::timeout) {
      co_return connect_failure(proxy ? Unreachable::proxy : Unreachable::timeout,
                                "no connection" + via + " within " + seconds_text(connect_time) + " (timed out)");
    }
    if (cec == asio::error::connection_refused) {
      co_return connect_failure(proxy ? Unreachable::proxy : Unreachable::refused,
                                proxy ? "the proxy " + proxy->url + " refused the connection" : "connection refused");
    }
    if (cec) co_return connect_failure(Unreachable::network, "cannot connect" + via + ": " + cec.message());

    if (proxy) {
      const std::string target = connect_target(url);
      std::string request = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
      if (!proxy->basic_credentials.empty()) {
        request += "Proxy-Authorization: Basic " + proxy->basic_credentials + "\r\n";
      }
      request += "User-Agent: kosli-credd/" KOSLI_VERSION "\r\n\r\n";
      stream.expires_after(step(options_.connect_deadline));
      auto [wec, written] = co_await asio::async_write(stream, asio::buffer(request), kAwait);
      wipe(request);
      beast::flat_buffer buffer;
      http::response_parser<http::empty_body> parser;
      parser.skip(true);  // a CONNECT answer has no body
      beast::error_code rec = wec;
      if (!wec) std::tie(rec, std::ignore) = co_await http::async_read(stream, buffer, parser, kAwait);
      if (rec) {
        co_return connect_failure(Unreachable::proxy, "the proxy " + proxy->url + " did not answer CONNECT to " +
                                                          target + ": " + rec.message());
      }
      const auto status = parser.get().result_int();
      if (status != 200) {
        Attempt a = connect_failure(Unreachable::proxy, "the proxy " + proxy->url + " refused CONNECT to " + target +
                                                            ": " + std::to_string(status) + " " +
                                                            std::string(parser.get().reason()));
        a.connect_failure = status >= 500;  // the proxy could not reach Kosli this time
        co_return a;
      }
      if (buffer.size() != 0) {
        co_return Attempt{failure(Unreachable::proxy, "the proxy " + proxy->url + " sent data before the TLS handshake"),
                          false};
      }
    }

    if (!url.tls) co_return co_await exchange(stream, call, deadline, failure);

    ssl::stream<beast::tcp_stream> tls(std::move(stream), tls_context());
    SSL* handle = tls.native_handle();
    beast::error_code not_ip;
    asio::ip::make_address(url.hostname, not_ip);
    if (not_ip) {
      SSL_set_tlsext_host_name(handle, url.hostname.c_str());  // SNI: names only, never addresses
      SSL_set1_host(handle, url.hostname.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), url.hostname.c_str());
    }
    tls.set_verify_mode(ssl::verify_peer);
    const auto handshake_time = step(options_.handshake_deadline);
    beast::get_lowest_layer(tls).expires_after(handshake_time);
    auto [hec] = co_await tls.async_handshake(ssl::stream_base::client, kAwait);
    if (hec) {
      if (const long verify = SSL_get_verify_result(handle); verify != X509_V_OK) {
        co_return Attempt{failure(Unreachable::certificate,
                                  "its TLS certificate cannot be trusted: " +
                                      std::string(X509_verify_cert_error_string(verify)) +
                                      "; if Kosli is reached through a private CA, give its certificate with "
                                      "--ca-file or ca_file in the configuration"),
                          false};
      }
      if (hec == beast::error::timeout) {
        co_return Attempt{failure(Unreachable::timeout, "no TLS handshake within " + seconds_text(handshake_time) +
                                                            " (timed out)"),
                          false};
      }
      co_return Attempt{failure(Unreachable::tls, "the TLS handshake failed: " + hec.message()), false};
    }
    co_return co_await exchange(tls, call, deadline, failure);
  }

  // Sends the request and reads the answer (its header only, unless the body is wanted).
  template <class Stream, class Failure>
  awaitable<Attempt> exchange(Stream& stream, const HttpCall& call, Clock::time_point deadline, const Failure& failure) {
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
        std::max<Clock::duration>(std::min<Clock::duration>(options_.request_deadline, deadline - Clock::now()),
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

  // Made on the first call (on the API's thread): a daemon that never talks to
  // Kosli never initialises OpenSSL, which is most of its resident memory.
  ssl::context& tls_context() {
    if (!ssl_) {
      // Only a ca_file can make this fail, and with one the context was made at start.
      auto made = make_tls_context(std::nullopt);
      ssl_.emplace(std::move(std::get<ssl::context>(made)));
    }
    return *ssl_;
  }

  KosliApiOptions options_;
  std::optional<ssl::context> ssl_;
  const std::variant<std::monostate, ProxySetting, std::string> proxy_;  // none, a proxy, or why HTTPS_PROXY is unusable
  const std::string no_proxy_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::set<std::shared_ptr<asio::steady_timer>> timers_;  // touched on the API's thread only
  std::mutex mutex_;
  bool stopping_ = false;
  std::thread thread_;
};

std::variant<std::unique_ptr<KosliApi>, std::string> KosliApi::open(KosliApiOptions options) {
  // A ca_file is read now, so a bad one stops the daemon at start; without
  // one, the context is made on the first call to Kosli.
  std::optional<ssl::context> context;
  if (options.ca_file) {
    auto made = make_tls_context(options.ca_file);
    if (auto* error = std::get_if<std::string>(&made)) return *error;
    context.emplace(std::move(std::get<ssl::context>(made)));
  }

  std::variant<std::monostate, ProxySetting, std::string> proxy;
  const auto env = [](const char* upper, const char* lower_name) -> std::string {
    const char* v = std::getenv(upper);
    if (v == nullptr || *v == '\0') v = std::getenv(lower_name);
    return v == nullptr ? std::string() : std::string(v);
  };
  if (const std::string https_proxy = env("HTTPS_PROXY", "https_proxy"); !https_proxy.empty()) {
    auto parsed = parse_proxy_url(https_proxy);
    if (auto* bad = std::get_if<std::string>(&parsed)) {
      spdlog::warn("kosli: HTTPS_PROXY is not usable ({}); calls to Kosli will fail until it is fixed", *bad);
      proxy = *bad;
    } else {
      spdlog::info("kosli: using the proxy {} (HTTPS_PROXY)", std::get<ProxySetting>(parsed).url);
      proxy = std::get<ProxySetting>(std::move(parsed));
    }
  }
  return std::unique_ptr<KosliApi>(new KosliApi(
      std::make_unique<Impl>(std::move(options), std::move(context), std::move(proxy), env("NO_PROXY", "no_proxy"))));
}

KosliApi::KosliApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KosliApi::~KosliApi() = default;

void KosliApi::stop() { impl_->stop(); }

void KosliApi::after(std::chrono::milliseconds delay, std::function<void()> fn) { impl_->after(delay, std::move(fn)); }

void KosliApi::check_key(const std::string& host, const std::string& org, const Secret& key,
                         std::function<void(CheckOutcome)> done) {
  auto call = std::make_shared<HttpCall>();
  call->base = host;
  call->method = "GET";
  call->path = "/api/v2/environments/" + path_segment(org);
  call->bearer = key.clone();
  impl_->perform(call, [done = std::move(done)](HttpOutcome outcome) {
    if (auto* f = std::get_if<KosliFailure>(&outcome)) return done(std::move(*f));
    auto& answer = std::get<HttpAnswer>(outcome);
    wipe(answer.body);
    done(answer.status);
  });
}

void KosliApi::rotate_key(const RotateCall& rotate, const Secret& key, std::function<void(RotateOutcome)> done) {
  auto call = std::make_shared<HttpCall>();
  call->base = rotate.host;
  call->method = "POST";
  call->path = "/api/v2/service-accounts/" + path_segment(rotate.org) + "/" + path_segment(rotate.service_account) +
               "/api-keys/" + path_segment(rotate.key_id) + "/rotate";
  nlohmann::json body{{"grace_period_hours", rotate.grace_period_hours}};
  if (rotate.expires_at) body["expires_at"] = *rotate.expires_at;
  call->body = body.dump();
  call->bearer = key.clone();
  call->idempotent = false;
  call->want_body = true;
  impl_->perform(call, [done = std::move(done), base = rotate.host](HttpOutcome outcome) {
    if (auto* f = std::get_if<KosliFailure>(&outcome)) return done(std::move(*f));
    auto& answer = std::get<HttpAnswer>(outcome);
    if (answer.status != 200 && answer.status != 201) {
      KosliRefusal refusal{answer.status, kosli_message(answer.body)};
      wipe(answer.body);
      return done(std::move(refusal));
    }
    // The answer holds the new key: parsed as a SecretJson, whose buffers are wiped when freed.
    auto j = SecretJson::parse(answer.body, nullptr, /*allow_exceptions=*/false);
    wipe(answer.body);
    RotatedKey rotated;
    if (j.is_object()) {
      for (const char* field : {"key", "api_key"}) {
        const auto it = j.find(field);
        if (it == j.end() || !it->is_string()) continue;
        auto& raw = it->get_ref<WipingString&>();
        if (rotated.key.empty()) rotated.key = Secret(raw);
        wipe(raw.data(), raw.size());
      }
      if (const auto id = j.find("id"); id != j.end()) {
        if (id->is_string()) rotated.key_id = std::string(id->get_ref<const WipingString&>());
        if (id->is_number_integer()) rotated.key_id = std::to_string(id->get<std::int64_t>());
      }
      rotated.expires_at = answer_time(j, "expires_at");
      rotated.grace_period_expires_at = answer_time(j, "grace_period_expires_at");
    }
    if (rotated.key.empty()) {
      return done(KosliFailure{Unreachable::protocol,
                               "Kosli at " + base + " answered the rotation without a new key (protocol)", true});
    }
    done(std::move(rotated));
  });
}

}  // namespace kosli::daemon
