// Peers the daemon refuses before reading a request from them (another uid):
// what they are told, and how many of their connections get a record of their own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kosli::daemon {

// The uids a daemon serves, for a refusal: "uid 1000", "uids 1000 and 1001",
// "uids 0, 1001 and 1002" (its own first, then --allow-uid's in order, each once).
std::string served_uids(uid_t own, const std::vector<uid_t>& allowed);

// Refused connections from one uid are recorded (a daemon log line and an
// audit record) one by one only up to kRecordedPerWindow a window; the rest are
// counted and reported together once the window is over, and a flood that goes
// on is reported once a window until a window passes without one. A local user
// writing to a socket made 0666 for --allow-uid cannot fill the owner's logs.
// Safe to use from any thread.
class RefusalLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t kRecordedPerWindow = 5;
  static constexpr std::chrono::seconds kWindow{60};
  // The uids tracked at once; refusals from any further uid share one count.
  static constexpr std::size_t kMaxTrackedUids = 64;

  // Connections refused and not recorded one by one, from `uid` (nullopt: the
  // uids past kMaxTrackedUids, or peers whose uid could not be read), over `over`.
  struct Dropped {
    std::optional<uid_t> uid;
    std::size_t count = 0;
    Clock::duration over{};
  };

  struct Decision {
    bool record = false;                        // record this refusal
    std::optional<Dropped> dropped;             // report these first: their window ended
    std::optional<Clock::time_point> report_at;  // counting began: call take_dropped then
  };

  // A connection from `uid` (nullopt: unknown) refused at `now`.
  Decision refused(std::optional<uid_t> uid, Clock::time_point now);

  // The counts whose window has ended by `now` (all of them with `all`), each
  // taken once, and when to look again (nullopt: nothing is counting; the
  // next Decision with a report_at says when).
  struct Taken {
    std::vector<Dropped> dropped;
    std::optional<Clock::time_point> next;
  };
  Taken take_dropped(Clock::time_point now, bool all = false);

 private:
  struct Window {
    Clock::time_point start;
    std::size_t recorded = 0;
    std::size_t dropped = 0;
  };
  Window* window_for(std::optional<uid_t> uid, Clock::time_point now);  // with mutex_ held

  std::mutex mutex_;
  std::map<uid_t, Window> windows_;
  std::optional<Window> others_;
  bool reporting_ = false;  // a report_at was handed out and not yet taken
};

// "... and 1995 more refused connections from uid 65534 in the last 60 s".
std::string describe(const RefusalLimiter::Dropped& dropped);

}  // namespace kosli::daemon
