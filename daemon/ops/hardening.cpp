#include "daemon/ops/hardening.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

namespace kosli::daemon {

void harden_process() {
  // A daemon started with stdio closed would otherwise hand fd 2 to its socket.
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) {
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0 && null != fd) {
        ::dup2(null, fd);
        ::close(null);
      }
    }
  }
  // Memory contains unencrypted API keys: never write it to a core file.
  const struct rlimit no_core {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  // Not dumpable: also refuses ptrace attach and /proc/<pid>/mem to the same uid.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // Files and directories it makes (audit log, socket directory) are private.
  ::umask(077);
  // A client that goes away mid-response must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  // Nor a stray signal whose default is to end it without removing its socket
  // (and every key of a memory backend with it): these mean nothing to it. A
  // file size limit makes a write fail (the audit log handles that) instead.
  // SIGHUP waits here until the server takes it over (it reopens the audit
  // log); SIGINT and SIGTERM keep their default until the server takes them.
  for (const int signo : {SIGUSR1, SIGUSR2, SIGALRM, SIGXFSZ, SIGHUP}) std::signal(signo, SIG_IGN);
  // Each connection is a descriptor: allow as many as the hard limit does.
  struct rlimit files {};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
}

void close_inherited_fds(const std::vector<int>& keep) {
  std::vector<int> doomed;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(dir);
    while (const dirent* entry = ::readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0' || fd <= 2 || fd == own) continue;
      if (std::find(keep.begin(), keep.end(), static_cast<int>(fd)) == keep.end()) {
        doomed.push_back(static_cast<int>(fd));
      }
    }
    ::closedir(dir);
  }
  for (const int fd : doomed) ::close(fd);
}

}  // namespace kosli::daemon
