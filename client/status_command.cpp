// `kosli-cred status`: what the daemon says about itself (GET /v1/health), one
// line per fact, or its JSON. Never starts a daemon (client/main.cpp).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "client/approvals_status.hpp"
#include "client/commands.hpp"
#include "client/expiry_text.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {

int cmd_status(DaemonClient& daemon, bool as_json) {
  const auto answer = api::health(daemon);
  if (as_json) {
    std::printf("%s\n", answer.json.dump(2).c_str());
    return exit_code::ok;
  }
  const HealthAnswer& h = answer.value;
  const auto or_unknown = [](const std::string& s) { return s.empty() ? std::string("?") : s; };
  std::printf("kosli-credd %s serving %s\n", or_unknown(h.version).c_str(), daemon.socket_path().c_str());
  std::printf("backend:   %s%s\n", or_unknown(h.backend).c_str(),
              h.persistent ? "" : " (keys are lost when the daemon stops)");
  if (h.profiles) {
    std::printf("profiles:  %d\n", static_cast<int>(*h.profiles));
  } else {
    std::printf("profiles:  unknown: %s\n",
                display_safe(h.store_error.empty() ? "the store did not answer" : h.store_error).c_str());
  }
  std::printf("cached:    %d key(s)\n", static_cast<int>(h.cached));
  std::printf("uptime:    %lld s\n", static_cast<long long>(h.uptime_s));
  // What the daemon relays (a rotation's error may quote Kosli), escaped for the terminal.
  const auto text = [](const std::string& s) { return display_safe(s); };
  const auto at = [](std::int64_t t) { return t == 0 ? std::string() : format_rfc3339(t); };
  for (const auto& e : h.expiring) {
    if (e.expired) {
      std::printf("expiry:    profile '%s': the key expired at %s; no token is handed out for it\n",
                  text(e.profile).c_str(), at(e.expires_at).c_str());
    } else {
      std::printf("expiry:    profile '%s': the key expires %s (%s)\n", text(e.profile).c_str(),
                  days_left_text(e.expires_at).c_str(), at(e.expires_at).c_str());
    }
  }
  for (const auto& u : h.expiry_unknown) {
    std::printf("expiry:    profile '%s': unknown: %s\n", text(u.profile).c_str(), text(u.how_to_learn).c_str());
  }
  for (const auto& r : h.rotation) {
    std::string line = "rotation:  profile '" + text(r.profile) + "': ";
    if (!r.last_error.empty()) {
      line += "the last scheduled rotation FAILED at " + at(r.last_attempt_at) + ": " + text(r.last_error) +
              "; next attempt at " + at(r.next_attempt_at);
    } else {
      line += r.due_at == 0 ? "scheduled, nothing due" : "next due at " + at(r.due_at);
      if (r.last_rotated_at != 0) line += "; last rotated at " + at(r.last_rotated_at);
    }
    std::printf("%s\n", line.c_str());
  }
  for (const auto& r : h.rotate_hooks) {
    std::string line = "hook:      profile '" + text(r.profile) + "': ";
    if (r.result.empty()) {
      line += "on_rotate has not run since kosli-credd started";
    } else if (r.gave_up) {
      line += "on_rotate GAVE UP on key " + text(r.fingerprint) + " after " + std::to_string(r.attempts) +
              " attempt(s) (" + text(r.last_error) + "); publish the key by hand";
    } else {
      line += "on_rotate for key " + text(r.fingerprint) + ": " + text(r.result) + " at " + at(r.last_run_at) +
              " (" + std::to_string(r.attempts) + " attempt(s)";
      if (!r.last_error.empty()) line += "; " + text(r.last_error);
      line += ")";
      if (r.next_attempt_at != 0) line += "; next attempt at " + at(r.next_attempt_at);
    }
    std::printf("%s\n", line.c_str());
    if (r.gave_up) std::fprintf(stderr, "kosli-cred: warning: the on_rotate hook of profile '%s' gave up\n", text(r.profile).c_str());
  }
  if (h.audit_log) {
    const auto& audit = *h.audit_log;
    const std::string where = audit.kind == "file" ? text(audit.path) : text(audit.kind);
    if (audit.ok) {
      std::printf("audit log: %s\n", where.c_str());
    } else {
      std::printf("audit log: %s is NOT BEING WRITTEN since %s: %s; tokens are still served\n", where.c_str(),
                  at(audit.failing_since).c_str(), text(audit.error).c_str());
      std::fprintf(stderr,
                   "kosli-cred: warning: the audit log is not being written; see 'audit log' above, fix it, then "
                   "reopen it: systemctl --user reload kosli-credd (or send kosli-credd SIGHUP)\n");
    }
  }
  if (h.session) {
    std::string on;
    for (const auto& what : h.session->forget_on) on += (on.empty() ? "" : ", ") + text(what);
    const std::string last = h.session->last_forgot_at == 0
                                 ? std::string()
                                 : "; last forgot at " + at(h.session->last_forgot_at) + " (" +
                                       text(h.session->last_forgot_reason) + ")";
    std::printf("forget:    cached keys are forgotten on %s%s\n",
                on.empty() ? "nothing (no screen lock, sleep or keyring watched)" : on.c_str(), last.c_str());
  }
  if (h.import) {
    const auto& i = *h.import;
    std::string line = "import:    " + text(i.file) + (i.watch ? " (watched)" : "") + ": last taken at " +
                       at(i.last_import_at);
    if (!i.last_error.empty()) {
      line += "; the latest publish was REFUSED at " + at(i.last_error_at) + ": " + text(i.last_error) +
              "; the keys before it are still served";
    }
    std::printf("%s\n", line.c_str());
  }
  if (h.approvals) print_approvals(*h.approvals);
  for (const auto& w : h.waiting_keys) {
    std::printf("waiting:   profile '%s': a rotated key (%s) is held in kosli-credd's memory only, NOT in the "
                "keyring (%d attempts; last error: %s); keep kosli-credd running, or save it by hand: %s\n",
                text(w.profile).c_str(), text(w.fingerprint).c_str(), w.attempts, text(w.last_error).c_str(),
                text(w.save_by_hand).c_str());
  }
  if (!h.waiting_keys.empty()) {
    std::fprintf(stderr, "kosli-cred: warning: %zu rotated key(s) are not in the keyring yet; see 'waiting' above\n",
                 h.waiting_keys.size());
  }
  return exit_code::ok;
}

}  // namespace kosli::client
