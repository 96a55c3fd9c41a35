// kosli-cred doctor: the checks that ask the socket and the daemon, and the
// report. What lies outside the daemon is checked in client/doctor_system.cpp.
#include "client/doctor.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/api.hpp"
#include "client/cli_error.hpp"
#include "client/expiry_text.hpp"
#include "client/git_setup.hpp"
#include "proto/answers.hpp"
#include "proto/display.hpp"
#include "proto/errors.hpp"
#include "proto/socket_path.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {
namespace {

using Status = DoctorCheck::Status;

std::string_view status_name(Status status) {
  switch (status) {
    case Status::ok: return "ok";
    case Status::warn: return "warn";
    case Status::fail: return "fail";
    case Status::skip: return "skip";
  }
  return "fail";
}

// A sentence of the kind proto and the daemon write ("what is wrong; what to
// do", or "… fix it with: COMMAND") split into the finding and the fix.
DoctorCheck advised(std::string check, Status status, const std::string& sentence) {
  const std::string safe = display_safe(sentence);
  constexpr std::string_view kWith = "fix it with: ";
  if (const auto at = safe.find(kWith); at != std::string::npos) {
    auto finding = safe.substr(0, std::min(at, safe.find("; ")));
    while (!finding.empty() && (finding.back() == ' ' || finding.back() == ',' || finding.back() == ';')) {
      finding.pop_back();
    }
    return {std::move(check), status, finding, safe.substr(at + kWith.size())};
  }
  if (const auto at = safe.find("; "); at != std::string::npos) {
    return {std::move(check), status, safe.substr(0, at), safe.substr(at + 2)};
  }
  return {std::move(check), status, safe, ""};
}

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// The socket's directory and the socket, by proto's trust rules (those every
// connection applies). True when the client may talk to what is there.
bool check_socket(const std::string& socket_path, std::optional<uid_t> daemon_uid, std::vector<DoctorCheck>& checks) {
  if (auto problem = socket_trust_problem(socket_path, daemon_uid)) {
    checks.push_back(advised("socket", Status::fail, *problem));
    return false;
  }
  const std::string dir = socket_directory(socket_path);
  const std::string where = display_safe(socket_path);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    checks.push_back({"socket", Status::ok, "no socket directory " + display_safe(dir) + " yet (kosli-credd makes it)", ""});
  } else if (const mode_t dir_mode = st.st_mode; ::lstat(socket_path.c_str(), &st) != 0) {
    checks.push_back({"socket", Status::ok,
                      "directory " + display_safe(dir) + " is yours (mode " + octal(dir_mode) + "); no socket " + where +
                          " yet (kosli-credd makes it)",
                      ""});
  } else {
    checks.push_back({"socket", Status::ok,
                      where + ": directory mode " + octal(dir_mode) + ", socket mode " + octal(st.st_mode) +
                          ", owned by uid " + std::to_string(st.st_uid),
                      ""});
  }
  return true;
}

std::string daemon_start_fix(bool systemd) {
  return systemd ? "systemctl --user enable --now kosli-credd.socket" : "kosli-credd --idle-exit 600 &";
}

std::string rotate_fix(const ProfileMeta& p, bool expired) {
  const std::string name = display_safe(p.name);
  if (!expired && p.kind == KeyKind::service_account && !p.key_id.empty()) {
    return "kosli-cred rotate --profile " + name + " --via-api";
  }
  return "kosli-cred rotate --profile " + name + " < new-key (a new key from Kosli)";
}

