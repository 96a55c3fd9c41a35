// Kosli's API endpoints, on the HTTPS client (daemon/kosli/https_client.hpp):
// checks whether a key works and rotates service-account keys. Calls run on the
// client's thread, so a slow or unreachable Kosli never holds up token service.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "daemon/kosli/https_client.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

// The HTTPS client's settings, for Kosli.
using KosliApiOptions = HttpsOptions;

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

// A service-account key's metadata as Kosli tells it to the key itself:
// GET <host>/api/v2/service-accounts/<org>/<sa>/api-keys/<key_id> answers
// {id, description, created_at, expires_at, last_used_at}, times in Unix
// seconds that may be fractional.
struct KeyInfo {
  std::string id;
  std::int64_t created_at = 0;    // Unix seconds, 0 = not said
  std::int64_t expires_at = 0;    // Unix seconds, 0 = not said
  std::int64_t last_used_at = 0;  // Unix seconds, 0 = never or not said
};

// The answer's body read; nullopt when it is not a JSON object. A time that is
// null, not a number or RFC 3339 text, or out of range reads as 0; a fraction
// of a second is dropped.
std::optional<KeyInfo> parse_key_info(std::string_view body);

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
using KeyInfoOutcome = std::variant<KeyInfo, KosliRefusal, KosliFailure>;

class KosliApi {
 public:
  // Loads the trust store (and `ca_file`), reads HTTPS_PROXY/NO_PROXY, starts
  // the thread. An error says what is wrong (an unreadable CA bundle, a bad proxy URL).
  static std::variant<std::unique_ptr<KosliApi>, std::string> open(KosliApiOptions options);
  ~KosliApi();

  KosliApi(const KosliApi&) = delete;
  KosliApi& operator=(const KosliApi&) = delete;

  // Lets calls in flight finish (each is bounded by its
  // deadline), then joins the thread. Later calls fail at once with `stopping`.
  void stop();

  // GET <host>/api/v2/environments/<org> with the key as bearer: 200 valid,
  // 401 invalid, 403 valid but not for that org. `done` runs on the API's thread.
  void check_key(const std::string& host, const std::string& org, const Secret& key,
                 std::function<void(CheckOutcome)> done);

  // POST <host>/api/v2/service-accounts/<org>/<sa>/api-keys/<key_id>/rotate with
  // the current key as bearer. `done` runs on the API's thread.
  void rotate_key(const RotateCall& call, const Secret& key, std::function<void(RotateOutcome)> done);

  // GET <host>/api/v2/service-accounts/<org>/<sa>/api-keys/<key_id> with the
  // key as bearer: the key's own metadata (its expiry). `done` runs on the API's thread.
  void key_info(const std::string& host, const std::string& org, const std::string& service_account,
                const std::string& key_id, const Secret& key, std::function<void(KeyInfoOutcome)> done);

 private:
  explicit KosliApi(std::unique_ptr<HttpsClient> https);
  std::unique_ptr<HttpsClient> https_;
};

}  // namespace kosli::daemon
