#include "daemon/peer_identity.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdio>
#include <string_view>

namespace kosli::daemon {
namespace {

// The client's own program name: its requester is the program that ran it.
constexpr std::string_view kClientName = "kosli-cred";

struct ProcessStat {
  pid_t ppid = 0;
  unsigned long long start_ticks = 0;  // clock ticks after boot
};

template <typename Number>
bool parse_number(std::string_view text, Number& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Fields 4 (ppid) and 22 (start time) of a /proc/<pid>/stat line.
std::optional<ProcessStat> parse_stat(std::string_view line) {
  // The command name (field 2) is in parentheses and may hold anything, ')' too.
  const auto close = line.rfind(')');
  if (close == std::string_view::npos || close + 2 > line.size()) return std::nullopt;
  line.remove_prefix(close + 2);
  ProcessStat stat;
  for (int field = 3;; ++field) {  // field 3 is the state
    const auto end = line.find(' ');
    const auto value = line.substr(0, end);
    if (field == 4 && !parse_number(value, stat.ppid)) return std::nullopt;
    if (field == 22) return parse_number(value, stat.start_ticks) ? std::optional(stat) : std::nullopt;
    if (end == std::string_view::npos) return std::nullopt;
    line.remove_prefix(end + 1);
  }
}

// One process's /proc directory, opened once. What is read through it is of
// that process, or fails (ESRCH) once it has been reaped, even when its pid has
// been given to another process since: the directory stays bound to the
// process it was opened for.
class ProcessDir {
 public:
  explicit ProcessDir(pid_t pid) {
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d", static_cast<int>(pid));
    fd_ = ::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  ~ProcessDir() {
    if (fd_ >= 0) ::close(fd_);
  }
  ProcessDir(const ProcessDir&) = delete;
  ProcessDir& operator=(const ProcessDir&) = delete;

  std::optional<ProcessStat> stat() const {
    const int fd = fd_ < 0 ? -1 : ::openat(fd_, "stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    char buf[1024];  // fields 1-22 take a few hundred bytes at most
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return std::nullopt;
    return parse_stat(std::string_view(buf, static_cast<std::size_t>(n)));
  }

  // Its executable; "" when unknown (gone, a zombie, or a kernel thread).
  std::string exe() const {
    char buf[PATH_MAX];
    const ssize_t n = fd_ < 0 ? -1 : ::readlinkat(fd_, "exe", buf, sizeof buf);
    return n > 0 && static_cast<std::size_t>(n) < sizeof buf ? std::string(buf, static_cast<std::size_t>(n))
                                                             : std::string();
  }

 private:
  int fd_ = -1;
};

unsigned long long boot_ticks_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  const auto hz = static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK));
  return static_cast<unsigned long long>(ts.tv_sec) * hz + static_cast<unsigned long long>(ts.tv_nsec) * hz / 1000000000ULL;
}

std::string_view base_name(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<Peer> peer_of(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return std::nullopt;
  }
  Peer peer{cred.pid, cred.uid, cred.gid};
  peer.requester_pid = peer.pid;
  // A process that started after now cannot be the one that connected: its pid
  // has been reused. (One tick of slack: start times are rounded to ticks.)
  const auto not_after = boot_ticks_now() + 1;
  const ProcessDir client(peer.pid);
  const auto stat = client.stat();
  if (!stat || stat->start_ticks > not_after) return peer;
  peer.exe = client.exe();
  peer.requester = peer.exe;
  if (peer.exe.empty() || base_name(peer.exe) != kClientName || stat->ppid <= 1) return peer;

  peer.requester_pid = stat->ppid;
  const ProcessDir parent(stat->ppid);
  peer.requester = parent.exe();
  // The client must still be the parent's child: else the parent has gone, the
  // client was re-parented, and the pid may name someone else by now. While it
  // is, the parent has held its pid all along, so the program read is its own.
  const auto again = client.stat();
  if (!again || again->ppid != stat->ppid) peer.requester.clear();
  return peer;
}

Peer this_process() {
  Peer peer;
  peer.pid = ::getpid();
  peer.uid = ::geteuid();
  peer.gid = ::getegid();
  char path[PATH_MAX];
  if (const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1); n > 0) {
    peer.exe.assign(path, static_cast<std::size_t>(n));
  }
  return peer;
}

}  // namespace kosli::daemon