DoctorCheck expiry_check(const ProfileMeta& p, int warning_days, std::int64_t now) {
  const std::string check = "expiry:" + display_safe(p.name);
  if (p.expires_at == 0) {
    // "why; give it: COMMAND": the command is the fix.
    const std::string how = display_safe(how_to_learn_expiry(p));
    const auto command = how.find("kosli-cred ");
    std::string why = how.substr(0, command);
    while (!why.empty() && (why.back() == ' ' || why.back() == ':')) why.pop_back();
    return {check, Status::warn, "the key's expiry is unknown (" + why + ")",
            command == std::string::npos ? std::string() : how.substr(command)};
  }
  const std::string at = format_rfc3339(p.expires_at);
  if (p.expires_at <= now) {
    return {check, Status::fail, "the key expired at " + at + "; no token is handed out for it", rotate_fix(p, true)};
  }
  if (expiring_within(p.expires_at, warning_days, now)) {
    return {check, Status::warn, "the key expires " + days_left_text(p.expires_at) + " (" + at + ")",
            rotate_fix(p, false)};
  }
  return {check, Status::ok, "the key expires " + days_left_text(p.expires_at) + " (" + at + ")", ""};
}

DoctorCheck verify_result_check(const std::string& check, const ProfileMeta& p, const std::string& result,
                                std::int64_t at) {
  const std::string when = at == 0 ? std::string() : " at " + format_rfc3339(at);
  if (result == kVerifyValid) return {check, Status::ok, "Kosli accepted the key" + when, ""};
  if (result == kVerifyInvalid) {
    return {check, Status::fail, "Kosli rejected the key" + when + " (invalid, revoked or expired)",
            rotate_fix(p, true)};
  }
  if (result == kVerifyForbidden) {
    return {check, Status::fail,
            "the key works, but not for org " + display_safe(p.org) + " (Kosli said so" + when + ")",
            "kosli-cred store --profile " + display_safe(p.name) + " --org ORG (the org the key belongs to)"};
  }
  return {check, Status::ok, "not verified with Kosli yet (kosli-cred doctor --online asks)", ""};
}

void check_daemon(DaemonClient& daemon, bool online, bool systemd, std::vector<DoctorCheck>& checks,
                  std::vector<ProfileMeta>& profiles) {
  std::optional<HealthAnswer> health;
  try {
    health = api::health(daemon).value;
  } catch (const CliError& e) {
    if (e.exit_code == exit_code::daemon_unreachable) {
      auto check = advised("daemon", Status::fail, e.what());  // "kosli-credd is not running; start it …"
      check.detail += " at " + display_safe(daemon.socket_path());
      check.fix = daemon_start_fix(systemd);
      // A directory the client may trust but a daemon of this user's would refuse
      // to start in (proto's rule for it; the directory exists, so nothing is made).
      const std::string dir = socket_directory(daemon.socket_path());
      struct stat st {};
      if (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        if (auto refused = ensure_private_directory(dir)) {
          const auto said = advised("daemon", Status::fail, *refused);
          check.detail += "; kosli-credd would not start there: " + said.detail;
          check.fix = said.fix + ", then: " + check.fix;
        }
      }
      checks.push_back(std::move(check));
    } else {
      checks.push_back(advised("daemon", Status::fail, e.what()));
    }
    return;
  }
  const HealthAnswer& h = *health;
  checks.push_back({"daemon", Status::ok,
                    "kosli-credd answers at " + display_safe(daemon.socket_path()) + " (up " +
                        std::to_string(h.uptime_s) + " s)",
                    ""});
  if (h.version == KOSLI_VERSION) {
    checks.push_back({"version", Status::ok, "kosli-credd and kosli-cred are both " + display_safe(h.version), ""});
  } else {
    checks.push_back({"version", Status::warn,
                      "kosli-credd is " + display_safe(h.version.empty() ? "of an unknown version" : h.version) +
                          ", kosli-cred " + KOSLI_VERSION + " (an old daemon still running after an upgrade?)",
                      systemd ? "systemctl --user restart kosli-credd"
                              : "stop the old kosli-credd; kosli-cred starts the new one when next asked"});
  }
  if (!h.profiles) {
    checks.push_back(
        advised("backend", Status::fail,
                "backend " + h.backend + ": " + (h.store_error.empty() ? "the store did not answer" : h.store_error)));
    return;
  }
  if (!h.persistent) {
    checks.push_back({"backend", Status::warn,
                      "backend " + display_safe(h.backend) + ": keys are lost when kosli-credd stops",
                      "start kosli-credd with --backend secret-service (a keyring on the session bus)"});
  } else {
    checks.push_back({"backend", Status::ok,
                      "backend " + display_safe(h.backend) + " answers, unlocked; " + std::to_string(*h.profiles) +
                          " profile(s)",
                      ""});
  }
  try {
    profiles = api::list(daemon).value.profiles;
  } catch (const CliError& e) {
    checks.push_back(advised("profiles", Status::fail, e.what()));
    return;
  }
  const std::int64_t now = now_s();
  for (const auto& p : profiles) {
    checks.push_back(expiry_check(p, h.expiry_warning_days, now));
    checks.push_back(verify_result_check("verified:" + display_safe(p.name), p, p.last_verify_result, p.last_verified_at));
  }
  if (!online) return;
  for (const auto& p : profiles) {
    const std::string check = "online:" + display_safe(p.name);
    try {
      const auto v = api::verify(daemon, p.name).value;
      checks.push_back(verify_result_check(check, p, v.result.empty() ? std::string("?") : v.result, v.checked_at));
      if (checks.back().status == Status::ok && v.result != kVerifyValid) {
        checks.back() = {check, Status::fail, "Kosli's answer could not be read: " + display_safe(v.message), ""};
      }
    } catch (const CliError& e) {
      checks.push_back(advised(check, Status::fail, e.what()));
    }
  }
}

