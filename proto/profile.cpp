#include "proto/profile.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "proto/host.hpp"
#include "proto/limits.hpp"
#include "proto/codec_detail.hpp"
#include "proto/secret_json.hpp"
#include "proto/time_format.hpp"

namespace kosli {
using nlohmann::json;
using namespace codec_detail;

std::optional<std::string> org_problem(std::string_view org) {
  if (valid_identifier(org)) return std::nullopt;
  std::string problem = "must be an organisation name (letters, digits, '.', '_', '-')";
  if (org.find(',') != std::string_view::npos) {
    problem += ", one org: a comma would make the Kosli CLI read one profile as several hosts";
  }
  return problem;
}

std::optional<std::string> profile_name_problem(std::string_view name) {
  const auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > limits::kMaxProfileName || !ok_char(name.front()) ||
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

std::string how_to_learn_expiry(const ProfileMeta& m) {
  const std::string again = "kosli-cred token --profile " + m.name + " | kosli-cred store --profile " + m.name +
                            " --org " + m.org + " --host " + m.host;
  if (m.kind == KeyKind::personal) {
    return "Kosli tells no one a personal key's expiry; give it: " + again + " --kind personal --expires-at TIME";
  }
  if (m.service_account.empty() || m.key_id.empty()) {
    return "store it with its service account and key id, and kosli-credd learns it from Kosli: " + again +
           " --service-account SA --key-id ID";
  }
  return "not learned from Kosli yet; ask now: kosli-cred verify --profile " + m.name;
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
      {"expiry_source", m.expires_at == 0 || m.expiry_source.empty() ? json(nullptr) : json(m.expiry_source)},
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
        {"last_verify_result", &m.last_verify_result}, {"expiry_source", &m.expiry_source}}) {
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

  if (auto problem = org_problem(r.org)) return CodecError{"the field 'org' " + *problem};
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
}  // namespace kosli
