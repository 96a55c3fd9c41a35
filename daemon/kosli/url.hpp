// A base URL and HTTPS_PROXY's pieces, for the HTTPS client (no Asio here).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kosli::daemon {

// A base URL split for connecting: "https://[::1]:8443" → tls, "[::1]", "::1", "8443".
struct Url {
  bool tls = true;
  std::string authority;  // host[:port] as in the URL, for Host and CONNECT
  std::string hostname;   // without brackets, for resolving and verifying
  std::string port;
};

// Splits a normalised host URL; nullopt when it is not one.
std::optional<Url> parse_base(std::string_view base);
// host:port as CONNECT and Host name it.
std::string connect_target(const Url& url);

std::string trim(std::string_view s);
// "2.5 s", for messages.
std::string seconds_text(std::chrono::steady_clock::duration d);
// A Retry-After value in seconds (an HTTP date is not honoured: nullopt).
std::optional<std::chrono::seconds> retry_after(std::string_view value);

}  // namespace kosli::daemon
