// What the codecs of proto/ share: how times, identifiers and strings are read
// and written on the wire. For proto's own .cpp files, not for its users.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proto/limits.hpp"
#include "proto/profile.hpp"
#include "proto/time_format.hpp"

namespace kosli::codec_detail {

// Unix seconds for the wire: RFC 3339, or null for "never".
inline nlohmann::json time_or_null(std::int64_t t) {
  return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(format_rfc3339(t));
}

// 9999-12-31T23:59:59Z: the last time RFC 3339 can write, so every accepted
// time can be sent back and read again.
inline constexpr std::int64_t kLatestTime = 253402300799;

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
inline std::string dump_reserved(const nlohmann::json& j, std::size_t secret_bytes, std::size_t other_bytes) {
  std::string out;
  // A printable key escapes to at most 6 bytes a byte ("\u00XX").
  out.reserve(6 * secret_bytes + 2 * other_bytes + 256);
  nlohmann::detail::serializer<nlohmann::json> serializer(nlohmann::detail::output_adapter<char>(out), ' ');
  serializer.dump(j, false, false, 0);
  return out;
}

// 0 (1970-01-01T00:00:00Z) once meant "never" on the wire; as a time a key
// expires it is a mistake, and taking it for "never" would hide one.
inline std::string epoch_is_not_an_expiry(std::string_view field) {
  const bool option = field.substr(0, 2) == "--";
  return (option ? std::string(field) : "the field '" + std::string(field) + "'") +
         " is 1970-01-01T00:00:00Z (0), which is not when a key expires; give its real expiry" +
         (option ? ", or leave it out" : ", or null when it is not known");
}

inline bool valid_identifier(std::string_view s) {
  return !s.empty() && s.size() <= limits::kMaxIdentifierBytes &&
         std::isalnum(static_cast<unsigned char>(s.front())) &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

inline bool printable(std::string_view s) {
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

}  // namespace kosli::codec_detail
