// The audit log: one JSON line for every token issued or refused, store, erase,
// lock, rotate, verify and refused connection, with who asked. Never a key.
// A failed write is logged loudly and does not stop token service.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "daemon/router.hpp"

namespace kosli::daemon {

struct AuditRecord {
  std::string_view event;    // token, store, erase, lock, rotate, verify, connection
  std::string_view profile;  // empty when the event has none
  std::string_view result;   // issued, refused, ok, not_found, error
  std::string_view detail;   // a short reason; never a key
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

  void record(const AuditRecord& record, const Peer& peer);

 private:
  bool write_line(const std::string& line);
  void report_failure(const std::string& why);

  const std::string target_;
  std::mutex mutex_;
  int fd_ = -1;
  std::chrono::steady_clock::time_point last_failure_report_{};
};

}  // namespace kosli::daemon
