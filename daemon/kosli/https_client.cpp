#include "daemon/kosli/https_client.hpp"

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
#include <spdlog/spdlog.h>

#include "daemon/kosli/https_exchange.hpp"
#include "daemon/kosli/url.hpp"
#include "proto/host.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {

using namespace https_detail;

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

class HttpsClient::Impl {
 public:
  Impl(HttpsOptions options, std::optional<ssl::context> context,
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

    if (!url.tls) co_return co_await exchange(stream, call, deadline, options_.request_deadline, failure);

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
    co_return co_await exchange(tls, call, deadline, options_.request_deadline, failure);
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

  HttpsOptions options_;
  std::optional<ssl::context> ssl_;
  const std::variant<std::monostate, ProxySetting, std::string> proxy_;  // none, a proxy, or why HTTPS_PROXY is unusable
  const std::string no_proxy_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::thread thread_;
};

std::variant<std::unique_ptr<HttpsClient>, std::string> HttpsClient::open(HttpsOptions options) {
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
  return std::unique_ptr<HttpsClient>(new HttpsClient(
      std::make_unique<Impl>(std::move(options), std::move(context), std::move(proxy), env("NO_PROXY", "no_proxy"))));
}

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsClient::~HttpsClient() = default;

void HttpsClient::stop() { impl_->stop(); }

void HttpsClient::perform(std::shared_ptr<HttpCall> call, std::function<void(HttpOutcome)> done) {
  impl_->perform(std::move(call), std::move(done));
}

}  // namespace kosli::daemon
