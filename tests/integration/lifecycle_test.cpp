// How kosli-credd is run, as a user sees it: installed files and units,
// systemd socket activation and readiness, on-demand start by the client, idle
// exit, SIGTERM, the CI sidecar (keys from the environment or a file, another
// uid allowed, exit with the job) and the .deb.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

extern char** environ;

namespace kosli::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;

// Long enough for any single step here on a loaded 2-core machine.
constexpr milliseconds kStepDeadline{10000};
// --idle-exit in the idle tests, and how long "it is still running" is watched:
// longer than the idle time plus one idle check.
constexpr int kIdleExitSeconds = 1;
constexpr milliseconds kStillRunningWindow{2500};
// The uid a job step runs as in the sidecar test, and one it does not allow.
constexpr uid_t kAllowedUid = 65534;
constexpr uid_t kOtherUid = 65533;

// The build tree: KOSLI_TEST_BIN_DIR is its bin/.
std::string build_dir() { return fs::path(KOSLI_TEST_BIN_DIR).parent_path().string(); }

bool have(const std::string& program) {
  return run({"sh", "-c", "command -v " + program + " >/dev/null"}).exit_code == 0;
}

std::string random_suffix() {
  std::random_device rd;
  return std::to_string(rd()) + std::to_string(rd());
}

// The pid of whoever serves `socket`, from SO_PEERCRED; -1 when nobody does.
pid_t serving_pid(const std::string& socket) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  ucred cred{};
  socklen_t len = sizeof cred;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
  ::close(fd);
  return ok ? cred.pid : -1;
}

// Waits until `pid` (not necessarily our child) has exited.
bool wait_gone(pid_t pid, milliseconds timeout) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;
  pollfd pfd{pidfd, POLLIN, 0};
  const bool gone = ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
  ::close(pidfd);
  return gone;
}

// Stops a daemon this test did not start itself (one started on demand).
class StopOnExit {
 public:
  explicit StopOnExit(pid_t pid) : pid_(pid) {}
  ~StopOnExit() { stop(); }
  // SIGTERM, then SIGKILL if it does not go; true when it went by SIGTERM.
  bool stop() {
    if (pid_ <= 0) return true;
    ::kill(pid_, SIGTERM);
    const bool gone = wait_gone(pid_, kStepDeadline);
    if (!gone) ::kill(pid_, SIGKILL);
    pid_ = -1;
    return gone;
  }

 private:
  pid_t pid_;
};

// A process of our own (a CI job's shell, systemd-socket-activate), killed and
// reaped on destruction; stderr optionally through a pipe we read.
class Child {
 public:
  Child(const std::vector<std::string>& argv, bool pipe_stderr) {
    int err[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (pipe_stderr && ::pipe2(err, O_CLOEXEC) == 0) {
      posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    }
    std::vector<std::string> strings = argv;
    std::vector<char*> args;
    for (auto& s : strings) args.push_back(s.data());
    args.push_back(nullptr);
    if (::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (err[1] >= 0) ::close(err[1]);
    stderr_fd_ = err[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (stderr_fd_ >= 0) ::close(stderr_fd_);
  }

  pid_t pid() const { return pid_; }

  // Reads stderr until it holds `text`; false at the deadline or EOF.
  bool read_stderr_until(const std::string& text, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (stderr_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd pfd{stderr_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) != 1) return false;
      char buf[1024];
      const ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
      if (n <= 0) return false;
      stderr_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  // Everything read from stderr so far, plus whatever is waiting in the pipe.
  std::string drain_stderr() {
    pollfd pfd{stderr_fd_, POLLIN, 0};
    char buf[1024];
    ssize_t n = 1;
    while (n > 0 && ::poll(&pfd, 1, 0) == 1 && (n = ::read(stderr_fd_, buf, sizeof buf)) > 0) {
      stderr_.append(buf, static_cast<std::size_t>(n));
    }
    return stderr_;
  }

  // Reaps it; its exit code (128 + signal when killed).
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string stderr_;
};

// A datagram socket standing in for systemd's NOTIFY_SOCKET. `name` starting
// with '@' is in the abstract namespace.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name) : name_(name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), std::min(name.size(), sizeof addr.sun_path - 1));
    if (name.front() == '@') addr.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~NotifySocket() { ::close(fd_); }
  bool bound() const { return bound_; }
  const std::string& name() const { return name_; }

  // The next datagram, or nullopt when none comes in time.
  std::optional<std::string> receive(milliseconds timeout) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

// Every file and symlink below `root`, relative to it, sorted.
std::set<std::string> tree(const std::string& root) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_directory() || entry.is_symlink()) out.insert(entry.path().lexically_relative(root).string());
  }
  return out;
}

bool contains_line(const std::string& text, const std::string& line) {
  return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos;
}

class LifecycleTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  RunResult store(const std::string& profile, const std::string& key) {
    return cred(socket(), {"store", "--profile", profile, "--org", "acme"}, RunOptions{key});
  }

