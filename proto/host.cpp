#include "proto/host.hpp"

#include <algorithm>
#include <cctype>

namespace kosli {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

namespace {

bool is_loopback(std::string_view hostname) {
  if (hostname == "localhost" || hostname == "[::1]") return true;
  if (hostname.rfind("127.", 0) != 0) return false;
  return std::all_of(hostname.begin(), hostname.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
}

// DNS names of letters, digits and inner hyphens, or a bracketed IPv6 literal.
bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.front() == '[') {
    const auto inner = h.substr(1, h.size() - 2);
    return h.back() == ']' && inner.find(':') != std::string_view::npos &&
           std::all_of(inner.begin(), inner.end(), [](char c) {
             return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
           });
  }
  while (!h.empty()) {
    const auto dot = h.find('.');
    const auto label = h.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; })) {
      return false;
    }
    if (dot == std::string_view::npos) break;
    h.remove_prefix(dot + 1);
    if (h.empty()) return false;  // a trailing dot
  }
  return true;
}

}  // namespace

std::optional<std::string> host_for_region(std::string_view region) {
  if (region == "eu") return std::string(kEuHost);
  if (region == "us") return std::string(kUsHost);
  return std::nullopt;
}

std::variant<std::string, HostError> normalize_host(std::string_view url) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return HostError{"the host must be a URL such as https://app.kosli.com"};
  }
  const std::string scheme = lower(url.substr(0, sep));
  std::string_view rest = url.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find(',') != std::string_view::npos) {
    return HostError{"the host must be one base URL, with no comma (the Kosli CLI reads commas as several hosts; "
                     "store one profile per host and give them to exec: --profile A --profile B)"};
  }
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return HostError{"the host must be a bare base URL such as https://app.kosli.com "
                     "(no path, query or user name)"};
  }
  // Split "host[:port]"; an IPv6 literal keeps its brackets.
  std::string_view hostname = rest;
  std::string_view port;
  const auto close = rest.rfind(']');
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    hostname = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
        std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0) {
      return HostError{"the host's port must be a number from 1 to 65535"};
    }
  }
  const std::string host = lower(hostname);
  if (!valid_hostname(host)) return HostError{"the host name in the URL is not valid"};
  if (scheme == "http") {
    if (!is_loopback(host)) {
      return HostError{"plain http:// is allowed only for a loopback host; use https://"};
    }
  } else if (scheme != "https") {
    return HostError{"the host must use https://"};
  }
  std::string out = scheme + "://" + host;
  // One spelling per host: ":0443" is ":443".
  if (!port.empty()) out.append(":").append(std::to_string(std::stoi(std::string(port))));
  return out;
}

std::string host_authority(std::string_view normalized_host) {
  const auto sep = normalized_host.find("://");
  return std::string(sep == std::string_view::npos ? normalized_host
                                                   : normalized_host.substr(sep + 3));
}

}  // namespace kosli
