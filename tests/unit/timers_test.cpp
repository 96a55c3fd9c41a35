#include "daemon/keys/timers.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

using namespace std::chrono_literals;

TEST(TimersTest, RunFunctionsByTheirDeadlineOnAThreadOfTheirOwn) {
  Timers timers;
  std::mutex mutex;
  std::vector<int> order;
  std::thread::id ran_on;
  std::promise<void> both;
  timers.after(50ms, [&] {
    std::lock_guard lock(mutex);
    order.push_back(2);
    ran_on = std::this_thread::get_id();
    both.set_value();
  });
  timers.after(0ms, [&] {
    std::lock_guard lock(mutex);
    order.push_back(1);
  });
  ASSERT_EQ(both.get_future().wait_for(10s), std::future_status::ready);
  std::lock_guard lock(mutex);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(TimersTest, StopDropsWhatHasNotRunAndLaterCallsAreDropped) {
  std::atomic<int> ran{0};
  Timers timers;
  timers.after(1h, [&] { ++ran; });
  timers.stop();  // returns at once: the hour-long wait is dropped, not waited for
  timers.after(0ms, [&] { ++ran; });
  timers.stop();
  EXPECT_EQ(ran.load(), 0);
}

}  // namespace
}  // namespace kosli::daemon
