#include "tests/integration/harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

#include "client/c_strings.hpp"
#include "proto/limits.hpp"
#include "tests/integration/raw_http.hpp"

extern char** environ;

namespace kosli::test {
namespace {

namespace fs = std::filesystem;
using client::c_strings;

std::vector<std::string> merged_environment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

const posix_spawnattr_t* child_spawn_attributes() {
  static const posix_spawnattr_t* const attributes = [] {
    std::signal(SIGPIPE, SIG_IGN);  // for this test program only
    static posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    return &attr;
  }();
  return attributes;
}

std::string bin(const std::string& name) { return std::string(KOSLI_TEST_BIN_DIR) + "/" + name; }

RunResult run(const std::vector<std::string>& argv_in, const RunOptions& options) {
  int in[2], out[2], err[2];
  check(::pipe2(in, O_CLOEXEC) == 0 && ::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0, "pipe");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);

  auto argv_strings = argv_in;
  auto env_strings = merged_environment(options.env);
  auto argv = c_strings(argv_strings);
  auto envp = c_strings(env_strings);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, child_spawn_attributes(), argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (spawned != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    return RunResult{127, {}, "spawn failed: " + std::string(std::strerror(spawned))};
  }

  // Feed stdin and drain stdout/stderr together, so no pipe fills up.
  std::string_view pending = options.input;
  int stdin_fd = in[1];
  if (pending.empty()) {
    ::close(stdin_fd);
    stdin_fd = -1;
  }
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      result.err += "\n[harness: killed after timeout]";
      break;
    }
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0},
                     {stdin_fd, POLLOUT, 0}};
    if (::poll(fds, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (stdin_fd >= 0 && fds[2].revents != 0) {
      const ssize_t n = ::write(stdin_fd, pending.data(), pending.size());
      if (n > 0) pending.remove_prefix(static_cast<std::size_t>(n));
      if (n < 0 || pending.empty()) {
        ::close(stdin_fd);
        stdin_fd = -1;
      }
    }
  }
  if (stdin_fd >= 0) ::close(stdin_fd);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = exit_code_of(status);
  return result;
}

RunResult cred(const std::string& socket, std::vector<std::string> args, const RunOptions& options) {
  args.insert(args.begin(), {bin("kosli-cred"), "--socket", socket});
  return run(args, options);
}

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "kosli-it-XXXXXX").string();
  check(::mkdtemp(templ.data()) != nullptr, "mkdtemp");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

Daemon::Daemon(const std::string& socket, std::vector<std::string> args,
               const std::vector<std::pair<std::string, std::string>>& env) {
  socket_ = socket;
  log_path_ = dir_.path() + "/kosli-credd.log";
  int ready[2];
  check(::pipe2(ready, O_CLOEXEC) == 0, "pipe");
  constexpr int kReadyFd = 3;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, ready[1], kReadyFd);

  std::vector<std::string> argv_strings = {bin("kosli-credd"), "--socket", socket, "--ready-fd",
                                           std::to_string(kReadyFd)};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  const bool state_home_given =
      std::any_of(env.begin(), env.end(), [](const auto& kv) { return kv.first == "XDG_STATE_HOME"; });
  if (std::find(args.begin(), args.end(), "--audit-log") == args.end() && !state_home_given) {
    // Never the user's own ~/.local/state when tests run outside the sandbox.
    audit_path_ = dir_.path() + "/audit.log";
    argv_strings.insert(argv_strings.end(), {"--audit-log", audit_path_});
  }
  auto env_strings = merged_environment(env);
  auto argv = c_strings(argv_strings);
  auto envp = c_strings(env_strings);
  const int spawned = ::posix_spawn(&pid_, argv[0], &actions, child_spawn_attributes(), argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(ready[1]);
  if (spawned != 0) {
    ::close(ready[0]);
    throw std::runtime_error("cannot start kosli-credd: " + std::string(std::strerror(spawned)));
  }
  // The daemon writes its readiness line once it accepts; EOF first means it gave up.
  pollfd pfd{ready[0], POLLIN, 0};
  char buf[8] = {};
  const bool readable = ::poll(&pfd, 1, 15000) == 1;
  const ssize_t n = readable ? ::read(ready[0], buf, sizeof buf - 1) : -1;
  ::close(ready[0]);
  if (n < 0 || std::string_view(buf, static_cast<std::size_t>(n)) != limits::kReadyLine) {
    stop();
    throw std::runtime_error("kosli-credd did not become ready; its log:\n" + log());
  }
}

