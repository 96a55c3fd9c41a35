#include "proto/host.hpp"

#include <string>
#include <variant>

#include <gtest/gtest.h>

namespace kosli {
namespace {

// The normalised host, or "error: …" so a wrong answer prints readably.
std::string normalized(std::string_view url) {
  auto result = normalize_host(url);
  if (auto* e = std::get_if<HostError>(&result)) return "error: " + e->message;
  return std::get<std::string>(result);
}

bool refused(std::string_view url) {
  return std::holds_alternative<HostError>(normalize_host(url));
}

TEST(HostForRegion, MapsEuAndUsAndNothingElse) {
  EXPECT_EQ(host_for_region("eu"), "https://app.kosli.com");
  EXPECT_EQ(host_for_region("us"), "https://app.us.kosli.com");
  EXPECT_EQ(host_for_region("EU"), std::nullopt);
  EXPECT_EQ(host_for_region("asia"), std::nullopt);
  EXPECT_EQ(host_for_region(""), std::nullopt);
}

TEST(NormalizeHost, LowerCasesAndStripsTrailingSlashes) {
  EXPECT_EQ(normalized("https://app.kosli.com"), "https://app.kosli.com");
  EXPECT_EQ(normalized("HTTPS://App.Kosli.COM/"), "https://app.kosli.com");
  EXPECT_EQ(normalized("https://app.kosli.com//"), "https://app.kosli.com");
}

TEST(NormalizeHost, KeepsAPort) {
  EXPECT_EQ(normalized("https://kosli.example.com:8443/"), "https://kosli.example.com:8443");
  EXPECT_EQ(normalized("https://[2001:db8::1]:443"), "https://[2001:db8::1]:443");
}

TEST(NormalizeHost, AllowsPlainHttpOnlyForLoopback) {
  EXPECT_EQ(normalized("http://localhost"), "http://localhost");
  EXPECT_EQ(normalized("http://LOCALHOST:3000"), "http://localhost:3000");
  EXPECT_EQ(normalized("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  EXPECT_EQ(normalized("http://127.1.2.3"), "http://127.1.2.3");
  EXPECT_EQ(normalized("http://[::1]"), "http://[::1]");
  EXPECT_EQ(normalized("http://[::1]:8080"), "http://[::1]:8080");

  for (const char* url : {"http://app.kosli.com", "http://127.0.0.1.evil.com", "http://10.0.0.1",
                          "http://localhost.evil.com", "http://[::2]"}) {
    EXPECT_TRUE(refused(url)) << url;
  }
  EXPECT_NE(normalized("http://app.kosli.com").find("https://"), std::string::npos);
}

TEST(NormalizeHost, RefusesOtherSchemesAndBareNames) {
  for (const char* url : {"ftp://app.kosli.com", "app.kosli.com", "//app.kosli.com", "", "https://",
                          "https:/app.kosli.com"}) {
    EXPECT_TRUE(refused(url)) << url;
  }
}

TEST(NormalizeHost, RefusesAnythingButABaseUrl) {
  for (const char* url :
       {"https://app.kosli.com/api/v2", "https://app.kosli.com?org=acme",
        "https://app.kosli.com#top", "https://user@app.kosli.com", "https://user:pw@app.kosli.com",
        "https://app kosli.com", "https://app.kosli.com\n"}) {
    EXPECT_TRUE(refused(url)) << url;
  }
}

TEST(NormalizeHost, RefusesPortsOutOfRangeOrNotNumbers) {
  for (const char* url :
       {"https://app.kosli.com:0", "https://app.kosli.com:70000", "https://app.kosli.com:65536",
        "https://app.kosli.com:http", "https://app.kosli.com:", "https://app.kosli.com:-1",
        "https://app.kosli.com:123456"}) {
    EXPECT_TRUE(refused(url)) << url;
  }
  EXPECT_EQ(normalized("https://app.kosli.com:65535"), "https://app.kosli.com:65535");
}

TEST(HostAuthority, IsTheHostAndPortWithoutTheScheme) {
  EXPECT_EQ(host_authority("https://app.kosli.com"), "app.kosli.com");
  EXPECT_EQ(host_authority("https://app.kosli.com:8443"), "app.kosli.com:8443");
  EXPECT_EQ(host_authority("http://[::1]:8080"), "[::1]:8080");
}

}  // namespace
}  // namespace kosli

namespace kosli {
namespace {

TEST(NormalizeHostStrictness, RefusesMalformedNamesAndNormalisesPorts) {
  for (const char* bad : {"https://[a b]", "https://[evil.com]", "https://app..kosli.com", "https://.",
                          "https://-", "https://app.kosli.com.", "https://-app.kosli.com", "https://app-.kosli.com"}) {
    EXPECT_TRUE(std::holds_alternative<HostError>(normalize_host(bad))) << bad;
  }
  const auto port = normalize_host("https://app.kosli.com:0443");
  ASSERT_TRUE(std::holds_alternative<std::string>(port));
  EXPECT_EQ(std::get<std::string>(port), "https://app.kosli.com:443");
  EXPECT_TRUE(std::holds_alternative<std::string>(normalize_host("https://[2001:db8::1]:8443")));
}

}  // namespace
}  // namespace kosli
