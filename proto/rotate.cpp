// The body of POST /v1/profiles/{name}/rotate (proto/profile.hpp's RotateRequest).
#include <algorithm>
#include <iterator>

#include <nlohmann/json.hpp>

#include "proto/codec_detail.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"
#include "proto/secret_json.hpp"
#include "proto/time_format.hpp"

namespace kosli {

using nlohmann::json;
using namespace codec_detail;

std::variant<RotateRequest, CodecError> parse_rotate(std::string& body) {
  SecretJson j;
  if (auto problem = parse_secret_json(body, j)) return CodecError{j.is_discarded() ? "the body is " + *problem : *problem};
  if (!j.is_object()) return CodecError{"the body must be a JSON object"};

  RotateRequest r;
  // Take the key first, so every later return leaves no copy of it behind.
  if (const auto it = j.find("api_key"); it != j.end()) {
    if (!it->is_string()) return CodecError{"the field 'api_key' must be a string"};
    auto& raw = it->get_ref<WipingString&>();
    r.api_key = Secret(raw);
    wipe(raw.data(), raw.size());
    if (auto problem = api_key_problem(r.api_key.reveal())) return CodecError{std::move(*problem)};
  }
  static constexpr std::string_view kKnown[] = {"api_key", "verify", "key_id", "expires_at", "via_api"};
  for (const auto& item : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), item.key()) == std::end(kKnown)) {
      return CodecError{"unknown field '" + std::string(item.key()) + "'"};
    }
  }
  const auto via = j.find("via_api");
  if (r.api_key.empty() == (via == j.end())) {
    return CodecError{"send either 'api_key' (a new key you got from Kosli) or 'via_api' "
                      "(rotate through Kosli's API), not both"};
  }
  const auto read_time = [](const SecretJson& v, const char* field) -> std::variant<std::int64_t, CodecError> {
    const auto t = time_from_json(v);
    if (!t) return CodecError{std::string("the field '") + field + "' must be an RFC 3339 time, Unix seconds or null"};
    if (*t == 0 && !v.is_null()) return CodecError{epoch_is_not_an_expiry(field)};
    return *t;
  };

  if (via != j.end()) {
    r.via_api = true;
    for (const char* field : {"verify", "key_id", "expires_at"}) {
      if (j.contains(field)) {
        return CodecError{std::string("the field '") + field + "' does not go with 'via_api'" +
                          (std::string_view(field) == "expires_at" ? " (put it inside 'via_api')" : "")};
      }
    }
    if (!via->is_object()) return CodecError{"the field 'via_api' must be an object"};
    for (const auto& item : via->items()) {
      if (item.key() == "grace_period_hours") {
        const auto& v = item.value();
        if (!v.is_number_integer() || v.get<std::int64_t>() < limits::kMinGraceHours ||
            v.get<std::int64_t>() > limits::kMaxGraceHours) {
          return CodecError{"the field 'via_api.grace_period_hours' must be a whole number of hours " +
                            std::string(limits::kGraceHoursRange)};
        }
        r.grace_period_hours = v.get<int>();
      } else if (item.key() == "expires_at") {
        auto t = read_time(item.value(), "via_api.expires_at");
        if (auto* e = std::get_if<CodecError>(&t)) return *e;
        if (const auto seconds = std::get<std::int64_t>(t); seconds != 0) r.expires_at = seconds;
      } else {
        return CodecError{"unknown field 'via_api." + std::string(item.key()) + "'"};
      }
    }
    return r;
  }

  if (const auto v = j.find("verify"); v != j.end()) {
    if (!v->is_boolean()) return CodecError{"the field 'verify' must be true or false"};
    r.verify = v->get<bool>();
  }
  if (auto e = read_string(j, "key_id", false, r.key_id)) return *e;
  if (!r.key_id.empty() && !valid_identifier(r.key_id)) {
    return CodecError{"the field 'key_id' has characters that are not allowed"};
  }
  if (const auto e = j.find("expires_at"); e != j.end()) {
    auto t = read_time(*e, "expires_at");
    if (auto* err = std::get_if<CodecError>(&t)) return *err;
    r.expires_at = std::get<std::int64_t>(t);
  }
  return r;
}

std::string serialize_rotate(const RotateRequest& r) {
  if (r.via_api) {
    json via{{"grace_period_hours", r.grace_period_hours}};
    if (r.expires_at && *r.expires_at != 0) via["expires_at"] = format_rfc3339(*r.expires_at);
    return json{{"via_api", std::move(via)}}.dump();
  }
  json j{{"verify", r.verify}};
  if (!r.key_id.empty()) j["key_id"] = r.key_id;
  if (r.expires_at) j["expires_at"] = time_or_null(*r.expires_at);
  // Assign in place: a temporary string would leave an unwiped copy behind.
  j["api_key"] = std::string();
  j["api_key"].get_ref<std::string&>().assign(r.api_key.reveal());
  std::string out = dump_reserved(j, r.api_key.size(), r.key_id.size() + 64);
  wipe(j["api_key"].get_ref<std::string&>());
  return out;
}

}  // namespace kosli
