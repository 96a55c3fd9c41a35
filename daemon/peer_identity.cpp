#include "daemon/peer_identity.hpp"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <fstream>
#include <sstream>
#include <string_view>

namespace kosli::daemon {
namespace {

// The client's own program name: its requester is the program that ran it.
constexpr std::string_view kClientName = "kosli-cred";

struct ProcessStat {
  pid_t ppid = 0;
  unsigned long long start_ticks = 0;  // clock ticks after boot
};

std::optional<ProcessStat> read_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  // Fields after the command name, which is in parentheses and may hold anything.
  const auto close = s.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(s.substr(close + 2));
  std::string field;
  ProcessStat stat;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state
    if (i == 4) std::from_chars(field.data(), field.data() + field.size(), stat.ppid);
    if (i == 22) {
      std::from_chars(field.data(), field.data() + field.size(), stat.start_ticks);
      return stat;
    }
  }
  return std::nullopt;
}

std::string read_exe(pid_t pid) {
  char buf[4096];
  const ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf);
  return n > 0 && static_cast<std::size_t>(n) < sizeof buf ? std::string(buf, static_cast<std::size_t>(n))
                                                           : std::string();
}

unsigned long long boot_ticks_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  const auto hz = static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK));
  return static_cast<unsigned long long>(ts.tv_sec) * hz + static_cast<unsigned long long>(ts.tv_nsec) * hz / 1000000000ULL;
}

// The program of `pid`, checked to belong to one process that already existed
// at `not_after` (so a pid freed and reused since then is not believed).
std::string stable_exe(pid_t pid, unsigned long long not_after, ProcessStat* stat_out = nullptr) {
  const auto before = read_stat(pid);
  if (!before || before->start_ticks > not_after + 1) return {};
  std::string exe = read_exe(pid);
  const auto after = read_stat(pid);
  if (!after || after->start_ticks != before->start_ticks) return {};
  if (stat_out != nullptr) *stat_out = *after;
  return exe;
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
  const auto now = boot_ticks_now();
  ProcessStat stat;
  peer.exe = stable_exe(peer.pid, now, &stat);
  peer.requester = peer.exe;
  peer.requester_pid = peer.pid;
  if (!peer.exe.empty() && base_name(peer.exe) == kClientName && stat.ppid > 1) {
    peer.requester_pid = stat.ppid;
    peer.requester = stable_exe(stat.ppid, now);
    // The client must still be the parent's child: else it was re-parented and
    // the pid we read may now name someone else.
    const auto again = read_stat(peer.pid);
    if (!again || again->ppid != stat.ppid) peer.requester.clear();
  }
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
