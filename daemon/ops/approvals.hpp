// Approvals: a token for a profile with "confirm" (config.hpp) goes out only
// once the person at the desktop says yes to a question naming the program
// that asks (its real path and pid, its command line, its parent's, its
// working directory) and the profile. "per-program" remembers a yes by the
// program's real path until forget_all() (the session locks, the machine
// sleeps) or the daemon restarts, for that uid and that way of asking only
// (a yes through exec covers exec of that program, not its token); "always"
// asks every time.
//
// Only the token route asks (exec's token and git's get are tokens): verify,
// rotate, store and erase hand no key out, and allowed_clients guards them.
//
// A question runs on a thread of its own (an askpass is a child process that
// may take 30 s); its answer comes back through the function given to
// answer_on() (the event loop). Under "per-program", requests for the same
// profile by the same uid and program, asking the same way (the credential
// helper or token, or exec), share an open question; under "always" each asks. Each decision is audited ("approval")
// and counted. Profiles with "confirm": "never" cost one comparison.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon/api/messages.hpp"
#include "daemon/ops/config.hpp"
#include "proto/approvals_answer.hpp"
#include "proto/profile.hpp"
#include "proto/routes.hpp"

namespace kosli::daemon {

class AuditLog;
class Metrics;

struct Approval {
  bool allowed = false;
  std::string message;  // why not, and how to allow it; empty when allowed
};

class Approvals {
 public:
  using Done = std::function<void(Approval)>;
  using Post = std::function<void(std::function<void()>)>;

  Approvals(const Config& config, AuditLog& audit, Metrics& metrics);
  ~Approvals();
  Approvals(const Approvals&) = delete;
  Approvals& operator=(const Approvals&) = delete;

  // Whether a request on `route` for `profile` waits for an approval.
  bool confirms(Route route, std::string_view profile) const {
    return any_confirmed_ && route == Route::token && confirm_of(profile) != Confirm::never;
  }
  // Whether any profile has "confirm" (health then says what approvals there are).
  bool any() const { return any_confirmed_; }

  // Whether `peer`'s program is approved for `profile` already ("per-program");
  // a yes is audited and counted as "remembered".
  bool remembered(std::string_view profile, const Peer& peer);

  // Asks about `peer` having `meta`'s key (or joins the open question for the
  // same profile and program); `done` runs once, through answer_on()'s function.
  // `interim` (may be null; valid until `done` runs) is told how long the
  // question stays open once an askpass shows it, before `done` runs.
  void ask(const ProfileMeta& meta, const Peer& peer, Done done, Interim* interim = nullptr);

  // Drops every approval (the session locked, the machine sleeps); audited
  // with `reason` when there was one.
  void forget_all(std::string_view reason);

  ApprovalsHealth describe() const;

  // Where answers run (Server::post); until set, on the asking thread.
  void answer_on(Post post);

  // Kills the askpass programs still open (their requests are denied) and
  // joins their threads.
  void stop();

 private:
  struct Question;

  Confirm confirm_of(std::string_view profile) const;
  void run_question(std::shared_ptr<Question> question);
  void decided(const std::string& profile, const Peer& peer, bool allowed, std::string_view how,
               std::string_view detail);
  void reap_finished();  // under mutex_

  const Config config_;
  AuditLog& audit_;
  Metrics& metrics_;
  bool any_confirmed_ = false;
  int stop_fd_ = -1;  // an eventfd: readable once stop() runs

  mutable std::mutex mutex_;
  Post post_;
  bool stopping_ = false;
  // profile -> uid '\0' requester source '\0' real path
  std::map<std::string, std::set<std::string>, std::less<>> approved_;
  // profile '\0' uid '\0' source '\0' program (and, unless shared, pids and a count) -> question
  std::map<std::string, std::shared_ptr<Question>> open_;
  std::uint64_t questions_asked_ = 0;
  std::optional<ApprovalDenial> last_denial_;
  std::vector<std::pair<std::thread, std::shared_ptr<Question>>> threads_;
};

}  // namespace kosli::daemon
