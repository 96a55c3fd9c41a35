#include "daemon/transport/peer_identity.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "proto/limits.hpp"

// The full command line relative to kosli-credd's directory (daemon/CMakeLists.txt,
// computed as client/CMakeLists.txt computes it).
#ifndef KOSLI_CLI_FROM_CREDD_DIR
#error "daemon/CMakeLists.txt defines KOSLI_CLI_FROM_CREDD_DIR"
#endif

// Linux 6.5; older C library headers lack the name.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace kosli::daemon {
namespace {

// This installation's two kosli-cred programs, by real path ("" when absent).
struct InstalledClient {
  std::string fast;  // bin/kosli-cred
  std::string full;  // libexec/kosli-cred/kosli-cred
};

std::string real_path(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return {};
  std::string out(real);
  std::free(real);
  return out;
}

const InstalledClient& installed_client() {
  static const InstalledClient client = [] {
    InstalledClient found;
    char self[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return found;
    const std::string_view path(self, static_cast<std::size_t>(n));
    const std::string dir(path.substr(0, path.rfind('/') + 1));
    found.fast = real_path(dir + std::string(limits::kClientProgram));
    found.full = real_path(dir + KOSLI_CLI_FROM_CREDD_DIR);
    return found;
  }();
  return client;
}

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

// Whether the process `pidfd` stands for has not been reaped (a zombie's pid
// cannot be reused either).
bool still_there(int pidfd) {
  return ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0 || errno == EPERM;
}

// The programs of `peer`, whose /proc directory `client` is known to be the
// connected process's, and whose parent was `ppid` a moment ago.
void read_programs(Peer& peer, const ProcessDir& client, pid_t ppid) {
  peer.exe = client.exe();
  peer.requester = peer.exe;
  peer.requester_pid = peer.pid;
  peer.requester_source = RequesterSource::peer;
  peer.installed_client = is_installed_client(peer.exe);
  if (!peer.installed_client) return;

  peer.requester_source = RequesterSource::client_parent;
  peer.requester.clear();
  peer.requester_pid = ppid;
  if (ppid <= 1) return;  // what ran it has gone
  const ProcessDir parent(ppid);
  // The client must still be the parent's child: else the parent has gone, the
  // client was re-parented, and the pid may name someone else by now. While it
  // is, the parent holds its pid, so the directory opened is the parent's, and
  // what is read through it is the parent's program now (after any exec).
  const auto again = client.stat();
  if (!again || again->ppid != ppid) return;
  peer.requester = parent.exe();
}

}  // namespace

void locate_installed_client() { (void)installed_client(); }

bool is_installed_client(std::string_view exe) {
  const auto& client = installed_client();
  return !exe.empty() && (exe == client.fast || exe == client.full);
}

std::optional<Peer> peer_of(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return std::nullopt;
  }
  Peer peer{cred.pid, cred.uid, cred.gid};
  peer.socket = fd;
  peer.requester_pid = peer.pid;
  // A process that started after now cannot be the one that connected: its pid
  // has been reused. (One tick of slack: start times are rounded to ticks.)
  const auto not_after = boot_ticks_now() + 1;
  const ProcessDir client(peer.pid);
  const auto stat = client.stat();
  if (!stat || stat->start_ticks > not_after) return peer;
  read_programs(peer, client, stat->ppid);
  return peer;
}

Peer peer_now(const Peer& at_connect, std::string_view exec_program) {
  Peer peer{at_connect.pid, at_connect.uid, at_connect.gid};
  peer.socket = at_connect.socket;
  peer.requester_pid = peer.pid;
  if (at_connect.socket < 0) {
    peer = at_connect;  // not on a socket (the router's unit tests): as given
  } else {
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    const bool pinned = ::getsockopt(at_connect.socket, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0;
    const bool no_pidfds = !pinned && (errno == ENOPROTOOPT || errno == EINVAL);
    const auto not_after = boot_ticks_now() + 1;
    const ProcessDir client(peer.pid);
    // Opened, then found not reaped: the directory is the connected process's.
    const bool ours = pinned ? still_there(pidfd) : no_pidfds;
    if (pinned) ::close(pidfd);
    const auto stat = ours ? client.stat() : std::nullopt;
    if (stat && (pinned || stat->start_ticks <= not_after)) read_programs(peer, client, stat->ppid);
    if (peer.exe != at_connect.exe) {
      // It has exec'd since it connected: it is what it runs now, and no more.
      // The installed client's exceptions (its parent, Kosli-Exec-Program) hold
      // only for a client that made the connection itself, not for one exec'd
      // on a connection another program made and may share with a child.
      peer.installed_client = false;
      peer.requester = peer.exe;
      peer.requester_pid = peer.pid;
      peer.requester_source = RequesterSource::peer;
    }
  }
  take_exec_program(peer, exec_program);
  return peer;
}

bool take_exec_program(Peer& peer, std::string_view program) {
  if (!peer.installed_client || program.empty() || program.front() != '/' || program.size() >= PATH_MAX) {
    return false;
  }
  peer.requester.assign(program);
  peer.requester_pid = peer.pid;  // the process that is about to become it
  peer.requester_source = RequesterSource::client_exec;
  return true;
}

}  // namespace kosli::daemon
