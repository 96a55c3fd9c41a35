#include "proto/profile.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "proto/host.hpp"
#include "proto/limits.hpp"
#include "proto/secret_json.hpp"
#include "proto/time_format.hpp"

namespace kosli {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxProfileName = 64;

// Unix seconds for the wire: RFC 3339, or null for "never".
json time_or_null(std::int64_t t) { return t == 0 ? json(nullptr) : json(format_rfc3339(t)); }

// 9999-12-31T23:59:59Z: the last time RFC 3339 can write, so every accepted
// time can be sent back and read again.
constexpr std::int64_t kLatestTime = 253402300799;

// (Json: json, or SecretJson for a body that holds a key.)
template <class Json>
std::optional<std::int64_t> time_from_json(const Json& j) {
  if (j.is_null()) return 0;
  std::optional<std::int64_t> t;
  if (j.is_number_unsigned()) {
    if (j.template get<std::uint64_t>() <= static_cast<std::uint64_t>(kLatestTime)) t = j.template get<std::int64_t>();
  } else if (j.is_number_integer()) {
    t = j.template get<std::int64_t>();
  } else if (j.is_string()) {
    t = parse_rfc3339(j.template get_ref<const typename Json::string_t&>());
  }
  if (!t || *t < 0 || *t > kLatestTime) return std::nullopt;
  return t;
}

// Serialises a body that holds a key into a buffer reserved up front: a string
// that grows while dumping would leave copies of the key in freed memory.
std::string dump_reserved(const json& j, std::size_t secret_bytes, std::size_t other_bytes) {
  std::string out;
  // A printable key escapes to at most 6 bytes a byte ("\u00XX").
  out.reserve(6 * secret_bytes + 2 * other_bytes + 256);
  nlohmann::detail::serializer<json> serializer(nlohmann::detail::output_adapter<char>(out), ' ');
  serializer.dump(j, false, false, 0);
  return out;
}

// 0 (1970-01-01T00:00:00Z) once meant "never" on the wire; as a time a key
// expires it is a mistake, and taking it for "never" would hide one.
std::string epoch_is_not_an_expiry(std::string_view field) {
  const bool option = field.substr(0, 2) == "--";
  return (option ? std::string(field) : "the field '" + std::string(field) + "'") +
         " is 1970-01-01T00:00:00Z (0), which is not when a key expires; give its real expiry" +
         (option ? ", or leave it out" : ", or null when it is not known");
}

bool valid_identifier(std::string_view s) {
  return !s.empty() && s.size() <= limits::kMaxIdentifierBytes &&
         std::isalnum(static_cast<unsigned char>(s.front())) &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

bool printable(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Reads an optional string field; an error names the field.
template <class Json>
std::optional<CodecError> read_string(const Json& body, const char* field, bool required, std::string& out) {
  const auto it = body.find(field);
  if (it == body.end() || (!required && it->is_null())) {
    if (required) return CodecError{std::string("the field '") + field + "' is required"};
    return std::nullopt;
  }
  if (!it->is_string()) return CodecError{std::string("the field '") + field + "' must be a string"};
  const auto& value = it->template get_ref<const typename Json::string_t&>();
  out.assign(value.data(), value.size());
  return std::nullopt;
}

}  // namespace

std::optional<std::string> profile_name_problem(std::string_view name) {
  const auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > kMaxProfileName || !ok_char(name.front()) ||
      name.front() == '.' || name.front() == '_' || name.front() == '-' ||
      !std::all_of(name.begin(), name.end(), ok_char)) {
    return "a profile name is 1 to 64 characters of a-z, 0-9, '.', '_' and '-', "
           "starting with a letter or digit";
  }
  return std::nullopt;
}

std::string_view kind_name(KeyKind kind) noexcept {
  return kind == KeyKind::personal ? "personal" : "service-account";
}

std::optional<KeyKind> kind_from_name(std::string_view name) noexcept {
  if (name == "service-account") return KeyKind::service_account;
  if (name == "personal") return KeyKind::personal;
  return std::nullopt;
}

json to_json(const ProfileMeta& m) {
  return json{
      {"name", m.name},
      {"org", m.org},
      {"host", m.host},
      {"kind", kind_name(m.kind)},
      {"description", m.description},
      {"created_at", time_or_null(m.created_at)},
      {"expires_at", time_or_null(m.expires_at)},
      {"fingerprint", m.fingerprint},
      {"service_account", m.service_account.empty() ? json(nullptr) : json(m.service_account)},
      {"key_id", m.key_id.empty() ? json(nullptr) : json(m.key_id)},
      {"persistent", m.persistent},
      {"last_verified_at", time_or_null(m.last_verified_at)},
      {"last_verify_result", m.last_verify_result.empty() ? json(nullptr) : json(m.last_verify_result)},
  };
}

std::optional<ProfileMeta> profile_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ProfileMeta m;
  std::string kind;
  for (const auto& [field, out] : {std::pair{"name", &m.name}, {"org", &m.org}, {"host", &m.host}, {"kind", &kind}}) {
    if (read_string(j, field, true, *out)) return std::nullopt;
  }
  for (const auto& [field, out] :
       {std::pair{"description", &m.description}, {"fingerprint", &m.fingerprint},
        {"service_account", &m.service_account}, {"key_id", &m.key_id},
        {"last_verify_result", &m.last_verify_result}}) {
    if (read_string(j, field, false, *out)) return std::nullopt;
  }
  const auto k = kind_from_name(kind);
  if (!k) return std::nullopt;
  m.kind = *k;
  for (const auto& [field, out] : {std::pair{"created_at", &m.created_at}, {"expires_at", &m.expires_at},
                                   {"last_verified_at", &m.last_verified_at}}) {
    const auto it = j.find(field);
    if (it == j.end()) continue;
    const auto t = time_from_json(*it);
    if (!t) return std::nullopt;
    *out = *t;
  }
  if (const auto p = j.find("persistent"); p != j.end()) {
    if (!p->is_boolean()) return std::nullopt;
    m.persistent = p->get<bool>();
  }
  return m;
}

