#include "client/autostart.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "client/c_strings.hpp"
#include "client/process.hpp"
#include "proto/limits.hpp"

extern char** environ;

namespace kosli::client {
namespace {

// The descriptor the daemon writes its readiness line to (its --ready-fd).
constexpr int kReadyFd = 3;
// Descriptors are parked above this while the child rearranges 0-3.
constexpr int kParkedFdFloor = 10;
// How much of the daemon's log is searched for the reason it did not start.
constexpr std::size_t kLogTailBytes = 4096;

// Variables the daemon must not inherit: systemd's, which describe this
// process, and a key (the daemon is long-lived; its environment is not a place
// for one).
constexpr std::string_view kWithheldEnv[] = {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS",
                                             "LISTEN_FDNAMES", "KOSLI_API_TOKEN"};

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// $KOSLI_CREDD, else kosli-credd beside kosli-cred, else on PATH.
std::optional<std::string> find_credd(std::string& problem) {
  if (const char* given = std::getenv(std::string(kCreddEnv).c_str()); given != nullptr && *given != '\0') {
    if (executable(given)) return std::string(given);
    problem = std::string(kCreddEnv) + "=" + given + " is not an executable file";
    return std::nullopt;
  }
  // Where it is installed, relative to the program that runs (client/process.hpp).
  if (const auto beside = installed_credd_path(); beside && executable(*beside)) return *beside;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty() || dir.front() != '/') continue;  // never the current directory
    const std::string candidate = std::string(dir) + "/kosli-credd";
    if (executable(candidate)) return candidate;
  }
  problem = "kosli-credd was found neither beside kosli-cred nor on PATH (set " + std::string(kCreddEnv) +
            " to its path)";
  return std::nullopt;
}

// Creates every missing directory of `dir` with mode 0700.
void make_directories(const std::string& dir) {
  for (std::size_t slash = dir.find('/', 1); ; slash = dir.find('/', slash + 1)) {
    ::mkdir(dir.substr(0, slash).c_str(), 0700);
    if (slash == std::string::npos) break;
  }
}

// The log, opened for appending; /dev/null when it cannot be.
int open_log(std::string& used_path) {
  used_path = on_demand_log_path();
  if (!used_path.empty()) {
    make_directories(used_path.substr(0, used_path.rfind('/')));
    const int fd = ::open(used_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) return fd;
  }
  used_path.clear();
  return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
}

// The daemon's last error line written to the log since `from`, without its
// time stamp and level.
std::string last_error_since(const std::string& log_path, off_t from) {
  if (log_path.empty()) return {};
  const int fd = ::open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  const off_t end = ::lseek(fd, 0, SEEK_END);
  const off_t start = std::max(from, end - static_cast<off_t>(kLogTailBytes));
  std::string tail(static_cast<std::size_t>(std::max<off_t>(end - start, 0)), '\0');
  const ssize_t n = ::pread(fd, tail.data(), tail.size(), start);
  ::close(fd);
  tail.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  static constexpr std::string_view kLevel = " error ";
  const auto at = tail.rfind(kLevel);
  if (at == std::string::npos) return {};
  const auto eol = tail.find('\n', at);
  return tail.substr(at + kLevel.size(), eol == std::string::npos ? std::string::npos : eol - at - kLevel.size());
}

std::vector<std::string> daemon_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool withheld = false;
    for (const auto w : kWithheldEnv) withheld |= name == w;
    if (!withheld) env.emplace_back(entry);
  }
  return env;
}

