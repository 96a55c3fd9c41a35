#include "proto/display.hpp"

#include <cstdint>
#include <cstdio>

namespace kosli {
namespace {

bool hidden(char32_t c) {
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 || c == 0x061c ||
         c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

// The length of the UTF-8 sequence at the start of `s` and its character, or
// 0 when it is not a valid (shortest-form, non-surrogate) sequence.
std::size_t decode(std::string_view s, char32_t& c) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  std::size_t n = 0;
  if (b0 < 0x80) {
    c = b0;
    return 1;
  }
  if ((b0 & 0xe0) == 0xc0) n = 2, c = b0 & 0x1f;
  else if ((b0 & 0xf0) == 0xe0) n = 3, c = b0 & 0x0f;
  else if ((b0 & 0xf8) == 0xf0) n = 4, c = b0 & 0x07;
  else return 0;
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xc0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3f);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  return n;
}

}  // namespace

std::string display_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char buf[16];
  while (!text.empty()) {
    char32_t c = 0;
    const std::size_t n = decode(text, c);
    if (n == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(text[0]));
      out += buf;
      text.remove_prefix(1);
      continue;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (!hidden(c)) {
      out.append(text.substr(0, n));
    } else if (c < 0x80) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(c));
      out += buf;
    }
    text.remove_prefix(n);
  }
  return out;
}

}  // namespace kosli
