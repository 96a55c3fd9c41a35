#pragma once

#include <vector>

namespace kosli::daemon {

// Start-up hardening, in one place: this process's memory holds API keys.
// Call first thing in main: makes sure descriptors 0-2 are open (so no socket
// or log ever lands on them), forbids core dumps and ptrace attach by the same
// user, sets umask 077, ignores SIGPIPE and raises the descriptor limit.
void harden_process();

// Closes every inherited descriptor above 2 except `keep` (the activation
// socket, the readiness pipe). Call once the arguments are known.
void close_inherited_fds(const std::vector<int>& keep);

}  // namespace kosli::daemon
