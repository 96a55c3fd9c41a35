#include "daemon/ops/hook_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "proto/display.hpp"

extern char** environ;

namespace kosli::daemon {
namespace {

constexpr std::size_t kTailBytes = 4096;
constexpr std::size_t kLogLineBytes = 200;
constexpr std::size_t kKeyPiece = 16;
constexpr int kPollMs = 100;

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

std::string duration_text(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 != 0) return std::to_string(ms.count()) + " ms";
  return std::to_string(ms.count() / 1000) + " s";
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Reads what is there without blocking; closes `fd` at end of file.
void drain(int& fd, std::string& tail) {
  char buf[4096];
  while (fd >= 0) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      tail.append(buf, static_cast<std::size_t>(n));
      if (tail.size() > kTailBytes) tail.erase(0, tail.size() - kTailBytes);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno != EAGAIN) close_fd(fd);
    return;
  }
}

// Kills the hook's process group (the hook and whatever it started) and reaps the hook.
void kill_group(pid_t pid) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Adds to `actions` the closing of every descriptor above stderr in the child.
void close_the_rest(posix_spawn_file_actions_t& actions) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#else
  // Without closefrom: each descriptor open now (one closed meanwhile makes the
  // spawn fail, and the attempt is retried).
  if (DIR* fds = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(fds);
    while (const dirent* entry = ::readdir(fds)) {
      const int fd = std::atoi(entry->d_name);
      if (fd > STDERR_FILENO && fd != own) ::posix_spawn_file_actions_addclose(&actions, fd);
    }
    ::closedir(fds);
  }
#endif
}

}  // namespace

std::string_view result_name(HookResult result) {
  switch (result) {
    case HookResult::ok: return "ok";
    case HookResult::failed: return "failed";
    case HookResult::timed_out: return "timed_out";
    case HookResult::not_started: return "not_started";
    case HookResult::cancelled: return "cancelled";
  }
  return "failed";
}

std::vector<std::string> inherited_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view var(*e);
    if (var.starts_with("KOSLI_") || var.starts_with("NOTIFY_SOCKET=") || var.starts_with("LISTEN_") ||
        var.starts_with("WATCHDOG_")) {
      continue;
    }
    out.emplace_back(var);
  }
  return out;
}

std::string stderr_for_log(std::string_view tail, std::string_view key) {
  if (!key.empty()) {
    const std::size_t piece = std::min(kKeyPiece, key.size());
    for (std::size_t at = 0; at + piece <= key.size(); ++at) {
      if (tail.find(key.substr(at, piece)) != std::string_view::npos) {
        return "(not logged: it holds the key, or a piece of it)";
      }
    }
  }
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) tail.remove_suffix(1);
  if (const auto nl = tail.find_last_of('\n'); nl != std::string_view::npos) tail.remove_prefix(nl + 1);
  if (tail.size() > kLogLineBytes) tail = tail.substr(tail.size() - kLogLineBytes);
  return display_safe(tail);
}

HookExit run_hook(const HookCommand& command, std::string_view input, const std::atomic<bool>& cancel) {
  HookExit exit;
  if (command.argv.empty()) {
    exit.status = "cannot be started: no program";
    return exit;
  }
  int in[2] = {-1, -1}, err[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    exit.status = std::string("cannot be started: no pipe: ") + std::strerror(errno);
    close_fd(in[0]);
    close_fd(in[1]);
    return exit;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  // Nothing else of kosli-credd's: not its socket, its connections or its keyring's.
  close_the_rest(actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (const int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);  // kosli-credd ignores SIGPIPE; the hook must not inherit that
  }
  ::posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<char*> argv, envp;
  for (const auto& a : command.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : command.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  close_fd(in[0]);
  close_fd(err[1]);
  if (spawned != 0) {
    close_fd(in[1]);
    close_fd(err[0]);
    exit.status = std::string("cannot be started: ") + std::strerror(spawned);
    return exit;
  }
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + command.timeout;
  std::size_t written = 0;
  for (;;) {
    // Its stdin: the key, then end of file. A hook that closes it early only loses the rest.
    while (in[1] >= 0 && written < input.size()) {
      const ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
      if (n > 0) {
        written += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN) close_fd(in[1]);
        break;
      }
    }
    if (in[1] >= 0 && written == input.size()) close_fd(in[1]);

    pollfd fds[2];
    nfds_t count = 0;
    if (err[0] >= 0) fds[count++] = pollfd{err[0], POLLIN, 0};
    if (in[1] >= 0) fds[count++] = pollfd{in[1], POLLOUT, 0};
    ::poll(fds, count, kPollMs);
    drain(err[0], exit.stderr_tail);

    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      drain(err[0], exit.stderr_tail);
      exit.result = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? HookResult::ok : HookResult::failed;
      exit.status = describe(status);
      break;
    }
    const bool stopping = cancel.load();
    if (stopping || std::chrono::steady_clock::now() >= deadline) {
      kill_group(pid);
      exit.result = stopping ? HookResult::cancelled : HookResult::timed_out;
      exit.status = stopping ? "killed: kosli-credd is stopping"
                             : "killed after " + duration_text(command.timeout) + ": it did not exit in time";
      break;
    }
  }
  close_fd(in[1]);
  close_fd(err[0]);
  return exit;
}

}  // namespace kosli::daemon
