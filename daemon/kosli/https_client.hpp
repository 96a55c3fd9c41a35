// A generic HTTPS client (Boost.Beast, asio::ssl, OpenSSL on a thread of its
// own): one call is a method, a path and a bearer to a base URL, answered by a
// status and a body or by why there was none.
//
// Certificate and host-name verification are always on (the system trust store,
// which honours SSL_CERT_FILE and SSL_CERT_DIR, plus an optional CA bundle),
// with SNI. Every step has a deadline: resolve, connect, TLS handshake and the
// request, and a whole call has one too, retries included. HTTPS_PROXY is used
// through CONNECT unless NO_PROXY exempts the host. Only a failure to connect,
// 429 and 5xx (for a call that is not idempotent: 429 and 503, which mean "not
// done") are retried, a bounded number of times with backoff. Beast and OpenSSL
// stay in https_client.cpp and its private https_exchange.hpp.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "proto/limits.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

struct HttpsOptions {
  std::optional<std::string> ca_file;  // a PEM bundle trusted besides the system's
  // Resolve + TCP connect (+ the proxy's CONNECT), per attempt.
  std::chrono::milliseconds connect_deadline{5000};
  // The TLS handshake, per attempt.
  std::chrono::milliseconds handshake_deadline{5000};
  // Sending the request and reading the answer, per attempt.
  std::chrono::milliseconds request_deadline{8000};
  // A whole call, retries included (the client waits longer for verify and rotate).
  std::chrono::milliseconds call_deadline{limits::kKosliCallDeadline};
  int max_attempts = 3;
  std::chrono::milliseconds first_backoff{250};  // doubled after each retry
};

// Why a call got no answer from Kosli.
enum class Unreachable { certificate, tls, refused, timeout, resolve, proxy, protocol, network, stopping };
std::string_view reason_name(Unreachable reason) noexcept;

struct KosliFailure {
  Unreachable reason = Unreachable::network;
  std::string message;  // names the host and the reason; never a key
  // Whether the request may have reached Kosli (it was sent, or partly sent).
  bool maybe_delivered = false;
};

// HTTPS_PROXY's value, parsed. Only http:// proxies (CONNECT over plain TCP).
struct ProxySetting {
  std::string url;   // for messages, without credentials
  std::string host;  // without brackets
  std::string port;
  std::string basic_credentials;  // base64 "user:password" for Proxy-Authorization; may be empty
};
// Parses "http://[user:password@]host[:port][/]" (a bare "host:port" means http);
// the error says what is wrong.
std::variant<ProxySetting, std::string> parse_proxy_url(std::string_view url);
// Whether NO_PROXY (comma-separated host names, ".domain" suffixes, "*") exempts `host`.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host);

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

class HttpsClient {
 public:
  // Loads the trust store (and `ca_file`), reads HTTPS_PROXY/NO_PROXY, starts
  // the thread. An error says what is wrong (an unreadable CA bundle).
  static std::variant<std::unique_ptr<HttpsClient>, std::string> open(HttpsOptions options);
  ~HttpsClient();

  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Lets calls in flight finish (each is bounded by its
  // deadline), then joins the thread. Later calls fail at once with `stopping`.
  void stop();

  // Makes `call`; `done` runs on the client's thread.
  void perform(std::shared_ptr<HttpCall> call, std::function<void(HttpOutcome)> done);

 private:
  class Impl;
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kosli::daemon
