#include "daemon/ops/policy.hpp"

#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/test_helpers.hpp"

namespace kosli::daemon {
namespace {

using test::Mentions;

// Every route that names a profile and reads its key or changes it.
const std::vector<Route> kKeyRoutes = {Route::token,  Route::put_profile, Route::delete_profile,
                                       Route::verify, Route::rotate,      Route::reject};
// What anyone admitted may do to any profile.
const std::vector<Route> kOpenReads = {Route::health, Route::list_profiles, Route::get_profile, Route::metrics};

Peer program(const std::string& requester, uid_t uid = ::geteuid()) {
  Peer peer{1234, uid, uid, requester, requester, 1234};
  return peer;
}

Config guarded_config() {
  Config config;
  config.path = "/home/u/.config/kosli-cred/config.json";
  config.profiles["ci"].allowed_clients = {"/usr/local/bin/kosli"};
  config.profiles["ci-loose"].rotate_every_days = 30;  // configured, but no list
  return config;
}

TEST(PolicyTest, AGuardedProfileIsGuardedOnEveryRouteThatReadsOrChangesItsKey) {
  const Policy policy(guarded_config());
  for (const Route route : kKeyRoutes) {
    EXPECT_TRUE(policy.guards(route, "ci")) << static_cast<int>(route);
    EXPECT_FALSE(policy.guards(route, "ci-loose")) << static_cast<int>(route);
    EXPECT_FALSE(policy.guards(route, "other")) << static_cast<int>(route);
    EXPECT_EQ(policy.refuse(route, "ci", program("/usr/local/bin/kosli")), std::nullopt);

    const auto refused = policy.refuse(route, "ci", program("/usr/bin/curl"));
    ASSERT_TRUE(refused) << static_cast<int>(route);
    EXPECT_TRUE(Mentions(*refused, "/usr/bin/curl"));
    EXPECT_TRUE(Mentions(*refused, "profiles.ci.allowed_clients in /home/u/.config/kosli-cred/config.json"));
    EXPECT_EQ(policy.refuse(route, "other", program("/usr/bin/curl")), std::nullopt);
  }
  // Its metadata stays readable by any program.
  for (const Route route : kOpenReads) {
    EXPECT_FALSE(policy.guards(route, "ci"));
    EXPECT_EQ(policy.refuse(route, "ci", program("/usr/bin/curl")), std::nullopt);
  }
}

TEST(PolicyTest, TheRefusalSaysWhatWasRefusedAndHowTheRequesterWasFound) {
  const Policy policy(guarded_config());
  Peer via_exec = program("/usr/bin/env");
  via_exec.requester_source = RequesterSource::client_exec;
  EXPECT_TRUE(Mentions(*policy.refuse(Route::token, "ci", via_exec),
                       "program /usr/bin/env (run by kosli-cred exec) may not have a token for profile 'ci'"));
  Peer parent = program("/usr/bin/bash");
  parent.requester_source = RequesterSource::client_parent;
  EXPECT_TRUE(Mentions(*policy.refuse(Route::put_profile, "ci", parent),
                       "program /usr/bin/bash (which ran kosli-cred) may not store profile 'ci'"));
  // A control character in a program's path is shown escaped, never raw.
  const auto odd = policy.refuse(Route::delete_profile, "ci", program("/tmp/a\nb"));
  EXPECT_TRUE(Mentions(*odd, "/tmp/a\\x0ab may not erase"));
}

TEST(PolicyTest, AnUnidentifiedRequesterIsRefusedOnlyWhereAListDecides) {
  const Policy policy(guarded_config());
  Peer unknown = program("");
  unknown.requester_pid = 77;
  const auto refused = policy.refuse(Route::token, "ci", unknown);
  ASSERT_TRUE(refused);
  EXPECT_TRUE(Mentions(*refused, "(pid 77) could not be identified"));
  EXPECT_EQ(policy.refuse(Route::token, "other", unknown), std::nullopt);
}

TEST(PolicyTest, NoListMeansNoGuard) {
  const Policy policy;  // no configuration file
  for (const Route route : kKeyRoutes) {
    EXPECT_FALSE(policy.guards(route, "ci"));
    EXPECT_EQ(policy.refuse(route, "ci", program("")), std::nullopt);
  }
}

TEST(PolicyTest, OtherUidsReadTokensOnlyByDefault) {
  const Policy policy;
  const uid_t other = ::geteuid() + 4301;
  for (const Route route : {Route::health, Route::list_profiles, Route::get_profile, Route::token, Route::metrics}) {
    EXPECT_EQ(policy.refuse(route, "ci", program("/usr/bin/kosli", other)), std::nullopt) << static_cast<int>(route);
  }
  for (const Route route : {Route::put_profile, Route::delete_profile, Route::verify, Route::rotate, Route::reject,
                            Route::lock}) {
    const auto refused = policy.refuse(route, "ci", program("/usr/bin/kosli", other));
    ASSERT_TRUE(refused) << static_cast<int>(route);
    EXPECT_TRUE(Mentions(*refused, "uid " + std::to_string(other) + " is admitted to read tokens only"));
    EXPECT_TRUE(Mentions(*refused, "\"allow_uid_access\": \"manage\""));
    // The owner is not limited.
    EXPECT_EQ(policy.refuse(route, "ci", program("/usr/bin/kosli")), std::nullopt);
  }
}

TEST(PolicyTest, OtherUidsManageWhenGrantedButAListStillDecides) {
  Config config = guarded_config();
  config.allow_uid_access = UidAccess::manage;
  const Policy policy(config);
  const uid_t other = ::geteuid() + 4301;
  for (const Route route : kKeyRoutes) {
    EXPECT_EQ(policy.refuse(route, "open", program("/usr/bin/curl", other)), std::nullopt);
    EXPECT_EQ(policy.refuse(route, "ci", program("/usr/local/bin/kosli", other)), std::nullopt);
    EXPECT_TRUE(policy.refuse(route, "ci", program("/usr/bin/curl", other)));
  }
  EXPECT_EQ(policy.refuse(Route::lock, {}, program("/usr/bin/curl", other)), std::nullopt);
}

}  // namespace
}  // namespace kosli::daemon
