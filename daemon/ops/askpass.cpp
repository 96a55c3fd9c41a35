#include "daemon/ops/askpass.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "proto/secret.hpp"

extern char** environ;

namespace kosli::daemon {
namespace {

bool executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::optional<std::string> on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const auto dir = dirs.substr(0, colon);
    if (!dir.empty() && dir.front() == '/') {
      std::string candidate = std::string(dir) + "/" + std::string(name);
      if (executable(candidate)) return candidate;
    }
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

bool set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

// Waits for `pid` until `deadline` or until `stop_fd` is readable; its status,
// or nullopt when it still runs.
std::optional<int> wait_for(pid_t pid, std::chrono::steady_clock::time_point deadline, int stop_fd) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (pidfd >= 0) ::close(pidfd);
      return status;
    }
    if (done < 0 && errno != EINTR) break;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    // Without a pidfd (a kernel before 5.3), look again every 50 ms.
    pollfd fds[2] = {{stop_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    const int wait_ms = pidfd >= 0 ? static_cast<int>(left.count()) : std::min<int>(50, static_cast<int>(left.count()));
    const int n = ::poll(fds, pidfd >= 0 ? 2 : 1, wait_ms);
    if (n > 0 && (fds[0].revents & POLLIN) != 0) break;
  }
  if (pidfd >= 0) ::close(pidfd);
  return std::nullopt;
}

// zenity renders --text as Pango markup with --no-markup left out, and kdialog
// renders rich text when it sees a tag: for kdialog the question is sent as
// rich text whose every '<', '>' and '&' is escaped, so a command line shows as
// it is and cannot rewrite the question.
std::string as_rich_text(const std::string& text) {
  std::string out = "<qt>";
  for (const char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\n': out += "<br>"; break;
      default: out += c;
    }
  }
  return out + "</qt>";
}

// OpenSSH's ssh-agent confirm: an askpass says yes by exiting 0 with nothing,
// or "yes" (any case), on its output; a passphrase-style askpass where the user
// typed "no" and Enter exits 0 too. One trailing newline is allowed.
bool says_yes(std::string_view out) {
  if (!out.empty() && out.back() == '\n') out.remove_suffix(1);
  if (!out.empty() && out.back() == '\r') out.remove_suffix(1);
  if (out.empty()) return true;
  if (out.size() != 3) return false;
  for (std::size_t i = 0; i < 3; ++i) {
    if ((out[i] | 0x20) != "yes"[i]) return false;
  }
  return true;
}

}  // namespace

std::variant<AskpassProgram, std::string> find_askpass(const std::optional<std::string>& configured) {
  if (!set("DISPLAY") && !set("WAYLAND_DISPLAY")) {
    return std::string("kosli-credd has no display to ask on (neither DISPLAY nor WAYLAND_DISPLAY is set in its "
                       "environment; under systemd, run 'systemctl --user import-environment DISPLAY "
                       "WAYLAND_DISPLAY' and restart it)");
  }
  if (const char* env = std::getenv("KOSLI_CRED_ASKPASS"); env != nullptr && *env != '\0') {
    if (!executable(env)) return "KOSLI_CRED_ASKPASS (" + std::string(env) + ") is not an executable program";
    return AskpassProgram{env, AskpassProgram::Style::openssh};
  }
  if (configured) {
    if (!executable(*configured)) return "askpass (" + *configured + ") is not an executable program";
    return AskpassProgram{*configured, AskpassProgram::Style::openssh};
  }
  if (auto p = on_path("ssh-askpass")) return AskpassProgram{*p, AskpassProgram::Style::openssh};
  if (auto p = on_path("zenity")) return AskpassProgram{*p, AskpassProgram::Style::zenity};
  if (auto p = on_path("kdialog")) return AskpassProgram{*p, AskpassProgram::Style::kdialog};
  return std::string("no askpass program is installed (none of ssh-askpass, zenity or kdialog is on the daemon's "
                     "PATH); install one, or set KOSLI_CRED_ASKPASS or \"askpass\" in the configuration");
}

AskpassAnswer ask_through(const AskpassProgram& program, const std::string& question,
                          std::chrono::seconds timeout, int stop_fd) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> args{program.path};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "SSH_ASKPASS_PROMPT=", 19) != 0) env.emplace_back(*e);
  }
  switch (program.style) {
    case AskpassProgram::Style::openssh:
      args.push_back(question);
      env.emplace_back("SSH_ASKPASS_PROMPT=confirm");
      break;
    case AskpassProgram::Style::zenity:
      args.insert(args.end(), {"--question", "--no-markup", "--title=kosli-credd", "--text=" + question});
      break;
    case AskpassProgram::Style::kdialog:
      args.insert(args.end(), {"--title", "kosli-credd", "--yesno", as_rich_text(question)});
      break;
  }
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  // Its output comes through a pipe: what it says decides, with its exit status.
  int out[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) return AskpassAnswer::failed;
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);  // read once it has exited: what is there
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no socket, no keyring connection
  ::posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills what it started too
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, program.path.c_str(), &actions, &attr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(out[0]);
    return AskpassAnswer::failed;
  }

  if (auto status = wait_for(pid, deadline, stop_fd)) {
    // At most a few bytes are a yes; more (it may be a passphrase) is a no. Never logged.
    char said[16];
    ssize_t n = -1;
    do {
      n = ::read(out[0], said, sizeof said);
    } while (n < 0 && errno == EINTR);
    ::close(out[0]);
    const bool yes = WIFEXITED(*status) && WEXITSTATUS(*status) == 0 &&
                     says_yes(std::string_view(said, n > 0 ? static_cast<std::size_t>(n) : 0)) &&
                     static_cast<std::size_t>(std::max<ssize_t>(n, 0)) < sizeof said;
    wipe(said, sizeof said);
    return yes ? AskpassAnswer::yes : AskpassAnswer::no;
  }
  ::close(out[0]);
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return AskpassAnswer::timeout;
}

}  // namespace kosli::daemon
