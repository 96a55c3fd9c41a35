#include "daemon/transport/refused_peers.hpp"

#include <algorithm>

namespace kosli::daemon {

std::string served_uids(uid_t own, const std::vector<uid_t>& allowed) {
  std::vector<uid_t> uids{own};
  for (const uid_t uid : allowed) {
    if (std::find(uids.begin(), uids.end(), uid) == uids.end()) uids.push_back(uid);
  }
  std::string text = uids.size() == 1 ? "uid " : "uids ";
  for (std::size_t i = 0; i < uids.size(); ++i) {
    if (i > 0) text += i + 1 == uids.size() ? " and " : ", ";
    text += std::to_string(uids[i]);
  }
  return text;
}

RefusalLimiter::Window* RefusalLimiter::window_for(std::optional<uid_t> uid, Clock::time_point now) {
  if (uid) {
    if (auto it = windows_.find(*uid); it != windows_.end()) return &it->second;
    if (windows_.size() >= kMaxTrackedUids) {
      // Room for a new uid: a window that is over and has nothing to report.
      const auto over = std::find_if(windows_.begin(), windows_.end(), [now](const auto& entry) {
        return entry.second.dropped == 0 && now - entry.second.start >= kWindow;
      });
      if (over != windows_.end()) windows_.erase(over);
    }
    if (windows_.size() < kMaxTrackedUids) return &windows_.emplace(*uid, Window{now}).first->second;
  }
  if (!others_) others_ = Window{now};
  return &*others_;
}

RefusalLimiter::Decision RefusalLimiter::refused(std::optional<uid_t> uid, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  Window* window = window_for(uid, now);
  if (others_ && window == &*others_) uid.reset();
  Decision decision;
  if (now - window->start >= kWindow) {
    if (window->dropped > 0) decision.dropped = Dropped{uid, window->dropped, now - window->start};
    *window = Window{now};
  }
  if (window->recorded < kRecordedPerWindow) {
    ++window->recorded;
    decision.record = true;
  } else {
    ++window->dropped;
    if (!reporting_) {
      reporting_ = true;
      decision.report_at = window->start + kWindow;
    }
  }
  return decision;
}

RefusalLimiter::Taken RefusalLimiter::take_dropped(Clock::time_point now, bool all) {
  std::lock_guard lock(mutex_);
  Taken taken;
  const auto take = [&](std::optional<uid_t> uid, Window& window) {
    if (window.dropped > 0 && (all || now - window.start >= kWindow)) {
      taken.dropped.push_back(Dropped{uid, window.dropped, now - window.start});
      window = Window{now, kRecordedPerWindow, 0};  // still counting: the next ones wait a window too
    }
    if (window.dropped > 0 && (!taken.next || window.start + kWindow < *taken.next)) {
      taken.next = window.start + kWindow;
    }
  };
  for (auto it = windows_.begin(); it != windows_.end();) {
    take(it->first, it->second);
    const bool over = it->second.dropped == 0 && now - it->second.start >= kWindow;
    it = over ? windows_.erase(it) : std::next(it);
  }
  if (others_) take(std::nullopt, *others_);
  reporting_ = taken.next.has_value();
  return taken;
}

std::string describe(const RefusalLimiter::Dropped& dropped) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(dropped.over).count();
  return "... and " + std::to_string(dropped.count) + " more refused connection" + (dropped.count == 1 ? "" : "s") +
         " from " + (dropped.uid ? "uid " + std::to_string(*dropped.uid) : std::string("other uids")) +
         " in the last " + std::to_string(std::max<long long>(seconds, 1)) + " s";
}

}  // namespace kosli::daemon
