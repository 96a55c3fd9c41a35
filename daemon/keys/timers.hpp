// The key service's own clock: runs functions after a delay on a thread of its
// own (started on first use), for the rotation schedule and the retries of keys
// waiting for the keyring. Nothing here waits on Kosli or the keyring.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace kosli::daemon {

class Timers {
 public:
  Timers() = default;
  ~Timers() { stop(); }

  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  // Runs `fn` on the timers' thread after `delay`; dropped once stopped.
  void after(std::chrono::milliseconds delay, std::function<void()> fn);

  // Drops what has not run yet, lets a function running now finish, and joins
  // the thread. Not from a function it runs.
  void stop();

 private:
  void run();

  using Clock = std::chrono::steady_clock;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kosli::daemon
