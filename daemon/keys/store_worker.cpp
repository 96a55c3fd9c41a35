#include "daemon/keys/store_worker.hpp"

#include "proto/limits.hpp"

namespace kosli::daemon {

StoreWorker::StoreWorker(Store& store) : store_(store) {
  if (store_.may_block()) thread_ = std::thread([this] { run(); });
}

void StoreWorker::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StoreWorker::submit(Job job) {
  const auto deadline = std::chrono::steady_clock::now() + limits::kStoreCallDeadline;
  if (!thread_.joinable()) {
    job(store_, deadline);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(std::move(job), deadline);
  }
  cv_.notify_one();
}

void StoreWorker::run() {
  for (;;) {
    std::pair<Job, Store::Deadline> next;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next.first(store_, next.second);
  }
}

}  // namespace kosli::daemon
