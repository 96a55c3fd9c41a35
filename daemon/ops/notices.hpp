// What the daemon tells the user's desktop, besides its log: a key entering
// its expiry warning window (once a day per key), a scheduled rotation that
// failed, a rotated key waiting to be saved in the keyring. How a notice is
// sent is connected at start (SessionWatch::notify); until then, or with
// "notify": false, nothing is sent. Cheap to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace kosli::daemon {

class Notices {
 public:
  using Send = std::function<void(std::string summary, std::string body)>;

  // Before serving: the one place notices go.
  void connect(Send send) { send_ = std::move(send); }

  // A token handed out for a key inside its warning window: said at most once
  // a day per key (a profile and its expires_at).
  void key_expiring(const std::string& profile, std::int64_t expires_at, std::int64_t now);
  void rotation_failed(const std::string& profile, const std::string& why);
  void key_waiting(const std::string& profile, const std::string& save_by_hand);

 private:
  Send send_;
  std::mutex mutex_;
  // Per profile: the expires_at last told about, and the day (Unix days) it was told.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>, std::less<>> expiry_told_;
};

}  // namespace kosli::daemon
