// kosli-cred writes no core file: a crash, or a Ctrl-\ at the key prompt, after
// a key or a token came in would otherwise put it on disk. (kosli-credd goes
// further and makes itself undumpable; the client cannot, because the daemon
// reads /proc/<pid>/exe of the client to know who asks, and an undumpable
// process's /proc files are closed to it.)
#pragma once

namespace kosli::client {

// Sets the soft RLIMIT_CORE to 0, keeping the old value for restore_core_dumps.
void disable_core_dumps() noexcept;
// Gives back the soft limit kosli-cred started with: `exec` calls it just before
// the command it runs replaces kosli-cred, so the command keeps its own limit.
void restore_core_dumps() noexcept;

}  // namespace kosli::client