std::optional<std::string> api_key_problem(std::string_view key) {
  if (key.empty()) return "the API key is empty";
  if (key.size() > limits::kMaxKeyBytes) return "the API key is longer than any Kosli key";
  // A key travels in an Authorization header: no Kosli key holds anything but
  // visible ASCII. What else arrives is a copy-and-paste stowaway (a trailing
  // space, a no-break or zero-width space, a line separator, a control).
  if (!std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return "the API key contains a space, a control character or a character outside ASCII "
           "(a trailing space, a no-break or zero-width space, a line separator?), which no Kosli key "
           "does; paste the key alone";
  }
  return std::nullopt;
}

std::variant<std::int64_t, std::string> parse_expiry(std::string_view text, std::string_view option) {
  const auto t = parse_rfc3339(text);
  if (!t || *t < 0 || *t > kLatestTime) {
    return std::string(option) + " must be an RFC 3339 time such as 2027-01-31T00:00:00Z";
  }
  if (*t == 0) return epoch_is_not_an_expiry(option);
  return *t;
}

std::variant<PutProfileRequest, CodecError> parse_put_profile(std::string& body) {
  SecretJson j;
  if (auto problem = parse_secret_json(body, j)) return CodecError{j.is_discarded() ? "the body is " + *problem : *problem};
  return put_profile_from_json(j);
}

std::variant<PutProfileRequest, CodecError> put_profile_from_json(SecretJson& j) {
  if (!j.is_object()) return CodecError{"the body must be a JSON object"};

  PutProfileRequest r;
  // Take the key first, so every later return leaves no copy of it behind.
  if (const auto it = j.find("api_key"); it != j.end() && it->is_string()) {
    auto& raw = it->get_ref<WipingString&>();
    r.api_key = Secret(raw);
    wipe(raw.data(), raw.size());
  } else {
    return CodecError{it == j.end() ? "the field 'api_key' is required"
                                    : "the field 'api_key' must be a string"};
  }
  if (auto problem = api_key_problem(r.api_key.reveal())) return CodecError{std::move(*problem)};

  static constexpr std::string_view kKnown[] = {"org",         "host",    "kind",
                                                "api_key",     "expires_at", "description",
                                                "service_account", "key_id"};
  for (const auto& item : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), item.key()) == std::end(kKnown)) {
      return CodecError{"unknown field '" + std::string(item.key()) + "'"};
    }
  }

  std::string kind, host;
  if (auto e = read_string(j, "org", true, r.org)) return *e;
  if (auto e = read_string(j, "host", true, host)) return *e;
  if (auto e = read_string(j, "kind", true, kind)) return *e;
  if (auto e = read_string(j, "description", false, r.description)) return *e;
  if (auto e = read_string(j, "service_account", false, r.service_account)) return *e;
  if (auto e = read_string(j, "key_id", false, r.key_id)) return *e;

  if (!valid_identifier(r.org)) {
    return CodecError{"the field 'org' must be an organisation name (letters, digits, '.', '_', '-')"};
  }
  if (host.size() > limits::kMaxHostBytes) return CodecError{"the field 'host' is too long"};
  auto normalized = normalize_host(host);
  if (auto* err = std::get_if<HostError>(&normalized)) {
    return CodecError{"the field 'host' is not usable: " + err->message};
  }
  r.host = std::get<std::string>(normalized);
  const auto k = kind_from_name(kind);
  if (!k) return CodecError{"the field 'kind' must be \"service-account\" or \"personal\""};
  r.kind = *k;
  if (r.description.size() > limits::kMaxDescriptionBytes || !printable(r.description)) {
    return CodecError{"the field 'description' must be at most 256 printable characters"};
  }
  for (const auto& [field, value] :
       {std::pair{"service_account", &r.service_account}, {"key_id", &r.key_id}}) {
    if (!value->empty() && !valid_identifier(*value)) {
      return CodecError{std::string("the field '") + field + "' has characters that are not allowed"};
    }
  }
  if (const auto it = j.find("expires_at"); it != j.end()) {
    const auto t = time_from_json(*it);
    if (!t) {
      return CodecError{"the field 'expires_at' must be an RFC 3339 time, Unix seconds or null"};
    }
    if (*t == 0 && !it->is_null()) return CodecError{epoch_is_not_an_expiry("expires_at")};
    r.expires_at = *t;
  }
  return r;
}