// In the forked child: a new session, then a grandchild that becomes the
// daemon, so it is nobody's child once we return (never a zombie of whatever
// `kosli-cred exec` runs). Only async-signal-safe calls from here on.
[[noreturn]] void become_daemon(const char* path, char* const argv[], char* const envp[], int null_fd,
                                int log_fd, int ready_fd) {
  if (::setsid() < 0) ::_exit(127);
  const pid_t grandchild = ::fork();
  if (grandchild != 0) ::_exit(grandchild < 0 ? 127 : 0);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  if (::chdir("/") != 0) ::_exit(127);
  // Park the three descriptors out of the way, then put each in its place.
  const int null_high = ::fcntl(null_fd, F_DUPFD_CLOEXEC, kParkedFdFloor);
  const int log_high = ::fcntl(log_fd, F_DUPFD_CLOEXEC, kParkedFdFloor);
  const int ready_high = ::fcntl(ready_fd, F_DUPFD_CLOEXEC, kParkedFdFloor);
  if (null_high < 0 || log_high < 0 || ready_high < 0 || ::dup2(null_high, STDIN_FILENO) < 0 ||
      ::dup2(null_high, STDOUT_FILENO) < 0 || ::dup2(log_high, STDERR_FILENO) < 0 ||
      ::dup2(ready_high, kReadyFd) < 0) {
    ::_exit(127);
  }
  ::execve(path, argv, envp);
  ::_exit(127);
}

// Waits for the readiness line on `fd` until `deadline`; a sentence when it does not come.
std::optional<std::string> wait_ready(int fd, std::chrono::steady_clock::time_point deadline) {
  std::string got;
  while (got.size() < limits::kReadyLine.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return "it did not report ready within " + std::to_string(kStartDeadline.count()) + " s";
    }
    pollfd pfd{fd, POLLIN, 0};
    const int polled = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (polled < 0 && errno == EINTR) continue;
    if (polled <= 0) continue;
    char buf[4];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::string("it stopped before it was ready");
    got.append(buf, static_cast<std::size_t>(n));
  }
  if (got != limits::kReadyLine) return std::string("it sent an unexpected readiness line");
  return std::nullopt;
}

}  // namespace

bool autostart_enabled() {
  const char* value = std::getenv(std::string(kAutostartEnv).c_str());
  return value == nullptr || std::string_view(value) != "0";
}

std::string on_demand_log_path() {
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && *state == '/') {
    return std::string(state) + "/kosli-cred/kosli-credd.log";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::string(home) + "/.local/state/kosli-cred/kosli-credd.log";
  }
  return {};
}

std::optional<std::string> start_daemon(const std::string& socket_path) {
  std::string problem;
  const auto credd = find_credd(problem);
  if (!credd) return problem;

  std::string log_path;
  const int log_fd = open_log(log_path);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int ready[2] = {-1, -1};
  if (log_fd < 0 || null_fd < 0 || ::pipe2(ready, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    for (const int fd : {log_fd, null_fd, ready[0], ready[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return "cannot prepare to start kosli-credd: " + why;
  }
  const off_t log_start = log_path.empty() ? 0 : ::lseek(log_fd, 0, SEEK_END);

  std::vector<std::string> argv_strings = {*credd, "--socket", socket_path, "--ready-fd", std::to_string(kReadyFd),
                                           "--idle-exit", std::to_string(kOnDemandIdleExit.count())};
  auto env_strings = daemon_environment();
  const auto argv = c_strings(argv_strings);
  const auto envp = c_strings(env_strings);

  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  const pid_t child = ::fork();
  if (child == 0) become_daemon(argv[0], argv.data(), envp.data(), null_fd, log_fd, ready[1]);
  const int fork_errno = errno;
  ::close(ready[1]);
  ::close(log_fd);
  ::close(null_fd);
  if (child < 0) {
    ::close(ready[0]);
    return std::string("cannot start kosli-credd: ") + std::strerror(fork_errno);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  auto not_ready = wait_ready(ready[0], deadline);
  ::close(ready[0]);
  if (!not_ready) return std::nullopt;

  std::string message = *credd + " was started, but " + *not_ready;
  if (const auto error = last_error_since(log_path, log_start); !error.empty()) message += ": " + error;
  if (!log_path.empty()) message += " (its log: " + log_path + ")";
  return message;
}

}  // namespace kosli::client
