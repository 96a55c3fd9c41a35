#include "daemon/ops/audit_log.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "proto/display.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";
// A failing audit log is reported at most this often, not once per request.
constexpr std::chrono::seconds kFailureReportInterval{60};

std::string now_rfc3339_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
  return buf;
}

// mkdir -p with mode 0700 for every directory it makes.
bool make_private_dirs(const std::string& dir) {
  if (dir.empty() || dir == "/") return true;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  const auto slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_private_dirs(dir.substr(0, slash))) return false;
  return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST;
}

bool send_to_journal(const std::string& line) {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, kJournalSocket, sizeof addr.sun_path - 1);
  // journald's native protocol: KEY=value lines; a value has no newline here.
  const std::string datagram = "SYSLOG_IDENTIFIER=kosli-credd-audit\nPRIORITY=6\nMESSAGE=" + line + "\n";
  const bool sent = ::sendto(fd, datagram.data(), datagram.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), sizeof addr) ==
                    static_cast<ssize_t>(datagram.size());
  ::close(fd);
  return sent;
}

}  // namespace

std::string AuditLog::default_path() {
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/kosli-cred/audit.log";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/.local/state/kosli-cred/audit.log";
}

AuditLog::AuditLog(std::string target) : target_(std::move(target)) {
  if (target_ == "-" || target_ == "journal") return;
  const auto slash = target_.rfind('/');
  if (slash != std::string::npos) make_private_dirs(target_.substr(0, slash));
  if (auto why = open_file()) failed(*why, 0);
}