  TempDir dir_;
};

// --- install and package --------------------------------------------------

TEST_F(LifecycleTest, InstallIntoDestdirPutsEachFileInItsPlace) {
  const std::string stage = dir_.path() + "/stage";
  const auto installed = run({"cmake", "--install", build_dir(), "--prefix", "/usr"},
                             RunOptions{"", {{"DESTDIR", stage}}, std::chrono::seconds(60)});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;

  EXPECT_EQ(tree(stage), (std::set<std::string>{
                             "usr/bin/kosli-credd",
                             "usr/bin/kosli-cred",
                             "usr/bin/git-credential-kosli",
                             "usr/libexec/kosli-cred/kosli-cred",
                             "usr/lib/systemd/user/kosli-credd.socket",
                             "usr/lib/systemd/user/kosli-credd.service",
                             "usr/share/man/man1/kosli-credd.1",
                             "usr/share/man/man1/kosli-cred.1",
                             "usr/share/bash-completion/completions/kosli-cred",
                         }))
      << installed.out;
  for (const char* program : {"/usr/bin/kosli-credd", "/usr/bin/kosli-cred"}) {
    EXPECT_EQ(::access((stage + program).c_str(), X_OK), 0) << program;
  }
  // The link is relative, so it works wherever the tree is unpacked.
  EXPECT_EQ(fs::read_symlink(stage + "/usr/bin/git-credential-kosli"), "kosli-cred");
  // So is the way to the full command line: the installed kosli-cred finds it.
  const auto version = run({stage + "/usr/bin/kosli-cred", "--version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out, std::string(KOSLI_TEST_VERSION) + "\n");

  const std::string socket_unit = read_file(stage + "/usr/lib/systemd/user/kosli-credd.socket");
  for (const char* line : {"ListenStream=%t/kosli-cred/sock", "SocketMode=0600", "DirectoryMode=0700",
                           "WantedBy=sockets.target"}) {
    EXPECT_TRUE(contains_line(socket_unit, line)) << line << "\n" << socket_unit;
  }
  const std::string service = read_file(stage + "/usr/lib/systemd/user/kosli-credd.service");
  for (const char* line : {"Type=notify", "ExecStart=/usr/bin/kosli-credd", "NoNewPrivileges=yes",
                           "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "RestrictRealtime=yes",
                           "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "LimitCORE=0", "UMask=0077"}) {
    EXPECT_TRUE(contains_line(service, line)) << line << "\n" << service;
  }
  EXPECT_EQ(service.find(stage), std::string::npos) << "DESTDIR leaked into the unit";

  const auto completion = run({"bash", "-c", "source \"$0\" && complete -p kosli-cred",
                               stage + "/usr/share/bash-completion/completions/kosli-cred"});
  EXPECT_EQ(completion.exit_code, 0) << completion.err;
  EXPECT_NE(completion.out.find("_kosli_cred"), std::string::npos) << completion.out;
  if (have("groff")) {
    for (const char* page : {"kosli-credd.1", "kosli-cred.1"}) {
      const auto lint = run({"groff", "-man", "-Tutf8", "-ww", "-z", stage + "/usr/share/man/man1/" + page});
      EXPECT_EQ(lint.exit_code, 0) << page;
      EXPECT_EQ(lint.err, "") << page;
    }
  }
}

// systemd-analyze verify needs ExecStart= to exist and --user has no --root:
// install to a prefix this test owns, so ExecStart= names the installed binary,
// and point MANPATH at it, so Documentation=man:… resolves too.
TEST_F(LifecycleTest, InstalledUnitsPassSystemdAnalyzeVerify) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "needs systemd-analyze (package systemd)";
  const std::string prefix = dir_.path() + "/prefix";
  const std::string runtime = dir_.path() + "/run";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  const auto installed = run({"cmake", "--install", build_dir(), "--prefix", prefix},
                             RunOptions{"", {{"DESTDIR", ""}}, std::chrono::seconds(60)});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;
  const std::string units = prefix + "/lib/systemd/user/";
  EXPECT_TRUE(contains_line(read_file(units + "kosli-credd.service"), "ExecStart=" + prefix + "/bin/kosli-credd"));

  const auto verified = run({"systemd-analyze", "verify", "--user", units + "kosli-credd.socket",
                             units + "kosli-credd.service"},
                            RunOptions{"", {{"XDG_RUNTIME_DIR", runtime}, {"MANPATH", prefix + "/share/man"}}});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_EQ(verified.err, "");
}

TEST_F(LifecycleTest, CpackBuildsADebWithTheUnitsAndItsDependencies) {
  if (!have("cpack") || !have("dpkg-deb")) GTEST_SKIP() << "needs cpack and dpkg-deb";
  const std::string out = dir_.path() + "/package";
  const auto packed = run({"cpack", "--config", build_dir() + "/CPackConfig.cmake", "-B", out},
                          RunOptions{"", {{"DESTDIR", ""}}, std::chrono::seconds(100)});
  ASSERT_EQ(packed.exit_code, 0) << packed.out << packed.err;
  std::string deb;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.path().extension() == ".deb") deb = entry.path().string();
  }
  ASSERT_FALSE(deb.empty()) << packed.out;

  const auto listing = run({"dpkg-deb", "-c", deb});
  ASSERT_EQ(listing.exit_code, 0) << listing.err;
  for (const char* path : {"./usr/lib/systemd/user/kosli-credd.socket", "./usr/lib/systemd/user/kosli-credd.service",
                           "./usr/bin/kosli-credd", "./usr/bin/kosli-cred",
                           "./usr/bin/git-credential-kosli -> kosli-cred",
                           "./usr/libexec/kosli-cred/kosli-cred",
                           "./usr/share/man/man1/kosli-credd.1",
                           "./usr/share/bash-completion/completions/kosli-cred"}) {
    EXPECT_NE(listing.out.find(path), std::string::npos) << path << "\n" << listing.out;
  }
  const std::string depends = run({"dpkg-deb", "-f", deb, "Depends"}).out;
  for (const char* package : {"libsecret-1-0", "libglib2.0-0", "libssl3"}) {
    EXPECT_NE(depends.find(package), std::string::npos) << package << " missing from: " << depends;
  }
  EXPECT_EQ(run({"dpkg-deb", "-f", deb, "Recommends"}).out, "gnome-keyring\n");
  const auto service = run({"sh", "-c", "dpkg-deb --fsys-tarfile \"$0\" | tar -xO ./usr/lib/systemd/user/kosli-credd.service", deb});
  EXPECT_TRUE(contains_line(service.out, "ExecStart=/usr/bin/kosli-credd")) << service.out << service.err;
}

