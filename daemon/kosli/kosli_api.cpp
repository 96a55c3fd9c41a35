#include "daemon/kosli/kosli_api.hpp"

#include <cctype>
#include <cmath>

#include <nlohmann/json.hpp>

#include "proto/secret_json.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

// Kosli's own error message is cut to this many bytes in ours.
constexpr std::size_t kMaxKosliMessage = 300;

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

}  // namespace

std::optional<KeyInfo> parse_key_info(std::string_view body) {
  // A SecretJson only because answer_time reads one: this answer holds no key.
  const auto j = SecretJson::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  KeyInfo info;
  if (const auto id = j.find("id"); id != j.end()) {
    if (id->is_string()) info.id = std::string(id->get_ref<const WipingString&>());
    if (id->is_number_integer()) info.id = std::to_string(id->get<std::int64_t>());
  }
  info.created_at = answer_time(j, "created_at");
  info.expires_at = answer_time(j, "expires_at");
  info.last_used_at = answer_time(j, "last_used_at");
  return info;
}

std::variant<std::unique_ptr<KosliApi>, std::string> KosliApi::open(KosliApiOptions options) {
  auto opened = HttpsClient::open(std::move(options));
  if (auto* error = std::get_if<std::string>(&opened)) return *error;
  return std::unique_ptr<KosliApi>(new KosliApi(std::move(std::get<std::unique_ptr<HttpsClient>>(opened))));
}

KosliApi::KosliApi(std::unique_ptr<HttpsClient> https) : https_(std::move(https)) {}
KosliApi::~KosliApi() = default;

void KosliApi::stop() { https_->stop(); }

void KosliApi::check_key(const std::string& host, const std::string& org, const Secret& key,
                         std::function<void(CheckOutcome)> done) {
  auto call = std::make_shared<HttpCall>();
  call->base = host;
  call->method = "GET";
  call->path = "/api/v2/environments/" + path_segment(org);
  call->bearer = key.clone();
  https_->perform(call, [done = std::move(done)](HttpOutcome outcome) {
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
  https_->perform(call, [done = std::move(done), base = rotate.host](HttpOutcome outcome) {
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

void KosliApi::key_info(const std::string& host, const std::string& org, const std::string& service_account,
                        const std::string& key_id, const Secret& key, std::function<void(KeyInfoOutcome)> done) {
  auto call = std::make_shared<HttpCall>();
  call->base = host;
  call->method = "GET";
  call->path = "/api/v2/service-accounts/" + path_segment(org) + "/" + path_segment(service_account) + "/api-keys/" +
               path_segment(key_id);
  call->bearer = key.clone();
  call->want_body = true;
  https_->perform(call, [done = std::move(done), host](HttpOutcome outcome) {
    if (auto* f = std::get_if<KosliFailure>(&outcome)) return done(std::move(*f));
    auto& answer = std::get<HttpAnswer>(outcome);
    if (answer.status != 200) return done(KosliRefusal{answer.status, kosli_message(answer.body)});
    auto info = parse_key_info(answer.body);
    if (!info) {
      return done(KosliFailure{Unreachable::protocol,
                               "Kosli at " + host + " answered the key's metadata with something not JSON (protocol)",
                               false});
    }
    done(std::move(*info));
  });
}

}  // namespace kosli::daemon
