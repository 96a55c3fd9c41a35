#include "client/git_setup.hpp"

#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "client/api.hpp"
#include "client/c_strings.hpp"
#include "client/cli_error.hpp"
#include "client/git_credential.hpp"
#include "client/process.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/host.hpp"

extern char** environ;

namespace kosli::client {
// The helper git runs for Kosli hosts: the shell git starts it with replaces
// itself with git-credential-kosli beside this kosli-cred (by absolute path).
// "kosli" would have git run `git credential-kosli`, one more git process for
// every credential, and what makes git's path cost more than credential-cache.
std::string git_helper_command() {
  const auto credd = installed_credd_path();  // <bindir>/kosli-credd
  char resolved[PATH_MAX];
  if (!credd || ::realpath(credd->substr(0, credd->rfind('/')).c_str(), resolved) == nullptr) {
    throw CliError(exit_code::error, "cannot find git-credential-kosli: this program's directory cannot be read");
  }
  std::string quoted = "'";
  for (const char ch : std::string(resolved) + "/" + std::string(kGitHelperName)) {
    quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  }
  return "!exec " + quoted + "'";
}

std::vector<std::string> kosli_git_urls(const std::vector<ProfileMeta>& profiles) {
  std::vector<std::string> urls = {std::string(kEuHost), std::string(kUsHost)};
  for (const auto& p : profiles) {
    const auto sep = p.host.find("://");
    if (sep == std::string::npos) continue;
    std::string url = p.host.substr(0, sep + 3) + host_authority(p.host);
    if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.push_back(std::move(url));
  }
  return urls;
}

namespace {

// Runs `git config [scope] args…`; git's exit code.
int git_config(const std::vector<std::string>& scope, std::initializer_list<std::string> args) {
  std::vector<std::string> argv = {"git", "config"};
  argv.insert(argv.end(), scope.begin(), scope.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto c_argv = c_strings(argv);
  pid_t pid = -1;
  if (const int e = ::posix_spawnp(&pid, "git", nullptr, nullptr, c_argv.data(), environ); e != 0) {
    throw CliError(exit_code::error, std::string("cannot run git: ") + std::strerror(e));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The same for the profiles the daemon lists.
std::vector<std::string> kosli_urls(DaemonClient& daemon) {
  std::vector<ProfileMeta> profiles;
  try {
    profiles = api::readable_profiles(daemon);
  } catch (const CliError& e) {
    std::fprintf(stderr, "kosli-cred: setting up the EU and US hosts only: cannot list the profiles: %s\n",
                 e.what());
  }
  return kosli_git_urls(profiles);
}

}  // namespace

int cmd_git_setup(DaemonClient& daemon, bool global) {
  const std::vector<std::string> scope = global ? std::vector<std::string>{"--global"} : std::vector<std::string>{};
  const char* where = global ? "your global git configuration" : "this repository's git configuration";
  const std::string helper = git_helper_command();
  for (const auto& url : kosli_urls(daemon)) {
    const std::string key = "credential." + url + ".helper";
    // The empty value first, in place of every value the key had: git's list
    // of helpers starts again there, so only kosli is asked (and told to store).
    if (git_config(scope, {"--replace-all", key, ""}) != 0 || git_config(scope, {"--add", key, helper}) != 0) {
      throw CliError(exit_code::error, "git config could not set " + display_safe(key) + " (git said why above)");
    }
    std::printf("%s: helper = (none), then helper = %s\n", display_safe(url).c_str(), display_safe(helper).c_str());
  }
  std::printf("git now asks only kosli for these hosts' credentials (%s).\n", where);
  return exit_code::ok;
}

}  // namespace kosli::client