// Runs one group of checks; what it throws is a FAIL of its own, and the others still run.
template <class Group>
void guarded(const char* name, std::vector<DoctorCheck>& checks, Group&& group) {
  try {
    group();
  } catch (const std::exception& e) {
    checks.push_back({name, Status::fail, "the check stopped: " + display_safe(e.what()), ""});
  }
}

std::vector<DoctorCheck> run_checks(DaemonClient& daemon, std::optional<uid_t> daemon_uid, bool online) {
  std::vector<DoctorCheck> checks;
  const bool systemd = systemd_user_answers();
  std::vector<ProfileMeta> profiles;
  guarded("daemon", checks, [&] {
    if (check_socket(daemon.socket_path(), daemon_uid, checks)) {
      check_daemon(daemon, online, systemd, checks, profiles);
    } else {
      checks.push_back({"daemon", Status::skip, "not asked: the socket is not to be trusted (see socket)", ""});
    }
  });
  guarded("config", checks, [&] { checks.push_back(config_check()); });
  guarded("systemd", checks, [&] {
    for (auto& c : systemd_checks(daemon.socket_path())) checks.push_back(std::move(c));
  });
  guarded("git", checks, [&] { checks.push_back(git_check(kosli_git_urls(profiles))); });
  return checks;
}

}  // namespace

int cmd_doctor(DaemonClient& daemon, std::optional<uid_t> daemon_uid, bool json, bool online) {
  std::vector<DoctorCheck> checks;
  try {
    checks = run_checks(daemon, daemon_uid, online);
  } catch (const std::exception& e) {  // whatever fails, the report is printed (and is JSON with --json)
    checks.push_back({"doctor", Status::fail, "the checks stopped: " + display_safe(e.what()), ""});
  }
  bool failed = false;
  for (const auto& c : checks) failed = failed || c.status == Status::fail;
  if (json) {
    auto out = nlohmann::json::array();
    for (const auto& c : checks) {
      out.push_back({{"check", c.check}, {"status", status_name(c.status)}, {"detail", c.detail},
                     {"fix", c.fix.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.fix)}});
    }
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    for (const auto& c : checks) {
      const std::string_view label = c.status == Status::fail ? "FAIL" : status_name(c.status);
      std::printf("%-4.*s  %s: %s%s%s\n", static_cast<int>(label.size()), label.data(), c.check.c_str(),
                  c.detail.c_str(), c.fix.empty() ? "" : "; fix: ", c.fix.c_str());
    }
  }
  return failed ? exit_code::error : exit_code::ok;
}

}  // namespace kosli::client
