// daemon/kosli/https_client: how the Kosli client reads HTTPS_PROXY and NO_PROXY.
#include <string>
#include <variant>

#include <gtest/gtest.h>

#include "daemon/kosli/https_client.hpp"
#include "tests/unit/test_helpers.hpp"

namespace kosli::daemon {
namespace {

using test::Mentions;

ProxySetting proxy_ok(const std::string& url) {
  auto parsed = parse_proxy_url(url);
  if (auto* e = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << url << ": " << *e;
    return {};
  }
  return std::get<ProxySetting>(parsed);
}

TEST(ProxyUrl, ReadsHostPortAndCredentials) {
  const auto p = proxy_ok("http://proxy.corp:3128/");
  EXPECT_EQ(p.host, "proxy.corp");
  EXPECT_EQ(p.port, "3128");
  EXPECT_EQ(p.url, "http://proxy.corp:3128");
  EXPECT_EQ(p.basic_credentials, "");

  const auto bare = proxy_ok("10.0.0.1:8080");
  EXPECT_EQ(bare.host, "10.0.0.1");
  EXPECT_EQ(bare.port, "8080");

  EXPECT_EQ(proxy_ok("HTTP://proxy.corp").port, "80");
  const auto v6 = proxy_ok("http://[::1]:3128");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.url, "http://[::1]:3128");

  const auto auth = proxy_ok("http://alice:p%40ss@proxy.corp:3128");
  EXPECT_EQ(auth.host, "proxy.corp");
  EXPECT_EQ(auth.basic_credentials, "YWxpY2U6cEBzcw==");  // alice:p@ss
  EXPECT_EQ(auth.url.find("alice"), std::string::npos) << "credentials stay out of messages";
}

TEST(ProxyUrl, RefusesWhatCannotBeUsed) {
  for (const auto& [url, why] : {std::pair{"https://proxy.corp:3128", "http://"}, {"socks5://proxy:1080", "http://"},
                                 {"http://:3128", "host"}, {"http://proxy:0", "port"}, {"http://proxy:99999", "port"},
                                 {"http://proxy:x", "port"}}) {
    auto parsed = parse_proxy_url(url);
    ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << url;
    EXPECT_TRUE(Mentions(std::get<std::string>(parsed), why)) << url;
  }
}

TEST(NoProxy, MatchesNamesSuffixesAndStar) {
  EXPECT_TRUE(no_proxy_matches("*", "app.kosli.com"));
  EXPECT_TRUE(no_proxy_matches("app.kosli.com", "app.kosli.com"));
  EXPECT_TRUE(no_proxy_matches("kosli.com", "app.kosli.com"));
  EXPECT_TRUE(no_proxy_matches(".kosli.com", "app.kosli.com"));
  EXPECT_TRUE(no_proxy_matches("*.kosli.com", "app.us.kosli.com"));
  EXPECT_TRUE(no_proxy_matches(" example.com , APP.KOSLI.COM ", "app.kosli.com"));
  EXPECT_TRUE(no_proxy_matches("127.0.0.1", "127.0.0.1"));
  EXPECT_TRUE(no_proxy_matches("[::1]", "::1"));
  EXPECT_FALSE(no_proxy_matches("", "app.kosli.com"));
  EXPECT_FALSE(no_proxy_matches("osli.com", "app.kosli.com")) << "a suffix matches at a dot only";
  EXPECT_FALSE(no_proxy_matches("example.com", "app.kosli.com"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", "127.0.0.10"));
}

}  // namespace
}  // namespace kosli::daemon