std::string serialize_put_profile(const PutProfileRequest& r) {
  json j{{"org", r.org}, {"host", r.host}, {"kind", kind_name(r.kind)}};
  if (r.expires_at != 0) j["expires_at"] = format_rfc3339(r.expires_at);
  if (!r.description.empty()) j["description"] = r.description;
  if (!r.service_account.empty()) j["service_account"] = r.service_account;
  if (!r.key_id.empty()) j["key_id"] = r.key_id;
  // Assign in place: a temporary string would leave an unwiped copy behind.
  j["api_key"] = std::string();
  j["api_key"].get_ref<std::string&>().assign(r.api_key.reveal());
  std::string out = dump_reserved(j, r.api_key.size(),
                                  r.org.size() + r.host.size() + r.description.size() +
                                      r.service_account.size() + r.key_id.size());
  wipe(j["api_key"].get_ref<std::string&>());
  return out;
}

std::string serialize_token(const Secret& token, const TokenInfo& info) {
  json j{{"token", std::string()},
         {"token_type", "Bearer"},
         {"org", info.org},
         {"host", info.host},
         {"expires_at", time_or_null(info.expires_at)}};
  if (info.expires_at != 0 && info.expiry_warning_days > 0) j["expiry_warning_days"] = info.expiry_warning_days;
  j["token"].get_ref<std::string&>().assign(token.reveal());
  std::string out = dump_reserved(j, token.size(), info.org.size() + info.host.size());
  wipe(j["token"].get_ref<std::string&>());
  return out;
}

std::variant<TokenResponse, CodecError> parse_token(std::string& body) {
  SecretJson j = SecretJson::parse(body, nullptr, /*allow_exceptions=*/false);
  wipe(body);
  if (!j.is_object()) return CodecError{"the daemon's answer is not a token"};
  TokenResponse r;
  const auto it = j.find("token");
  if (it == j.end() || !it->is_string()) return CodecError{"the daemon's answer has no token"};
  auto& raw = it->get_ref<WipingString&>();
  r.token = Secret(raw);
  wipe(raw.data(), raw.size());
  if (read_string(j, "org", false, r.info.org) || read_string(j, "host", false, r.info.host)) {
    return CodecError{"the daemon's answer is not a token"};
  }
  if (const auto e = j.find("expires_at"); e != j.end()) {
    const auto t = time_from_json(*e);
    if (!t) return CodecError{"the daemon's answer has a bad expires_at"};
    r.info.expires_at = *t;
  }
  if (const auto w = j.find("expiry_warning_days"); w != j.end() && w->is_number_integer()) {
    const auto days = w->get<std::int64_t>();
    if (days > 0 && days <= 3650) r.info.expiry_warning_days = static_cast<int>(days);
  }
  return r;
}

std::int64_t days_left(std::int64_t expires_at, std::int64_t now) {
  constexpr std::int64_t kDay = 86400;
  const std::int64_t left = expires_at - now;
  return left >= 0 ? left / kDay : -((-left + kDay - 1) / kDay);
}

bool expiring_within(std::int64_t expires_at, int warning_days, std::int64_t now) {
  if (expires_at == 0) return false;
  return expires_at <= now || expires_at - now <= static_cast<std::int64_t>(warning_days) * 86400;
}

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
        if (!v.is_number_integer() || v.get<std::int64_t>() < kMinGraceHours ||
            v.get<std::int64_t>() > kMaxGraceHours) {
          return CodecError{"the field 'via_api.grace_period_hours' must be a whole number of hours from 1 to 720"};
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
