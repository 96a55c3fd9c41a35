// The pieces of a rotation hook that need no daemon: what of its stderr may be
// logged, the environment it inherits, its configuration, and how its state
// travels in the health answer.
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/ops/hook_config.hpp"
#include "daemon/ops/hook_process.hpp"
#include "proto/answers.hpp"

namespace kosli::daemon {
namespace {

const std::string kKey = "kosli-test-key-0123456789abcdefghijklmnopqrstuvwxyz";

TEST(HookStderr, OnlyTheLastLineIsLoggedEscapedAndCut) {
  EXPECT_EQ(stderr_for_log("first\nsecond line\n\n", kKey), "second line");
  EXPECT_EQ(stderr_for_log("", kKey), "");
  EXPECT_EQ(stderr_for_log("bell\a", kKey), "bell\\x07");
  EXPECT_EQ(stderr_for_log(std::string(500, 'x'), kKey).size(), 200u);
}

TEST(HookStderr, ATailHoldingTheKeyOrAPieceOfItIsNotLogged) {
  const std::string note = "(not logged: it holds the key, or a piece of it)";
  EXPECT_EQ(stderr_for_log("published " + kKey + "\nok\n", kKey), note) << "the key on an earlier line";
  EXPECT_EQ(stderr_for_log("cut: " + kKey.substr(10, 16) + "\n", kKey), note) << "16 bytes of it";
  EXPECT_EQ(stderr_for_log("cut: " + kKey.substr(10, 15) + "\n", kKey), "cut: " + kKey.substr(10, 15));
}

TEST(HookEnvironment, NoKosliOrSystemdVariableIsInherited) {
  ::setenv("KOSLI_API_TOKEN", kKey.c_str(), 1);
  ::setenv("NOTIFY_SOCKET", "/run/notify", 1);
  ::setenv("HOOK_TEST_KEEP", "yes", 1);
  const auto env = inherited_environment();
  ::unsetenv("KOSLI_API_TOKEN");
  ::unsetenv("NOTIFY_SOCKET");
  bool kept = false;
  for (const auto& var : env) {
    EXPECT_FALSE(var.starts_with("KOSLI_")) << var;
    EXPECT_FALSE(var.starts_with("NOTIFY_SOCKET=")) << var;
    kept = kept || var == "HOOK_TEST_KEEP=yes";
  }
  ::unsetenv("HOOK_TEST_KEEP");
  EXPECT_TRUE(kept);
}

TEST(HookConfig, AnArgumentListStartingWithAnAbsoluteProgram) {
  std::vector<std::string> argv;
  EXPECT_FALSE(read_hook_command(nlohmann::json{"/usr/bin/vault", "kv", "put", "x", "k=-"}, argv));
  EXPECT_EQ(argv.size(), 5u);
  for (const auto& bad : {nlohmann::json("/bin/true"), nlohmann::json::array(), nlohmann::json{"true"},
                          nlohmann::json{"/bin/x", 2}, nlohmann::json{std::string("/bin/x\0y", 8)}}) {
    std::vector<std::string> out;
    EXPECT_TRUE(read_hook_command(bad, out)) << bad;
    EXPECT_TRUE(out.empty());
  }
}

TEST(HookHealth, TheStateTravelsAndIsLeftOutWithoutHooks) {
  HealthAnswer health;
  EXPECT_FALSE(to_json(health).contains("rotate_hooks"));
  health.rotate_hooks.push_back(RotateHookState{"ci", "sha256:ab", "failed", 1700000000, 2, "exited with status 3",
                                                1700000060, false});
  health.rotate_hooks.push_back(RotateHookState{"idle", {}, {}, 0, 0, {}, 0, false});
  const auto j = to_json(health);
  EXPECT_EQ(j["rotate_hooks"][0]["last_run_at"], "2023-11-14T22:13:20Z");
  EXPECT_TRUE(j["rotate_hooks"][1]["result"].is_null());
  const auto read = health_from_json(j);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->rotate_hooks.size(), 2u);
  const auto& r = read->rotate_hooks[0];
  EXPECT_EQ(r.profile, "ci");
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.last_error, "exited with status 3");
  EXPECT_EQ(r.next_attempt_at, 1700000060);
  EXPECT_FALSE(r.gave_up);
}

}  // namespace
}  // namespace kosli::daemon
