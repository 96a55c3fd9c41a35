// Runs the real binaries for integration tests: exit codes, stdout and stderr
// as a user sees them. The daemon is started with --ready-fd and waited for on
// that pipe, never with a sleep.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace kosli::test {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed by one
  std::string out;
  std::string err;
};

struct RunOptions {
  std::string input;                                       // written to stdin, then closed
  std::vector<std::pair<std::string, std::string>> env;    // added to (or replacing in) the environment
  std::chrono::seconds timeout{20};
};

// Spawn attributes that give a child default signal dispositions. The tests
// themselves ignore SIGPIPE (a child that exits before reading all its stdin
// must fail its test, not kill the test program), and children must not
// inherit that.
const posix_spawnattr_t* child_spawn_attributes();

// Path of a built executable (build/bin/NAME).
std::string bin(const std::string& name);

RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// kosli-cred with --socket pointing at `socket`.
RunResult cred(const std::string& socket, std::vector<std::string> args, const RunOptions& options = {});

// A fresh private directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Daemon {
 public:
  // Starts kosli-credd on `socket` with `args` (and `env` added to the
  // environment) and waits until it serves. Unless the test passes
  // --audit-log or sets XDG_STATE_HOME, it audits to a file of its own.
  Daemon(const std::string& socket, std::vector<std::string> args,
         const std::vector<std::pair<std::string, std::string>>& env = {});
  ~Daemon();

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // SIGTERM, then waits; returns the exit code.
  int stop();
  // Waits up to `timeout` for the daemon to exit by itself (idle exit, parent
  // gone): its exit code, or nullopt while it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }
  // Everything the daemon wrote to stderr so far.
  std::string log() const;
  // Its audit log, when the harness chose it.
  const std::string& audit_path() const { return audit_path_; }
  // What its audit log holds once every record of a request already answered
  // is written: the daemon writes records in batches, each before it answers
  // any later request, so one more request (GET /v1/metrics, which records
  // nothing) is the barrier. Reads the file as it is when the daemon has stopped.
  // `path`: the audit log when the test chose it.
  std::string audit_log(const std::string& path = {}) const;

 private:
  TempDir dir_;
  std::string socket_;
  std::string log_path_;
  std::string audit_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// The records of an audit log's text, a JSON object a line (throws on a bad line).
std::vector<nlohmann::json> audit_records(const std::string& log);
// How many of `records` are `event` with `result`.
std::size_t count_records(const std::vector<nlohmann::json>& records, const std::string& event,
                          const std::string& result);

// The environment of a git that has only our helper on its PATH, asks no one
// (no prompt, no askpass) and reads no user or system configuration: HOME is
// `home`, the daemon is at `socket`.
std::vector<std::pair<std::string, std::string>> git_env(const std::string& socket, const std::string& home);

// Now, in Unix seconds; `t` as RFC 3339 in UTC (what --expires-at takes).
inline std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }
inline std::string rfc3339(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::string& path);

// `path` with every symbolic link resolved, as /proc/<pid>/exe shows a program
// (the path itself when it cannot be resolved).
std::string real_path(const std::string& path);

// A key no other test uses, so scans for it prove something.
std::string unique_key();

// Whether the tests run inside scripts/test's sandbox (private D-Bus session,
// throw-away HOME and keyring). Tests that touch a keyring skip outside it.
bool in_sandbox();

// A Unix socket at `path` that takes connections and never answers: a hung
// daemon. Its descriptor; close it to stop listening (-1 when it cannot listen).
int listen_and_never_answer(const std::string& path);

// Locks the Secret Service's default collection over the session bus `bus`
// (gdbus, the way a desktop's "lock keyring" does); the gdbus run that failed, if one did.
std::optional<RunResult> lock_default_collection(const std::vector<std::pair<std::string, std::string>>& bus);

// Every regular file below `root` whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& root, const std::string& needle);

}  // namespace kosli::test
