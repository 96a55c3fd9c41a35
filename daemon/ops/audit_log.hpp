// The audit log: one JSON line for every token issued or refused, store,
// import, erase, lock, rotate, verify and refused connection, with who asked.
// Never a key.
// A failed write is logged loudly, shown by health() and does not stop token
// service. A file is opened without following a symbolic link, refused unless
// it is a regular file of this user, and made 0600 if it was looser; reopen()
// (SIGHUP) opens the path again after logrotate moved the file. A batch that
// does not fit (a full disk) is cut back off the file, so it always ends with
// a whole line.
//
// Writes are synchronous until the server takes them over (defer_writes): then
// a record is formatted at once and waits, with the others of the same turn of
// the event loop, for one write at the end of that turn. The router hands a
// token out through when_written, so a token never leaves the daemon before its
// record is written, and the tokens of one turn wait for that one write (a group
// commit) rather than each paying for a write of its own. Nothing is dropped;
// what waits is lost only if the daemon is killed in those microseconds, and
// never the record of a token.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/api/messages.hpp"

namespace kosli::daemon {

struct AuditRecord {
  std::string_view event;    // token, store, import, erase, lock, rotate, verify, connection
  std::string_view profile;  // empty when the event has none
  std::string_view result;   // issued, refused, ok, not_found, error
  std::string_view detail;   // a short reason; never a key
};

// What GET /v1/health and /v1/metrics say about the audit log.
struct AuditLogHealth {
  std::string_view kind;  // file, journal, stderr
  bool ok = true;         // the last write (or open) succeeded
  std::string error;      // why not, when not ok
  std::time_t failing_since = 0;  // when it stopped being written; 0 when ok
  std::uint64_t records_failed = 0;  // since the daemon started
};

class AuditLog {
 public:
  // `target`: a file path, "journal" (journald's native socket) or "-" (stderr).
  explicit AuditLog(std::string target);
  ~AuditLog();

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // $XDG_STATE_HOME/kosli-cred/audit.log, or ~/.local/state/kosli-cred/audit.log.
  static std::string default_path();

  const std::string& target() const { return target_; }
  AuditLogHealth health();

  // Closes the file and opens its path again, after the records that wait are
  // written to the old one: logrotate moved it (SIGHUP). Logs what it did. A
  // failure leaves the log failing until the next reopen that succeeds.
  void reopen();

  void record(const AuditRecord& record, const Peer& peer);
  // The line record() writes, at `time` (RFC 3339, milliseconds, UTC).
  static std::string format(const AuditRecord& record, const Peer& peer, std::string_view time);

  // From now on, lines wait in memory and `schedule_flush` is called (from the
  // thread of the record) whenever the first one arrives; it must see that
  // flush() runs soon. A burst larger than kMaxPendingBytes is written at once.
  void defer_writes(std::function<void()> schedule_flush);
  // Writes what waits, and writes every later record at once.
  void write_through();
  // Writes the lines that wait.
  void flush();
  // Runs `then` once every record made so far is written: at once when none
  // waits, otherwise right after the flush (or write_through) that writes
  // them, on that thread.
  void when_written(std::function<void()> then);

  static constexpr std::size_t kMaxPendingBytes = 64 * 1024;

 private:
  void write_pending();  // with mutex_ held
  void write_pending_and_run_waiting();
  // Why `lines` were not written (and how many of them), or nullopt.
  std::optional<std::string> write_lines(const std::string& lines, std::size_t& failed);
  std::optional<std::string> append_to_file(const std::string& lines);
  std::optional<std::string> append_to_stderr(const std::string& lines);
  // Opens target_ as the file; nullopt, or why not. With mutex_ held (or in the constructor).
  std::optional<std::string> open_file();
  // With mutex_ held.
  void failed(const std::string& why, std::size_t records);
  void succeeded();
  void report_failure(const std::string& why);

  const std::string target_;
  std::mutex mutex_;
  std::function<void()> schedule_flush_;  // empty: write each record at once
  std::string pending_;                   // whole lines, each ending in '\n'
  std::vector<std::function<void()>> waiting_;  // when_written's, until pending_ is written
  int fd_ = -1;
  std::string open_error_;  // why fd_ is -1 for a file
  dev_t file_dev_ = 0;      // the file fd_ is, or was last
  ino_t file_ino_ = 0;
  bool torn_ = false;       // the file may end inside a line: the next write starts with '\n'
  bool ok_ = true;
  std::string error_;
  std::time_t failing_since_ = 0;
  std::uint64_t records_failed_ = 0;
  std::chrono::steady_clock::time_point last_failure_report_{};
};

}  // namespace kosli::daemon