// --- systemd ----------------------------------------------------------------

TEST_F(LifecycleTest, SocketActivationThroughSystemdSocketActivate) {
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

TEST_F(LifecycleTest, NotifiesReadyAndStoppingAndRemovesItsSocketOnSigterm) {
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

// --- without systemd: on-demand start and idle exit ------------------------

TEST_F(LifecycleTest, BareStatusStartsTheDaemonOnDemand) {
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

  const auto status = run({bin("kosli-cred"), "status"}, env);
  const pid_t pid = serving_pid(expected_socket);
  StopOnExit stop_it(pid);  // whatever the assertions say, the daemon goes
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("serving " + expected_socket), std::string::npos) << status.out;
  ASSERT_GT(pid, 0);

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

TEST_F(LifecycleTest, OnDemandStartThatFailsExitsFourWithOneSentence) {
  const auto missing = cred(socket(), {"status"},
                            RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "1"}, {"KOSLI_CREDD", dir_.path() + "/nothing"}}});
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("could not be started"), std::string::npos) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;

  // The daemon starts but cannot serve there: the client passes on its reason.
  const auto refused = cred(dir_.path() + "/no/such/dir/sock", {"status"},
                            RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "1"},
                                            {"KOSLI_CREDD", bin("kosli-credd")},
                                            {"XDG_STATE_HOME", dir_.path() + "/state"}}});
  EXPECT_EQ(refused.exit_code, 4);
  EXPECT_NE(refused.err.find("cannot create the socket directory"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
}

TEST_F(LifecycleTest, IdleExitWaitsForConnectionsAndKeysItWouldLose) {
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

TEST_F(LifecycleTest, IdleExitWaitsUntilNoKeyIsCached) {
  if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
  Daemon daemon(socket(), {"--backend", "secret-service", "--idle-exit", std::to_string(kIdleExitSeconds)});
  ASSERT_EQ(store("it-idle-cached", unique_key()).exit_code, 0);  // stored, and cached
  EXPECT_EQ(daemon.wait_exit(kStillRunningWindow), std::nullopt) << "exited with a key cached";
  ASSERT_EQ(cred(socket(), {"erase", "--profile", "it-idle-cached"}).exit_code, 0);  // forgets the cached copy
  EXPECT_EQ(daemon.wait_exit(kStepDeadline), 0) << daemon.log();
}

// --- CI sidecar ---------------------------------------------------------------

TEST_F(LifecycleTest, SidecarServesTheEnvironmentsKeyToAnAllowedUidUntilTheJobEnds) {
  Child job({"sleep", "300"}, /*pipe_stderr=*/false);  // stands in for the CI job's shell
  ASSERT_GT(job.pid(), 0);
  // Job steps running as another uid must reach the socket through the test's directory.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  const std::string key = unique_key();
  Daemon sidecar(socket(),
                 {"--backend", "memory", "--import-env", "--allow-uid", std::to_string(kAllowedUid), "--parent-pid",
                  std::to_string(job.pid())},
                 {{"KOSLI_API_TOKEN", key + "\n"}, {"KOSLI_ORG", "acme"}, {"KOSLI_HOST", "https://app.us.kosli.com/"}});

  const auto token = cred(socket(), {"token", "--json"});
  ASSERT_EQ(token.exit_code, 0) << token.err << sidecar.log();
  const auto j = json::parse(token.out);
  EXPECT_EQ(j["token"], key);
  EXPECT_EQ(j["org"], "acme");
  EXPECT_EQ(j["host"], "https://app.us.kosli.com");
  EXPECT_EQ(sidecar.log().find(key), std::string::npos) << "the daemon logged the key";

  // Its environment no longer holds the key, nor the variables that carried it.
  const std::string environ_path = "/proc/" + std::to_string(sidecar.pid()) + "/environ";
  if (::access(environ_path.c_str(), R_OK) == 0) {
    const std::string env = read_file(environ_path);
    EXPECT_FALSE(env.empty());
    EXPECT_EQ(env.find(key), std::string::npos) << "the key is still in " << environ_path;
    for (const char* name : {"KOSLI_API_TOKEN=", "KOSLI_ORG=", "KOSLI_HOST="}) {
      EXPECT_EQ(env.find(name), std::string::npos) << name;
    }
  } else {
    ADD_FAILURE() << "cannot read " << environ_path << " (the daemon is not dumpable; run as root)";
  }

  // Others may reach the socket; SO_PEERCRED decides who is served.
  struct stat dir {}, sock {};
  ASSERT_EQ(::stat((dir_.path() + "/kosli-cred").c_str(), &dir), 0);
  ASSERT_EQ(::stat(socket().c_str(), &sock), 0);
  EXPECT_EQ(dir.st_mode & 07777, 0711u);
  EXPECT_EQ(sock.st_mode & 0777, 0666u);
  if (::geteuid() == 0 && have("setpriv")) {
    const auto as = [&](uid_t uid) {
      return run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid), "--clear-groups",
                  bin("kosli-cred"), "--socket", socket(), "token"},
                 RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}, {"KOSLI_CRED_DAEMON_UID", "0"}}});  // root's sidecar
    };
    const auto allowed = as(kAllowedUid);
    EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
    EXPECT_EQ(allowed.out, key + "\n");
    const auto other = as(kOtherUid);
    EXPECT_EQ(other.exit_code, 5) << other.err;
    EXPECT_EQ(other.out.find(key), std::string::npos);
  } else {
    std::cerr << "[ skipped  ] another uid: needs root and setpriv\n";
  }

  // The job ends: so does the sidecar, with its socket.
  ::kill(job.pid(), SIGKILL);
  job.wait();
  EXPECT_EQ(sidecar.wait_exit(kStepDeadline), 0) << sidecar.log();
  EXPECT_FALSE(fs::exists(socket()));
  EXPECT_NE(sidecar.log().find("--parent-pid"), std::string::npos) << sidecar.log();
}

