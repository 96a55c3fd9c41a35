// RFC 3339 times on the wire; Unix seconds inside.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kosli {

// Now, in Unix seconds.
std::int64_t now_s();

// "2026-11-26T11:19:46Z".
std::string format_rfc3339(std::int64_t unix_seconds);
// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" (also 't', 'z' and a space for 'T').
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

}  // namespace kosli
