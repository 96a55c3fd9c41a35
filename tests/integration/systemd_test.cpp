// kosli-credd under systemd: socket activation, sd_notify readiness and
// stopping, its socket removed on SIGTERM.
#include "tests/integration/run_fixture.hpp"

namespace kosli::test {
namespace {

class SystemdTest : public RunTest {};

TEST_F(SystemdTest, SocketActivationThroughSystemdSocketActivate) {
  if (!have("systemd-socket-activate")) GTEST_SKIP() << "needs systemd-socket-activate (package systemd)";
  NotifySocket notify("@kosli-it-notify-" + random_suffix());
  ASSERT_TRUE(notify.bound());
  ASSERT_EQ(::mkdir((dir_.path() + "/kosli-cred").c_str(), 0700), 0);  // DirectoryMode=0700

  // It listens, and on the first connection execs kosli-credd in its own place:
  // LISTEN_PID is then the daemon's pid.
  Child activator({"systemd-socket-activate", "--listen=" + socket(), "--setenv=NOTIFY_SOCKET=" + notify.name(),
                   bin("kosli-credd"), "--backend", "memory", "--audit-log", dir_.path() + "/audit.log"},
                  /*pipe_stderr=*/true);
  ASSERT_GT(activator.pid(), 0);
  ASSERT_TRUE(activator.read_stderr_until("Listening on", kStepDeadline)) << activator.drain_stderr();

  const auto status = cred(socket(), {"status", "--json"}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
  ASSERT_EQ(status.exit_code, 0) << status.err << activator.drain_stderr();
  EXPECT_EQ(json::parse(status.out)["backend"], "memory");
  EXPECT_EQ(serving_pid(socket()), activator.pid()) << "kosli-credd did not take systemd's socket";
  const auto ready = notify.receive(kStepDeadline);
  ASSERT_TRUE(ready.has_value()) << activator.drain_stderr();
  EXPECT_TRUE(contains_line(*ready, "READY=1")) << *ready;

  ASSERT_EQ(::kill(activator.pid(), SIGTERM), 0);
  EXPECT_EQ(activator.wait(), 0);
  const auto stopping = notify.receive(kStepDeadline);
  EXPECT_EQ(stopping.value_or("(nothing)"), "STOPPING=1");
  // The socket belongs to the .socket unit: the daemon never removes it.
  EXPECT_TRUE(fs::exists(socket()));
  EXPECT_NE(activator.drain_stderr().find("socket from systemd"), std::string::npos);
}

TEST_F(SystemdTest, NotifiesReadyAndStoppingAndRemovesItsSocketOnSigterm) {
  NotifySocket notify(dir_.path() + "/notify");
  ASSERT_TRUE(notify.bound());
  Daemon daemon(socket(), {"--backend", "memory"}, {{"NOTIFY_SOCKET", notify.name()}});
  // READY=1 goes out before the --ready-fd line the harness waited for.
  const auto ready = notify.receive(milliseconds(0));
  ASSERT_TRUE(ready.has_value());
  EXPECT_TRUE(contains_line(*ready, "READY=1")) << *ready;
  EXPECT_NE(ready->find("STATUS=Serving " + socket()), std::string::npos) << *ready;

  EXPECT_EQ(daemon.stop(), 0);
  EXPECT_EQ(notify.receive(kStepDeadline).value_or("(nothing)"), "STOPPING=1");
  EXPECT_FALSE(fs::exists(socket())) << "SIGTERM left the socket behind";
  EXPECT_TRUE(fs::is_directory(dir_.path() + "/kosli-cred"));
}

}  // namespace
}  // namespace kosli::test
