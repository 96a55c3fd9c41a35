#include "daemon/keys/timers.hpp"

namespace kosli::daemon {

void Timers::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    pending_.emplace(Clock::now() + delay, std::move(fn));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_all();
}

void Timers::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    pending_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Timers::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (pending_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto first = pending_.begin();
    // A copy: wait_until keeps reading the time it is given, and stop() may
    // free the entry while this waits (the lock is released meanwhile).
    if (const auto due = first->first; Clock::now() < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    auto fn = std::move(first->second);
    pending_.erase(first);
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace kosli::daemon
