// Runs store calls off the Asio threads. A store that may block (D-Bus) gets one
// thread of its own and a queue; one that cannot block runs inline.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "daemon/store/store.hpp"

namespace kosli::daemon {

class StoreWorker {
 public:
  using Job = std::function<void(Store&, Store::Deadline)>;

  explicit StoreWorker(Store& store);
  ~StoreWorker() { stop(); }

  // Runs what is queued (each job is bounded by its deadline), then joins.
  // Call it before anything the queued jobs refer to is destroyed.
  void stop();

  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  Store& store() { return store_; }

  // Queues `job`. Its deadline counts from now, so time spent waiting behind a
  // hung call counts against it.
  void submit(Job job);

 private:
  void run();

  Store& store_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<Job, Store::Deadline>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kosli::daemon
