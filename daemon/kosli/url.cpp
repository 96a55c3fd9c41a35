#include "daemon/kosli/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <openssl/evp.h>

#include "daemon/kosli/https_client.hpp"
#include "proto/host.hpp"

namespace kosli::daemon {
namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      const auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

}  // namespace

std::optional<Url> parse_base(std::string_view base) {
  const auto sep = base.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  Url url;
  const std::string_view scheme = base.substr(0, sep);
  if (scheme == "https") {
    url.tls = true;
  } else if (scheme == "http") {
    url.tls = false;
  } else {
    return std::nullopt;
  }
  url.authority = std::string(base.substr(sep + 3));
  std::string_view host = url.authority;
  url.port = url.tls ? "443" : "80";
  const auto close = host.rfind(']');
  const auto colon = host.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    url.port = std::string(host.substr(colon + 1));
    host = host.substr(0, colon);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return std::nullopt;
  url.hostname = std::string(host);
  // The CONNECT target always names the port.
  return url;
}

std::string connect_target(const Url& url) {
  const bool v6 = url.hostname.find(':') != std::string::npos;
  return (v6 ? "[" + url.hostname + "]" : url.hostname) + ":" + url.port;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string seconds_text(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string((ms + 999) / 1000) + " s";
}

std::optional<std::chrono::seconds> retry_after(std::string_view value) {
  int seconds = 0;
  const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc() || p != value.data() + value.size() || seconds < 0) return std::nullopt;
  return std::chrono::seconds(seconds);
}

std::string_view reason_name(Unreachable reason) noexcept {
  switch (reason) {
    case Unreachable::certificate: return "certificate";
    case Unreachable::tls: return "tls";
    case Unreachable::refused: return "refused";
    case Unreachable::timeout: return "timeout";
    case Unreachable::resolve: return "resolve";
    case Unreachable::proxy: return "proxy";
    case Unreachable::protocol: return "protocol";
    case Unreachable::network: return "network";
    case Unreachable::stopping: return "stopping";
  }
  return "network";
}

std::variant<ProxySetting, std::string> parse_proxy_url(std::string_view text) {
  std::string url = trim(text);
  const auto sep = url.find("://");
  std::string_view rest = url;
  if (sep != std::string::npos) {
    if (lower(url.substr(0, sep)) != "http") {
      return "only http:// proxies are supported (kosli-credd tunnels HTTPS through them with CONNECT)";
    }
    rest = std::string_view(url).substr(sep + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  ProxySetting proxy;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const auto colon = userinfo.find(':');
    const std::string user = percent_decode(userinfo.substr(0, colon));
    const std::string password = colon == std::string_view::npos ? "" : percent_decode(userinfo.substr(colon + 1));
    std::string credentials = user + ":" + password;
    proxy.basic_credentials = base64(credentials);
    wipe(credentials);
    rest = rest.substr(at + 1);
  }
  auto parsed = parse_base("http://" + std::string(rest));
  if (!parsed || parsed->hostname.empty()) return "the proxy URL has no host";
  const auto& port = parsed->port;
  int port_number = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (ec != std::errc() || p != port.data() + port.size() || port_number < 1 || port_number > 65535) {
    return "the proxy URL's port must be a number from 1 to 65535";
  }
  proxy.host = parsed->hostname;
  proxy.port = port;
  proxy.url = "http://" + connect_target(*parsed);
  return proxy;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host_in) {
  std::string host = lower(host_in);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  while (!no_proxy.empty()) {
    const auto comma = no_proxy.find(',');
    std::string entry = lower(trim(no_proxy.substr(0, comma)));
    no_proxy = comma == std::string_view::npos ? std::string_view{} : no_proxy.substr(comma + 1);
    if (entry == "*") return true;
    if (entry.size() >= 2 && entry.front() == '[' && entry.back() == ']') entry = entry.substr(1, entry.size() - 2);
    if (entry.rfind("*.", 0) == 0) entry.erase(0, 1);
    if (!entry.empty() && entry.front() == '.') entry.erase(0, 1);
    if (entry.empty()) continue;
    if (host == entry) return true;
    if (host.size() > entry.size() && host.compare(host.size() - entry.size(), entry.size(), entry) == 0 &&
        host[host.size() - entry.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

}  // namespace kosli::daemon
