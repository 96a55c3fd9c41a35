// doctor's checks of what lies outside the daemon: the configuration (through
// kosli-credd --check-config, the daemon's own parser), the systemd user units
// (through systemctl --user) and git's credential helpers for Kosli hosts
// (through the real git's configuration, in git's order).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/c_strings.hpp"
#include "client/doctor.hpp"
#include "client/git_setup.hpp"
#include "client/process.hpp"
#include "proto/display.hpp"

extern char** environ;

namespace kosli::client {
namespace {

using Status = DoctorCheck::Status;

struct Ran {
  int exit_code = -1;  // -1: could not be started
  std::string out;     // stdout, and stderr after it when `with_stderr`
};

// Runs `argv` (found on PATH) with stdin from /dev/null and reads what it prints.
Ran run_program(std::vector<std::string> argv, bool with_stderr) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  if (with_stderr) {
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  auto c_argv = c_strings(argv);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, c_argv[0], &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  Ran ran;
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    return ran;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      ran.out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return ran;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

bool on_path(const char* program) {
  return run_program({"sh", "-c", std::string("command -v ") + program + " >/dev/null"}, false).exit_code == 0;
}

// `systemctl --user ARGS…`: its first line of output.
std::string systemctl(std::vector<std::string> args) {
  args.insert(args.begin(), {"systemctl", "--user"});
  auto out = run_program(std::move(args), false).out;
  return trimmed(out.substr(0, out.find('\n')));
}

// --- git ---------------------------------------------------------------------

bool lower_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// The host of `url` ("https://user@host:443/path" gives "host:443"), lower case.
std::string authority_of(std::string_view url) {
  const auto sep = url.find("://");
  std::string_view rest = sep == std::string_view::npos ? url : url.substr(sep + 3);
  rest = rest.substr(0, rest.find('/'));
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  std::string out(rest);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whether a host pattern of git's configuration (labels may be "*") names `host`.
bool host_matches(std::string_view pattern, std::string_view host) {
  while (true) {
    const auto pd = pattern.find('.'), hd = host.find('.');
    const auto pl = pattern.substr(0, pd), hl = host.substr(0, hd);
    if (pl != "*" && pl != hl) return false;
    if (pd == std::string_view::npos || hd == std::string_view::npos) return pd == hd;
    pattern.remove_prefix(pd + 1);
    host.remove_prefix(hd + 1);
  }
}

// Whether `credential.<pattern>.helper` applies to `url` (scheme://authority),
// as git's URL matching has it: no pattern matches every URL; else the same
// scheme, host (a label may be "*") and port (https's 443 when none is given).
// Any path counts: some path on that host would match.
bool url_matches(std::string_view pattern, std::string_view url) {
  if (pattern.empty()) return true;
  const auto psep = pattern.find("://"), usep = url.find("://");
  if (psep == std::string_view::npos || usep == std::string_view::npos) return false;
  if (!lower_equal(pattern.substr(0, psep), url.substr(0, usep))) return false;
  const auto with_port = [&](std::string a) { return a.find(':') == std::string::npos ? a + ":443" : a; };
  const std::string p = with_port(authority_of(pattern)), u = with_port(authority_of(url));
  const auto pc = p.rfind(':'), uc = u.rfind(':');
  return p.substr(pc) == u.substr(uc) && host_matches(std::string_view(p).substr(0, pc), std::string_view(u).substr(0, uc));
}

bool is_kosli_helper(std::string_view helper) {
  return helper == "kosli" || helper.find("git-credential-kosli") != std::string_view::npos;
}

struct HelperEntry {
  std::string scope;  // "system", "global", "local", "worktree", "command"
  std::string key;
  std::string value;
};

// Every credential.*helper entry of git's configuration, in the order git reads them.
std::optional<std::vector<HelperEntry>> helper_entries() {
  const auto ran = run_program({"git", "config", "--show-scope", "--null", "--get-regexp", "^credential\\..*helper$"}, false);
  if (ran.exit_code != 0 && ran.exit_code != 1) return std::nullopt;  // 1: none
  std::vector<HelperEntry> entries;
  std::size_t at = 0;
  while (at < ran.out.size()) {
    const auto scope_end = ran.out.find('\0', at);
    if (scope_end == std::string::npos) break;
    const auto entry_end = ran.out.find('\0', scope_end + 1);
    if (entry_end == std::string::npos) break;
    const std::string entry = ran.out.substr(scope_end + 1, entry_end - scope_end - 1);
    const auto nl = entry.find('\n');
    entries.push_back({ran.out.substr(at, scope_end - at), entry.substr(0, nl),
                       nl == std::string::npos ? std::string() : entry.substr(nl + 1)});
    at = entry_end + 1;
  }
  return entries;
}

}  // namespace

bool systemd_user_answers() {
  return on_path("systemctl") && run_program({"systemctl", "--user", "show-environment"}, false).exit_code == 0;
}

std::vector<DoctorCheck> systemd_checks(const std::string& socket_path) {
  if (!on_path("systemctl")) {
    return {{"systemd", Status::skip, "no systemctl here: kosli-cred starts kosli-credd on demand", ""}};
  }
  if (!systemd_user_answers()) {
    return {{"systemd", Status::skip,
             "systemctl --user does not answer (no user systemd in this session): kosli-cred starts kosli-credd on demand",
             ""}};
  }
  const std::string enabled = systemctl({"is-enabled", "kosli-credd.socket"});
  if (enabled.empty() || enabled == "not-found") {
    return {{"systemd", Status::skip, "kosli-credd.socket is not installed: kosli-cred starts kosli-credd on demand",
             ""}};
  }
  std::vector<DoctorCheck> checks;
  if (enabled != "enabled") {
    checks.push_back({"systemd", Status::warn, "kosli-credd.socket is " + display_safe(enabled) + ", not enabled",
                      "systemctl --user enable --now kosli-credd.socket"});
  }
  const std::string active = systemctl({"is-active", "kosli-credd.socket"});
  if (active != "active") {
    checks.push_back({"systemd", Status::fail, "kosli-credd.socket is " + display_safe(active) + ": nothing listens",
                      "systemctl --user restart kosli-credd.socket"});
    return checks;
  }
  const std::string listen = systemctl({"show", "--property=Listen", "--value", "kosli-credd.socket"});
  if (listen.find(socket_path) == std::string::npos) {
    checks.push_back({"systemd", Status::warn,
                      "kosli-credd.socket listens on " + display_safe(listen) + ", but kosli-cred talks to " +
                          display_safe(socket_path),
                      "unset KOSLI_CRED_SOCKET (or give --socket the path systemd listens on)"});
  }
  const std::string service = systemctl({"is-active", "kosli-credd.service"});
  if (service == "failed") {
    checks.push_back({"systemd", Status::fail, "kosli-credd.service failed",
                      "journalctl --user -u kosli-credd; then: systemctl --user restart kosli-credd"});
  }
  if (checks.empty()) {
    checks.push_back({"systemd", Status::ok,
                      "kosli-credd.socket enabled and listening on " + display_safe(socket_path) +
                          "; kosli-credd.service " + display_safe(service),
                      ""});
  }
  return checks;
}

DoctorCheck config_check() {
  const auto credd = installed_credd_path();
  if (!credd) return {"config", Status::skip, "kosli-credd is not found beside kosli-cred: not checked", ""};
  const auto ran = run_program({*credd, "--check-config"}, true);
  std::string said = trimmed(ran.out);
  if (ran.exit_code == 0) return {"config", Status::ok, display_safe(said), ""};
  // The daemon's log line: its time and level are not the finding.
  if (const auto at = said.find("configuration: "); at != std::string::npos) said = said.substr(at);
  if (ran.exit_code < 0) said = "cannot run " + *credd;
  return {"config", Status::fail, display_safe(said), "fix the file it names, then check it: kosli-credd --check-config"};
}

DoctorCheck git_check(const std::vector<std::string>& urls) {
  if (!on_path("git")) return {"git", Status::skip, "git is not installed", ""};
  const auto entries = helper_entries();
  if (!entries) return {"git", Status::skip, "git config could not be read here", ""};
  const std::string ours = git_helper_command();
  std::vector<std::string> findings;
  std::string fix;
  bool any_kosli = false;
  bool stale_kosli = false;
  for (const auto& url : urls) {
    // git's list of helpers for the URL: every matching entry in order, an empty value starting it again.
    std::vector<const HelperEntry*> helpers;
    for (const auto& e : *entries) {
      const std::string_view key = e.key;  // credential.<pattern>.helper, or credential.helper
      if (!key.ends_with(".helper") || key.size() < 17) continue;
      const std::string_view middle = key.substr(11, key.size() - 11 - 6);
      const std::string_view pattern = middle.empty() ? middle : middle.substr(0, middle.size() - 1);
      if (!url_matches(pattern, url)) continue;
      if (e.value.empty()) {
        helpers.clear();
      } else {
        helpers.push_back(&e);
      }
    }
    for (const auto* h : helpers) {
      if (is_kosli_helper(h->value)) {
        any_kosli = true;
        stale_kosli = stale_kosli || h->value != ours;
        continue;
      }
      findings.push_back(display_safe(url) + " would also go to helper '" + display_safe(h->value) + "' (" +
                         display_safe(h->key) + ", " + display_safe(h->scope) + " configuration)");
      const bool repository = h->scope == "local" || h->scope == "worktree";
      if (fix.empty() || repository) {
        fix = repository ? "kosli-cred git-setup (in this repository)" : "kosli-cred git-setup --global";
      }
    }
  }
  if (!findings.empty()) {
    std::string detail = "git would hand a Kosli key to another helper, which may keep it: ";
    for (std::size_t i = 0; i < findings.size(); ++i) detail += (i == 0 ? "" : "; ") + findings[i];
    return {"git", Status::fail, detail, fix};
  }
  if (stale_kosli) {
    return {"git", Status::warn, "git asks a kosli helper other than the one beside this kosli-cred",
            "kosli-cred git-setup --global"};
  }
  if (!any_kosli) {
    return {"git", Status::ok, "no credential helper for Kosli hosts: git keeps no Kosli key (to have git ask kosli: "
                               "kosli-cred git-setup --global)",
            ""};
  }
  return {"git", Status::ok, "git asks only kosli for Kosli hosts' credentials", ""};
}

}  // namespace kosli::client
