// Runs one attempt of a rotation hook (a profile's on_rotate): the program is
// started without a shell, in a process group of its own, with the key written
// to its standard input (then closed), its standard output discarded and the
// last few KiB of its standard error kept. Blocking: it runs on the hook
// thread (daemon/keys/rotate_hooks.cpp), never on the io_context's.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace kosli::daemon {

enum class HookResult {
  ok,           // exited with status 0
  failed,       // exited with another status, or was killed by a signal
  timed_out,    // still running at the timeout: its process group was killed
  not_started,  // could not be started (or its key could not be read)
  cancelled,    // kosli-credd is stopping: its process group was killed
};

// "ok", "failed", "timed_out", "not_started", "cancelled": audit results and metric labels.
std::string_view result_name(HookResult result);

struct HookCommand {
  std::vector<std::string> argv;  // argv[0] is the program's absolute path
  std::vector<std::string> env;   // NAME=value: its whole environment
  std::chrono::milliseconds timeout{0};
};

struct HookExit {
  HookResult result = HookResult::not_started;
  std::string status;       // "exited with status 3", "killed by signal 9", "cannot be started: …"; never the key
  std::string stderr_tail;  // the last bytes it wrote to stderr (at most 4 KiB), unfiltered
};

// Starts `command`, writes `input` to its stdin and waits for it to exit, for
// `command.timeout` to pass, or for `cancel` to become true (checked every
// 100 ms). Never throws.
HookExit run_hook(const HookCommand& command, std::string_view input, const std::atomic<bool>& cancel);

// The environment a hook inherits from kosli-credd: `environ` without any KOSLI_*
// variable (a key, or a setting meant for kosli-credd) or systemd's
// NOTIFY_SOCKET, LISTEN_*, WATCHDOG_* (they describe kosli-credd, not the hook).
std::vector<std::string> inherited_environment();

// Standard error's last non-empty line, for the log: at most 200 bytes,
// escaped for display; empty when there is none, and a note instead when the
// tail holds the key (or any 16-byte piece of it).
std::string stderr_for_log(std::string_view tail, std::string_view key);

}  // namespace kosli::daemon