std::optional<std::string> AuditLog::open_file() {
  // O_NONBLOCK: a FIFO at the path must not hang the daemon (no effect on a file).
  const int fd = ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) {
    struct stat link {};
    if (errno == ELOOP && ::lstat(target_.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      return open_error_ = "it is a symbolic link, which kosli-credd does not follow for its audit log; "
                           "name the file itself with --audit-log";
    }
    return open_error_ = std::string("cannot open it: ") + std::strerror(errno);
  }
  struct stat st {};
  std::optional<std::string> refused;
  if (::fstat(fd, &st) != 0) {
    refused = std::string("cannot stat it: ") + std::strerror(errno);
  } else if (S_ISCHR(st.st_mode)) {
    // A device such as /dev/null: where records go is the user's choice, and
    // no other user can read them back from it.
  } else if (!S_ISREG(st.st_mode)) {
    refused = "it is not a regular file; remove it or choose another path with --audit-log";
  } else if (st.st_uid != ::geteuid()) {
    refused = "it belongs to uid " + std::to_string(st.st_uid) + ", not to kosli-credd's uid " +
              std::to_string(::geteuid()) + "; remove it or choose another path with --audit-log";
  } else if ((st.st_mode & 077) != 0) {
    if (::fchmod(fd, 0600) != 0) {
      refused = "it is mode " + fmt::format("{:04o}", st.st_mode & 07777) + " and cannot be made 0600: " +
                std::strerror(errno);
    } else {
      spdlog::info("audit log {} was mode {:04o}, open to others: made it 0600", display_safe(target_),
                   st.st_mode & 07777);
    }
  }
  if (refused) {
    ::close(fd);
    return open_error_ = *refused;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  open_error_.clear();
  // Only the file a write tore ends inside a line.
  if (st.st_dev != file_dev_ || st.st_ino != file_ino_) torn_ = false;
  file_dev_ = st.st_dev;
  file_ino_ = st.st_ino;
  return std::nullopt;
}

void AuditLog::reopen() {
  if (target_ == "-" || target_ == "journal") {
    spdlog::info("audit log goes to {}: nothing to reopen", target_ == "-" ? "stderr" : "the journal");
    return;
  }
  std::lock_guard lock(mutex_);
  write_pending();  // what waits belongs to the file it was recorded in
  const int old_fd = fd_;
  fd_ = -1;
  if (auto why = open_file()) {
    if (old_fd >= 0) ::close(old_fd);
    failed(*why, 0);
    spdlog::error("audit log {} could not be reopened: {}", display_safe(target_), *why);
    return;
  }
  if (old_fd >= 0) ::close(old_fd);
  spdlog::info("reopened audit log {}", display_safe(target_));
  if (!ok_ && old_fd < 0) succeeded();  // an open that failed before works now
}

AuditLogHealth AuditLog::health() {
  std::lock_guard lock(mutex_);
  AuditLogHealth h;
  h.kind = target_ == "-" ? "stderr" : target_ == "journal" ? "journal" : "file";
  h.ok = ok_;
  if (!ok_) {
    h.error = error_;
    h.failing_since = failing_since_;
  }
  h.records_failed = records_failed_;
  return h;
}

AuditLog::~AuditLog() {
  write_through();
  if (fd_ >= 0) ::close(fd_);
}

std::string AuditLog::format(const AuditRecord& r, const Peer& peer, std::string_view time) {
  // One JSON object a line, its keys in the order nlohmann's object dump gives
  // them. Each string is nlohmann's (escaped, invalid UTF-8 replaced); the
  // object around them is put together here: building it as an nlohmann::json
  // took 3.3 us a token, a third of the daemon's work for a cached token.
  std::string line;
  line.reserve(256);
  const auto key = [&line](std::string_view name) {
    line += line.empty() ? "{\"" : ",\"";
    line += name;
    line += "\":";
  };
  const auto text = [&line](std::string_view value) {
    line += nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  if (!r.detail.empty()) {
    key("detail");
    text(r.detail);
  }
  key("event");
  text(r.event);
  key("exe");
  if (peer.exe.empty()) {
    line += "null";
  } else {
    text(peer.exe);
  }
  key("pid");
  line += std::to_string(peer.pid);
  if (!r.profile.empty()) {
    key("profile");
    text(r.profile);
  }
  if (!peer.requester.empty()) {
    key("requester");
    text(peer.requester);
    key("requester_by");  // how it was found: best effort (README, "Security model")
    line += peer.requester_source == RequesterSource::client_parent ? "\"parent_of_kosli_cred\""
            : peer.requester_source == RequesterSource::client_exec ? "\"kosli_cred_exec\""
                                                                     : "\"peer\"";
    key("requester_pid");
    line += std::to_string(peer.requester_pid);
  }
  key("result");
  text(r.result);
  key("time");
  text(time);
  key("uid");
  line += std::to_string(peer.uid);
  line += "}\n";
  return line;
}

void AuditLog::record(const AuditRecord& r, const Peer& peer) {
  const std::string line = format(r, peer, now_rfc3339_ms());
  std::function<void()> schedule;  // called outside the lock, as a copy: write_through may clear it
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() + line.size() > kMaxPendingBytes) write_pending();
    if (pending_.empty()) schedule = schedule_flush_;
    pending_ += line;
    if (!schedule_flush_) write_pending();  // until the server takes writes over
  }
  if (schedule) schedule();
}

void AuditLog::defer_writes(std::function<void()> schedule_flush) {
  std::lock_guard lock(mutex_);
  schedule_flush_ = std::move(schedule_flush);
}

void AuditLog::write_through() {
  {
    std::lock_guard lock(mutex_);
    schedule_flush_ = nullptr;
  }
  write_pending_and_run_waiting();
}

void AuditLog::flush() { write_pending_and_run_waiting(); }

void AuditLog::when_written(std::function<void()> then) {
  {
    std::lock_guard lock(mutex_);
    // Lines wait only while a flush is scheduled (record() saw to it), and
    // that flush runs what is queued here.
    if (!pending_.empty()) {
      waiting_.push_back(std::move(then));
      return;
    }
  }
  then();
}

void AuditLog::write_pending_and_run_waiting() {
  std::vector<std::function<void()>> written;
  {
    std::lock_guard lock(mutex_);
    write_pending();
    written.swap(waiting_);
  }
  for (auto& then : written) then();  // outside the lock: they may record
}

