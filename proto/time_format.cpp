#include "proto/time_format.hpp"

#include <cctype>
#include <ctime>

namespace kosli {

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

namespace {

bool read_digits(std::string_view& s, int count, int& out) {
  if (s.size() < static_cast<std::size_t>(count)) return false;
  out = 0;
  for (int i = 0; i < count; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  s.remove_prefix(count);
  return true;
}

bool read_char(std::string_view& s, std::string_view allowed) {
  if (s.empty() || allowed.find(s.front()) == std::string_view::npos) return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::string format_rfc3339(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!read_digits(s, 4, year) || !read_char(s, "-") || !read_digits(s, 2, month) ||
      !read_char(s, "-") || !read_digits(s, 2, day) || !read_char(s, "Tt ") ||
      !read_digits(s, 2, hour) || !read_char(s, ":") || !read_digits(s, 2, minute) ||
      !read_char(s, ":") || !read_digits(s, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  if (read_char(s, ".")) {
    std::size_t n = 0;
    while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
    if (n == 0) return std::nullopt;
    s.remove_prefix(n);
  }
  int offset = 0;
  if (!read_char(s, "Zz")) {
    if (s.empty()) return std::nullopt;
    const int sign = s.front() == '-' ? -1 : 1;
    int oh, om;
    if (!read_char(s, "+-") || !read_digits(s, 2, oh) || !read_char(s, ":") ||
        !read_digits(s, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = sign * (oh * 3600 + om * 60);
  }
  if (!s.empty()) return std::nullopt;

  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = ::timegm(&tm);
  // timegm normalises 31 February into March: refuse dates that do not exist.
  if (tm.tm_mday != day || tm.tm_mon != month - 1) return std::nullopt;
  return static_cast<std::int64_t>(t) - offset;
}

}  // namespace kosli
