// Shared by the tests of how kosli-credd is run, as a user sees it (install,
// systemd, on-demand start and idle exit, the CI sidecar): helpers to start,
// watch and stop a daemon outside the harness, and the fixture they use.
#pragma once

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
inline std::string build_dir() { return fs::path(KOSLI_TEST_BIN_DIR).parent_path().string(); }

inline bool have(const std::string& program) {
  return run({"sh", "-c", "command -v " + program + " >/dev/null"}).exit_code == 0;
}

inline std::string random_suffix() {
  std::random_device rd;
  return std::to_string(rd()) + std::to_string(rd());
}

// The pid of whoever serves `socket`, from SO_PEERCRED; -1 when nobody does.
inline pid_t serving_pid(const std::string& socket) {
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
inline bool wait_gone(pid_t pid, milliseconds timeout) {
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
inline std::set<std::string> tree(const std::string& root) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_directory() || entry.is_symlink()) out.insert(entry.path().lexically_relative(root).string());
  }
  return out;
}

inline bool contains_line(const std::string& text, const std::string& line) {
  return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos;
}

class RunTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  RunResult store(const std::string& profile, const std::string& key) {
    return cred(socket(), {"store", "--profile", profile, "--org", "acme"}, RunOptions{key});
  }

  TempDir dir_;
};

}  // namespace kosli::test
