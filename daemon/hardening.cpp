#include "daemon/hardening.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <csignal>

namespace kosli::daemon {

void harden_process() {
  // Memory contains unencrypted API keys: never write it to a core file.
  const struct rlimit no_core {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  // Not dumpable: also refuses ptrace attach and /proc/<pid>/mem to the same uid.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // A client that goes away mid-response must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace kosli::daemon
