#include "proto/routes.hpp"

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "proto/limits.hpp"

namespace kosli {
namespace {

struct RouteCase {
  const char* method;
  const char* target;
  Route route;
  const char* profile;
};

// DESIGN.md's route table, with a profile name where the route takes one.
constexpr RouteCase kTable[] = {
    {"GET", "/v1/health", Route::health, ""},
    {"GET", "/v1/profiles", Route::list_profiles, ""},
    {"GET", "/v1/profiles/ci-eu.1_x", Route::get_profile, "ci-eu.1_x"},
    {"PUT", "/v1/profiles/ci-eu.1_x", Route::put_profile, "ci-eu.1_x"},
    {"DELETE", "/v1/profiles/ci-eu.1_x", Route::delete_profile, "ci-eu.1_x"},
    {"GET", "/v1/profiles/default/token", Route::token, "default"},
    {"POST", "/v1/profiles/default/verify", Route::verify, "default"},
    {"POST", "/v1/profiles/default/rotate", Route::rotate, "default"},
    {"POST", "/v1/profiles/default/reject", Route::reject, "default"},
    {"POST", "/v1/lock", Route::lock, ""},
    {"GET", "/v1/metrics", Route::metrics, ""},
};

void expect_match(const RouteResult& result, Route route, const std::string& profile,
                  const std::string& what) {
  const auto* match = std::get_if<RouteMatch>(&result);
  ASSERT_NE(match, nullptr) << what << " did not match (variant index " << result.index() << ")";
  EXPECT_EQ(match->route, route) << what;
  EXPECT_EQ(match->profile, profile) << what;
}

// The Allow list for a 405, or "" (and a failure) for any other result.
std::string allow_for(std::string_view method, std::string_view target) {
  const auto result = match_route(method, target);
  const auto* wrong = std::get_if<RouteMethodNotAllowed>(&result);
  if (wrong == nullptr) {
    ADD_FAILURE() << method << ' ' << target << ": not a 405 (variant index " << result.index()
                  << ")";
    return "";
  }
  return wrong->allow;
}

bool bad_name(std::string_view method, std::string_view target) {
  return std::holds_alternative<RouteBadName>(match_route(method, target));
}

bool not_found(std::string_view method, std::string_view target) {
  return std::holds_alternative<RouteNotFound>(match_route(method, target));
}

TEST(MatchRoute, MatchesEveryDocumentedRoute) {
  for (const auto& c : kTable) {
    expect_match(match_route(c.method, c.target), c.route, c.profile,
                 std::string(c.method) + " " + c.target);
  }
}

TEST(MatchRoute, IgnoresTheQueryString) {
  for (const auto& c : kTable) {
    const std::string target = std::string(c.target) + "?verbose=1&x=/y";
    expect_match(match_route(c.method, target), c.route, c.profile, target);
  }
}

TEST(MatchRoute, UnknownPathsAreNotFound) {
  for (const char* target :
       {"/", "", "/v1", "/v2/health", "/v1/health/", "/v1/healthz", "v1/health",
        "/v1/profiles/ci/token/extra", "/v1/profiles/ci/tokens", "/v1//health", "/V1/health"}) {
    EXPECT_TRUE(not_found("GET", target)) << target;
  }
}

TEST(MatchRoute, WrongMethodListsTheAllowedOnes) {
  EXPECT_EQ(allow_for("POST", "/v1/health"), "GET");
  EXPECT_EQ(allow_for("DELETE", "/v1/profiles"), "GET");
  EXPECT_EQ(allow_for("GET", "/v1/lock"), "POST");
  EXPECT_EQ(allow_for("POST", "/v1/profiles/ci/token"), "GET");
  EXPECT_EQ(allow_for("GET", "/v1/profiles/ci/verify"), "POST");
  EXPECT_EQ(allow_for("PUT", "/v1/profiles/ci/rotate"), "POST");
  EXPECT_EQ(allow_for("get", "/v1/health"), "GET");  // methods are case-sensitive

  const std::string allow = allow_for("POST", "/v1/profiles/ci");
  for (const char* method : {"GET", "PUT", "DELETE"}) {
    EXPECT_NE(allow.find(method), std::string::npos) << allow;
  }
  EXPECT_EQ(allow.find("POST"), std::string::npos) << allow;
}

TEST(MatchRoute, InvalidProfileNamesAreBadNames) {
  for (const std::string& name :
       std::vector<std::string>{"Bad", "a%2F..", "..", ".", "-x", "a%20b", std::string(65, 'a')}) {
    const std::string profile = "/v1/profiles/" + name;
    EXPECT_TRUE(bad_name("GET", profile)) << profile;
    EXPECT_TRUE(bad_name("PUT", profile)) << profile;
    EXPECT_TRUE(bad_name("GET", profile + "/token")) << profile;
    EXPECT_TRUE(bad_name("POST", profile + "/verify")) << profile;
  }
  // A bad name wins over a wrong method: the name is what the user must fix.
  EXPECT_TRUE(bad_name("POST", "/v1/profiles/Bad"));
  EXPECT_TRUE(bad_name("GET", "/v1/profiles/"));
}

TEST(MatchRoute, BadNameMessageExplainsTheRule) {
  const auto result = match_route("GET", "/v1/profiles/Bad/token");
  ASSERT_TRUE(std::holds_alternative<RouteBadName>(result));
  EXPECT_NE(std::get<RouteBadName>(result).message.find("profile name"), std::string::npos);
}

TEST(RouteTarget, BuildsThePathsTheMatcherAccepts) {
  for (const auto& c : kTable) {
    EXPECT_EQ(route_target(c.route, c.profile), c.target);
    expect_match(match_route(route_spec(c.route).method, route_target(c.route, c.profile)), c.route,
                 c.profile, c.target);
  }
}

TEST(RouteSpec, MethodsFollowTheTable) {
  for (const auto& c : kTable) EXPECT_EQ(route_spec(c.route).method, c.method) << c.target;
}

}  // namespace
}  // namespace kosli

namespace kosli {
namespace {

TEST(MatchRouteEmptyName, AnEmptyNameIsABadNameForEveryMethod) {
  for (const char* method : {"GET", "POST", "PATCH"}) {
    EXPECT_TRUE(std::holds_alternative<RouteBadName>(match_route(method, "/v1/profiles/"))) << method;
  }
  // Routes without a name still answer 405 to a wrong method.
  EXPECT_TRUE(std::holds_alternative<RouteMethodNotAllowed>(match_route("GET", "/v1/lock")));
}

// A token waits no longer than any request: a daemon asking a person says so
// (102 Processing) and the client then waits for the question.
TEST(RoutesTest, VerifyAndRotateWaitForKosliAndATokenLikeAnyRequest) {
  for (int r = 0; r <= static_cast<int>(Route::metrics); ++r) {
    const auto route = static_cast<Route>(r);
    const bool asks_kosli = route == Route::verify || route == Route::rotate;
    const auto expected = asks_kosli ? limits::kClientKosliRequestDeadline : limits::kClientRequestDeadline;
    EXPECT_EQ(route_deadline(route), expected) << route_spec(route).pattern;
  }
  EXPECT_EQ(limits::kClientRequestDeadline, std::chrono::seconds(15));
  EXPECT_EQ(limits::kClientKosliRequestDeadline, std::chrono::seconds(45));
}

}  // namespace
}  // namespace kosli
