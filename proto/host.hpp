// Kosli hosts: regions, and the base-URL rules a stored profile's host obeys.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace kosli {

inline constexpr std::string_view kEuHost = "https://app.kosli.com";
inline constexpr std::string_view kUsHost = "https://app.us.kosli.com";

// ASCII lower case (schemes, host names, header names, regions).
std::string lower(std::string_view s);

// "eu" or "us" to a base URL; nullopt for any other region.
std::optional<std::string> host_for_region(std::string_view region);

struct HostError {
  std::string message;
};

// Normalises a base URL: lower-case scheme and host, no trailing slash. Refuses
// anything but https, except http for a loopback host (127.0.0.0/8, [::1],
// localhost); refuses user info, paths, queries and fragments.
std::variant<std::string, HostError> normalize_host(std::string_view url);

// "https://app.kosli.com:8443" → "app.kosli.com:8443" (what git calls host).
std::string host_authority(std::string_view normalized_host);

}  // namespace kosli