void AuditLog::write_pending() {
  if (pending_.empty()) return;
  std::size_t failed_records = 0;
  if (auto why = write_lines(pending_, failed_records)) {
    failed(*why, failed_records);
  } else if (!ok_) {
    succeeded();
  }
  pending_.clear();
}

// `lines`: one or more whole lines. To a file, see append_to_file. To stderr in
// one write(2) (a pipe keeps only up to PIPE_BUF bytes together); a short
// write is continued. To the journal, a datagram each.
std::optional<std::string> AuditLog::write_lines(const std::string& lines, std::size_t& failed) {
  if (target_ == "journal") {
    failed = 0;
    for (std::size_t at = 0; at < lines.size();) {
      const auto end = lines.find('\n', at);
      if (!send_to_journal(lines.substr(at, end - at))) ++failed;
      at = end + 1;
    }
    if (failed == 0) return std::nullopt;
    return "the journal did not take " + std::to_string(failed) + " record(s)";
  }
  auto why = target_ != "-" ? append_to_file(lines) : append_to_stderr(lines);
  // Counted only when they failed: nothing more to do for a batch that was written.
  failed = why ? static_cast<std::size_t>(std::count(lines.begin(), lines.end(), '\n')) : 0;
  return why;
}

std::optional<std::string> AuditLog::append_to_stderr(const std::string& lines) {
  for (std::size_t done = 0; done < lines.size();) {
    const ssize_t n = ::write(STDERR_FILENO, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::string(n < 0 ? std::strerror(errno) : "stderr took nothing");
    done += static_cast<std::size_t>(n);
  }
  return std::nullopt;
}

// With O_APPEND in one write(2), so no other writer's lines land inside them.
// A short write (a full disk, a file size limit) is continued; when the rest
// cannot be written, what was is cut off again, so the file ends with a whole
// line; when even that fails, the next write starts a new line.
std::optional<std::string> AuditLog::append_to_file(const std::string& lines) {
  if (fd_ < 0) return open_error_;
  std::string with_newline;
  const std::string* out = &lines;
  if (torn_) {
    with_newline = "\n" + lines;
    out = &with_newline;
  }
  for (std::size_t done = 0; done < out->size();) {
    const ssize_t n = ::write(fd_, out->data() + done, out->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    const std::string why = n < 0 ? std::strerror(errno) : "the file took nothing";
    if (done > 0) {
      // After an O_APPEND write the offset is the end of what it wrote; a failed write leaves it.
      const off_t end = ::lseek(fd_, 0, SEEK_CUR);
      const bool cut = end >= static_cast<off_t>(done) && ::ftruncate(fd_, end - static_cast<off_t>(done)) == 0;
      torn_ = torn_ || !cut;  // cut back, the file ends where it did before
    }
    return why;
  }
  torn_ = false;
  return std::nullopt;
}

void AuditLog::failed(const std::string& why, std::size_t records) {
  records_failed_ += records;
  if (ok_) {
    ok_ = false;
    failing_since_ = std::time(nullptr);
  }
  error_ = why;
  report_failure(why);
}

void AuditLog::succeeded() {
  spdlog::warn("audit log {} is written again; it failed from {} ({}), {} record(s) lost so far",
               display_safe(target_), format_rfc3339(failing_since_), error_, records_failed_);
  ok_ = true;
  error_.clear();
  failing_since_ = 0;
  last_failure_report_ = {};
}

void AuditLog::report_failure(const std::string& why) {
  const auto now = std::chrono::steady_clock::now();
  if (last_failure_report_ != std::chrono::steady_clock::time_point{} &&
      now - last_failure_report_ < kFailureReportInterval) {
    return;
  }
  last_failure_report_ = now;
  spdlog::error("AUDIT LOG {} IS NOT BEING WRITTEN ({}); tokens are still served. Fix the path or "
                "choose another with --audit-log",
                display_safe(target_), why);
}

}  // namespace kosli::daemon
