// Talks to Kosli's API over HTTPS (Boost.Beast, asio::ssl, OpenSSL): checks
// whether a key works and rotates service-account keys. Calls run on a thread
// of their own, so a slow or unreachable Kosli never holds up token service.
//
// Certificate and host-name verification are always on (the system trust store,
// which honours SSL_CERT_FILE and SSL_CERT_DIR, plus an optional CA bundle),
// with SNI. Every step has a deadline: resolve, connect, TLS handshake and the
// request, and a whole call has one too, retries included. HTTPS_PROXY is used
// through CONNECT unless NO_PROXY exempts the host. Only a failure to connect,
// 429 and 5xx (for a rotation: 429 and 503, which mean "not done") are retried,
// a bounded number of times with backoff. Beast and OpenSSL stay in the .cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "proto/limits.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

struct KosliApiOptions {
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

// A non-2xx answer, with Kosli's own message when it gave one.
struct KosliRefusal {
  int status = 0;
  std::string message;
};

// What a rotation gives back: the new key, once.
struct RotatedKey {
  Secret key;
  std::string key_id;
  std::int64_t expires_at = 0;               // Unix seconds, 0 = never
  std::int64_t grace_period_expires_at = 0;  // when the old key stops working; 0 = not said
};

struct RotateCall {
  std::string host;  // normalised base URL
  std::string org;
  std::string service_account;
  std::string key_id;
  int grace_period_hours = 24;
  std::optional<std::int64_t> expires_at;  // the new key's; nullopt: Kosli's default
};

// The HTTP status of GET /api/v2/environments/<org> made with the key.
using CheckOutcome = std::variant<int, KosliFailure>;
using RotateOutcome = std::variant<RotatedKey, KosliRefusal, KosliFailure>;

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

class KosliApi {
 public:
  // Loads the trust store (and `ca_file`), reads HTTPS_PROXY/NO_PROXY, starts
  // the thread. An error says what is wrong (an unreadable CA bundle, a bad proxy URL).
  static std::variant<std::unique_ptr<KosliApi>, std::string> open(KosliApiOptions options);
  ~KosliApi();

  KosliApi(const KosliApi&) = delete;
  KosliApi& operator=(const KosliApi&) = delete;

  // Cancels timers, lets calls in flight finish (each is bounded by its
  // deadline), then joins the thread. Later calls fail at once with `stopping`.
  void stop();

  // GET <host>/api/v2/environments/<org> with the key as bearer: 200 valid,
  // 401 invalid, 403 valid but not for that org. `done` runs on the API's thread.
  void check_key(const std::string& host, const std::string& org, const Secret& key,
                 std::function<void(CheckOutcome)> done);

  // POST <host>/api/v2/service-accounts/<org>/<sa>/api-keys/<key_id>/rotate with
  // the current key as bearer. `done` runs on the API's thread.
  void rotate_key(const RotateCall& call, const Secret& key, std::function<void(RotateOutcome)> done);

  // Runs `fn` on the API's thread after `delay`, unless stopped first.
  void after(std::chrono::milliseconds delay, std::function<void()> fn);

 private:
  class Impl;
  explicit KosliApi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kosli::daemon