Daemon::~Daemon() { stop(); }

int Daemon::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = exit_code_of(status);
    pid_ = -1;
    // A daemon that did not stop cleanly (a crash on the way out) says why in
    // its log, which the test's own message may not show.
    if (exit_code_ != 0) std::fprintf(stderr, "kosli-credd exited %d on SIGTERM; its log:\n%s\n", exit_code_, log().c_str());
  }
  return exit_code_;
}

std::optional<int> Daemon::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  // A pidfd becomes readable when the process exits: no polling loop.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  check(pidfd >= 0, "pidfd_open");
  pollfd pfd{pidfd, POLLIN, 0};
  int polled;
  while ((polled = ::poll(&pfd, 1, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  ::close(pidfd);
  if (polled != 1) return std::nullopt;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = exit_code_of(status);
  pid_ = -1;
  return exit_code_;
}

std::string Daemon::log() const { return read_file(log_path_); }

std::string Daemon::audit_log(const std::string& path) const {
  if (pid_ > 0) {
    RawConnection barrier(socket_);
    const bool answered = barrier.send("GET /v1/metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") &&
                          barrier.response(std::chrono::seconds(5)).has_value();
    check(answered, "GET /v1/metrics (the audit log's barrier) got no answer");
  }
  return read_file(path.empty() ? audit_path_ : path);
}

std::vector<nlohmann::json> audit_records(const std::string& log) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::size_t count_records(const std::vector<nlohmann::json>& records, const std::string& event,
                          const std::string& result) {
  std::size_t n = 0;
  for (const auto& r : records) n += r["event"] == event && r["result"] == result;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

std::string unique_key() {
  std::random_device rd;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string key = "kosli-test-key-";
  for (int i = 0; i < 32; ++i) key += kAlphabet[rd() % (sizeof kAlphabet - 1)];
  return key;
}

int listen_and_never_answer(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

std::optional<RunResult> lock_default_collection(const std::vector<std::pair<std::string, std::string>>& bus) {
  const auto alias = run({"gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path",
                          "/org/freedesktop/secrets", "--method", "org.freedesktop.Secret.Service.ReadAlias", "default"},
                         RunOptions{{}, bus});
  if (alias.exit_code != 0) return alias;
  const auto start = alias.out.find('\'') + 1;
  const std::string collection = alias.out.substr(start, alias.out.find('\'', start) - start);
  auto locked = run({"gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path",
                     "/org/freedesktop/secrets", "--method", "org.freedesktop.Secret.Service.Lock",
                     "['" + collection + "']"},
                    RunOptions{{}, bus});
  if (locked.exit_code != 0) return locked;
  return std::nullopt;
}

bool in_sandbox() {
  const char* v = std::getenv("KOSLI_TEST_SANDBOX");
  return v != nullptr && std::string(v) == "1";
}

std::vector<std::string> files_containing(const std::string& root, const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (content.find(needle) != std::string::npos) hits.push_back(it->path().string());
  }
  return hits;
}

std::vector<std::pair<std::string, std::string>> git_env(const std::string& socket, const std::string& home) {
  const std::string cred = bin("kosli-cred");
  return {{"PATH", cred.substr(0, cred.rfind('/')) + ":" + std::getenv("PATH")},
          {"KOSLI_CRED_SOCKET", socket},
          {"KOSLI_CRED_AUTOSTART", "0"},
          {"HOME", home},
          {"GIT_CONFIG_NOSYSTEM", "1"},
          {"GIT_CONFIG_GLOBAL", "/dev/null"},
          {"GIT_TERMINAL_PROMPT", "0"},
          {"GIT_ASKPASS", ""},
          {"SSH_ASKPASS", ""}};
}

}  // namespace kosli::test
