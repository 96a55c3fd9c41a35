// kosli-credd without systemd: started on demand by the client (and a failed
// start in one sentence), and its idle exit, which waits for connections and
// for keys it would lose.
#include "tests/integration/run_fixture.hpp"

namespace kosli::test {
namespace {

class OnDemandTest : public RunTest {};

TEST_F(OnDemandTest, BareListStartsTheDaemonOnDemandAndStatusNeverDoes) {
  const std::string runtime = dir_.path() + "/run", state = dir_.path() + "/state";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  RunOptions env{"",
                 {{"XDG_RUNTIME_DIR", runtime},
                  {"XDG_STATE_HOME", state},
                  {"XDG_CONFIG_HOME", dir_.path() + "/config"},
                  {"KOSLI_CRED_SOCKET", ""},
                  {"KOSLI_CREDD", ""},
                  {"KOSLI_CRED_AUTOSTART", "1"}}};
  // Outside scripts/test's sandbox, keep the daemon away from the user's keyring.
  if (!in_sandbox()) env.env.emplace_back("DBUS_SESSION_BUS_ADDRESS", "");
  const std::string expected_socket = runtime + "/kosli-cred/sock";
  ASSERT_EQ(serving_pid(expected_socket), -1);

  // status reports: with no daemon, it says so and starts none.
  const auto none = run({bin("kosli-cred"), "status"}, env);
  StopOnExit stop_wrong(serving_pid(expected_socket));  // (one started by mistake goes too)
  EXPECT_EQ(none.exit_code, 4) << none.err;
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err.rfind("kosli-cred: kosli-credd is not running; ", 0), 0) << none.err;
  EXPECT_EQ(serving_pid(expected_socket), -1) << "status started a daemon";
  EXPECT_EQ(run({bin("kosli-cred"), "status", "--json"}, env).exit_code, 4);
  StopOnExit stop_wrong_again(serving_pid(expected_socket));
  EXPECT_EQ(serving_pid(expected_socket), -1) << "status --json started a daemon";

  const auto list = run({bin("kosli-cred"), "list"}, env);
  const pid_t pid = serving_pid(expected_socket);
  StopOnExit stop_it(pid);  // whatever the assertions say, the daemon goes
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out, "No profiles. Store one with: kosli-cred store --org ORG < key-file\n");
  ASSERT_GT(pid, 0);
  const auto status = run({bin("kosli-cred"), "status"}, env);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("serving " + expected_socket), std::string::npos) << status.out;

  // Detached: not our child, not in our session, with an idle timeout.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string skip, ppid;
  stat >> skip >> skip >> skip >> ppid;
  EXPECT_NE(ppid, std::to_string(::getpid()));
  EXPECT_NE(::getsid(pid), ::getsid(0));
  std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  EXPECT_NE(cmdline.find("--idle-exit 600"), std::string::npos) << cmdline;
  EXPECT_NE(read_file(state + "/kosli-cred/kosli-credd.log").find("serving " + expected_socket), std::string::npos);

  // The next command finds the same daemon.
  EXPECT_EQ(run({bin("kosli-cred"), "status"}, env).exit_code, 0);
  EXPECT_EQ(serving_pid(expected_socket), pid);
  EXPECT_TRUE(stop_it.stop()) << "it did not stop on SIGTERM";
  EXPECT_FALSE(fs::exists(expected_socket));

  // `token`, which bin/kosli-cred serves without the full command line, starts
  // it too: the daemon answers that there is no profile yet.
  const auto token = run({bin("kosli-cred"), "token"}, env);
  StopOnExit stop_again(serving_pid(expected_socket));
  EXPECT_EQ(token.exit_code, 3) << token.err;
  EXPECT_NE(token.err.find("no profile named 'default'"), std::string::npos) << token.err;
  EXPECT_TRUE(stop_again.stop());
}

TEST_F(OnDemandTest, OnDemandStartThatFailsExitsFourWithOneSentence) {
  const auto missing = cred(socket(), {"list"},
                            RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "1"}, {"KOSLI_CREDD", dir_.path() + "/nothing"}}});
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("could not be started"), std::string::npos) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;

  // The daemon starts but cannot serve there: the client passes on its reason.
  const auto refused = cred(dir_.path() + "/no/such/dir/sock", {"list"},
                            RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "1"},
                                            {"KOSLI_CREDD", bin("kosli-credd")},
                                            {"XDG_STATE_HOME", dir_.path() + "/state"}}});
  EXPECT_EQ(refused.exit_code, 4);
  EXPECT_NE(refused.err.find("cannot create the socket directory"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
}

TEST_F(OnDemandTest, IdleExitWaitsForConnectionsAndKeysItWouldLose) {
  Daemon daemon(socket(), {"--backend", "memory", "--idle-exit", std::to_string(kIdleExitSeconds)});
  // An open connection keeps it.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket().c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(daemon.wait_exit(kStillRunningWindow), std::nullopt) << "exited with a connection open";
  // So does a key the memory backend holds: exiting would lose it. (Stored
  // before the connection closes, so the daemon is never idle in between.)
  ASSERT_EQ(store("it-idle", unique_key()).exit_code, 0);
  ::close(fd);
  EXPECT_EQ(daemon.wait_exit(kStillRunningWindow), std::nullopt) << "exited holding a key only it had";

  ASSERT_EQ(cred(socket(), {"erase", "--profile", "it-idle"}).exit_code, 0);
  EXPECT_EQ(daemon.wait_exit(kStepDeadline), 0) << daemon.log();
  EXPECT_FALSE(fs::exists(socket()));
  EXPECT_NE(daemon.log().find("--idle-exit"), std::string::npos) << daemon.log();
}

TEST_F(OnDemandTest, IdleExitWaitsUntilNoKeyIsCached) {
  if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
  Daemon daemon(socket(), {"--backend", "secret-service", "--idle-exit", std::to_string(kIdleExitSeconds)});
  ASSERT_EQ(store("it-idle-cached", unique_key()).exit_code, 0);  // stored, and cached
  EXPECT_EQ(daemon.wait_exit(kStillRunningWindow), std::nullopt) << "exited with a key cached";
  ASSERT_EQ(cred(socket(), {"erase", "--profile", "it-idle-cached"}).exit_code, 0);  // forgets the cached copy
  EXPECT_EQ(daemon.wait_exit(kStepDeadline), 0) << daemon.log();
}

}  // namespace
}  // namespace kosli::test
