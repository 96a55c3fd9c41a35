#include "daemon/audit_log.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

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
  fd_ = ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) report_failure(std::string("cannot open it: ") + std::strerror(errno));
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
  if (!write_lines(pending_)) report_failure(std::strerror(errno));
  pending_.clear();
}

// `lines`: one or more whole lines. To a file with O_APPEND in one write(2), so
// no other writer's lines land inside them (to stderr on a pipe that holds only
// up to PIPE_BUF bytes); a short write is continued. To the journal, a datagram
// each.
bool AuditLog::write_lines(const std::string& lines) {
  if (target_ == "journal") {
    bool sent = true;
    for (std::size_t at = 0; at < lines.size();) {
      const auto end = lines.find('\n', at);
      sent = send_to_journal(lines.substr(at, end - at)) && sent;
      at = end + 1;
    }
    return sent;
  }
  const int fd = target_ == "-" ? STDERR_FILENO : fd_;
  if (fd < 0) return false;
  for (std::size_t done = 0; done < lines.size();) {
    const ssize_t n = ::write(fd, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
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
                target_, why);
}

}  // namespace kosli::daemon
