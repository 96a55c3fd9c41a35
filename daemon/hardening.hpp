#pragma once

namespace kosli::daemon {

// Start-up hardening, in one place: this process's memory holds API keys.
// No core dumps, no ptrace attach by the same user, no SIGPIPE deaths.
void harden_process();

}  // namespace kosli::daemon