TEST_F(LifecycleTest, ImportReadsAListOfProfilesAndRefusesABadOneWithoutShowingKeys) {
  const std::string eu_key = unique_key(), us_key = unique_key();
  const std::string file = dir_.path() + "/profiles.json";
  {
    std::ofstream out(file);
    out << json::array({{{"name", "ci-eu"}, {"org", "acme"}, {"api_key", eu_key}},
                        {{"name", "ci-us"}, {"org", "acme-us"}, {"api_key", us_key},
                         {"host", "https://app.us.kosli.com"}, {"kind", "personal"},
                         {"expires_at", "2031-01-02T03:04:05Z"}}})
               .dump();
  }
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  {
    Daemon daemon(socket(), {"--backend", "memory", "--import", file});
    EXPECT_EQ(cred(socket(), {"token", "--profile", "ci-eu"}).out, eu_key + "\n");
    EXPECT_EQ(cred(socket(), {"token", "--profile", "ci-us"}).out, us_key + "\n");
    const auto shown = json::parse(cred(socket(), {"show", "--profile", "ci-us", "--json"}).out);
    EXPECT_EQ(shown["host"], "https://app.us.kosli.com");
    EXPECT_EQ(shown["kind"], "personal");
    EXPECT_EQ(shown["expires_at"], "2031-01-02T03:04:05Z");
    EXPECT_EQ(json::parse(cred(socket(), {"show", "--profile", "ci-eu", "--json"}).out)["host"],
              "https://app.kosli.com");
    // The audit log says who put each key in, and from where, in the daemon's own name.
    const std::string log = daemon.audit_log();
    const auto records = audit_records(log);
    EXPECT_EQ(count_records(records, "import", "ok"), 2u) << log;
    for (const auto& r : records) {
      if (r["event"] != "import") continue;
      EXPECT_EQ(r["pid"], daemon.pid());
      EXPECT_NE(r["detail"].get<std::string>().find("from " + file), std::string::npos) << r;
    }
    for (const auto& key : {eu_key, us_key}) EXPECT_EQ(log.find(key), std::string::npos) << "the audit log holds a key";
  }

  // From stdin; the second profile is wrong: nothing is served, the message
  // names it, and no key appears.
  const std::string bad = json::array({{{"name", "ok"}, {"org", "acme"}, {"api_key", eu_key}},
                                       {{"name", "bad"}, {"org", "acme"}, {"api_key", us_key}, {"colour", "red"}}})
                              .dump();
  const auto refused = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--audit-log",
                            dir_.path() + "/audit.log", "--import", "-"},
                           RunOptions{bad});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("profile 2 ('bad')"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("colour"), std::string::npos) << refused.err;
  for (const auto& key : {eu_key, us_key}) EXPECT_EQ(refused.err.find(key), std::string::npos);
  const std::string refusals = read_file(dir_.path() + "/audit.log");
  EXPECT_EQ(count_records(audit_records(refusals), "import", "refused"), 1u) << refusals;
  for (const auto& key : {eu_key, us_key}) EXPECT_EQ(refusals.find(key), std::string::npos);

  const auto no_token = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--audit-log",
                             dir_.path() + "/audit.log", "--import-env"},
                            RunOptions{"", {{"KOSLI_API_TOKEN", ""}, {"KOSLI_ORG", "acme"}}});
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_NE(no_token.err.find("KOSLI_API_TOKEN is not set"), std::string::npos) << no_token.err;
}

}  // namespace
}  // namespace kosli::test
