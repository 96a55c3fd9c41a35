#include "proto/answers.hpp"

#include <nlohmann/json.hpp>

#include "proto/codec_detail.hpp"
#include "proto/time_format.hpp"

namespace kosli {

namespace {

// An answer carries text from outside (a path, Kosli's message, a keyring's
// error): bytes that are not UTF-8 are written as U+FFFD rather than thrown
// out of the daemon's handler (nlohmann's default), which would end it.
std::string dump_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

using nlohmann::json;
using codec_detail::time_or_null;

json string_or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
json days_or_null(double days) { return days > 0 ? json(days) : json(nullptr); }

// Lenient readers: a missing, null or mistyped field gives the default.
std::string text(const json& j, const char* field) {
  const auto it = j.find(field);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t number(const json& j, const char* field) {
  const auto it = j.find(field);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}
double real(const json& j, const char* field) {
  const auto it = j.find(field);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}
bool flag(const json& j, const char* field, bool otherwise = false) {
  const auto it = j.find(field);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : otherwise;
}
std::int64_t time_at(const json& j, const char* field) {
  return parse_rfc3339(text(j, field)).value_or(0);
}
// The objects of an array field; none when it is missing or not an array.
std::vector<json> objects(const json& j, const char* field) {
  std::vector<json> out;
  const auto it = j.find(field);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& item : *it) {
    if (item.is_object()) out.push_back(item);
  }
  return out;
}

json to_json(const ExpiringKey& e) {
  return json{{"profile", e.profile},
              {"expires_at", format_rfc3339(e.expires_at)},
              {"days_left", e.days_left},
              {"expired", e.expired}};
}

json to_json(const RotationSchedule& r) {
  return json{{"profile", r.profile},
              {"rotate_every_days", days_or_null(r.rotate_every_days)},
              {"rotate_before_expiry_days", days_or_null(r.rotate_before_expiry_days)},
              {"due_at", time_or_null(r.due_at)},
              {"last_rotated_at", time_or_null(r.last_rotated_at)},
              {"last_attempt_at", time_or_null(r.last_attempt_at)},
              {"last_error", string_or_null(r.last_error)},
              {"next_attempt_at", time_or_null(r.next_attempt_at)}};
}

json to_json(const WaitingKey& w) {
  return json{{"profile", w.profile},
              {"fingerprint", w.fingerprint},
              {"key_id", string_or_null(w.key_id)},
              {"since", time_or_null(w.since)},
              {"attempts", w.attempts},
              {"last_error", string_or_null(w.last_error)},
              {"old_key_works_until", time_or_null(w.old_key_works_until)},
              {"save_by_hand", w.save_by_hand}};
}

json to_json(const RotateHookState& r) {
  return json{{"profile", r.profile},
              {"fingerprint", string_or_null(r.fingerprint)},
              {"result", string_or_null(r.result)},
              {"last_run_at", time_or_null(r.last_run_at)},
              {"attempts", r.attempts},
              {"last_error", string_or_null(r.last_error)},
              {"next_attempt_at", time_or_null(r.next_attempt_at)},
              {"gave_up", r.gave_up}};
}

json to_json(const AuditLogHealth& a) {
  json j{{"kind", a.kind}, {"ok", a.ok}};
  if (a.kind == "file") j["path"] = a.path;
  if (!a.ok) {
    j["error"] = a.error;
    j["failing_since"] = format_rfc3339(a.failing_since);
  }
  return j;
}

json to_json(const SessionHealth& s) {
  return json{{"forget_on", s.forget_on},
              {"notify", s.notify},
              {"last_forgot_at", time_or_null(s.last_forgot_at)},
              {"last_forgot_reason", string_or_null(s.last_forgot_reason)}};
}

json to_json(const ImportHealth& i) {
  json j{{"file", i.file}, {"watch", i.watch}, {"last_import_at", time_or_null(i.last_import_at)},
         {"refused", i.refused}};
  if (!i.last_error.empty()) {
    j["last_error"] = i.last_error;
    j["last_error_at"] = time_or_null(i.last_error_at);
  }
  return j;
}

}  // namespace

json to_json(const HealthAnswer& h) {
  json j{{"status", "ok"},
         {"version", h.version},
         {"backend", h.backend},
         {"persistent", h.persistent},
         {"uptime_s", h.uptime_s},
         {"cached", h.cached}};
  if (h.profiles) {
    j["profiles"] = *h.profiles;
    j["expiry_warning_days"] = h.expiry_warning_days;
    json expiring = json::array();
    for (const auto& e : h.expiring) expiring.push_back(to_json(e));
    j["expiring"] = std::move(expiring);
    json unknown = json::array();
    for (const auto& u : h.expiry_unknown) unknown.push_back(json{{"profile", u.profile}, {"how_to_learn", u.how_to_learn}});
    j["expiry_unknown"] = std::move(unknown);
  } else {
    j["profiles"] = nullptr;
    j["store_error"] = h.store_error;
  }
  if (h.rotates) {
    json rotation = json::array(), waiting = json::array();
    for (const auto& r : h.rotation) rotation.push_back(to_json(r));
    for (const auto& w : h.waiting_keys) waiting.push_back(to_json(w));
    j["rotation"] = std::move(rotation);
    j["waiting_keys"] = std::move(waiting);
  }
  if (h.audit_log) j["audit_log"] = to_json(*h.audit_log);
  if (h.session) j["session"] = to_json(*h.session);
  if (!h.rotate_hooks.empty()) {
    json hooks = json::array();
    for (const auto& r : h.rotate_hooks) hooks.push_back(to_json(r));
    j["rotate_hooks"] = std::move(hooks);
  }
  if (h.import) j["import"] = to_json(*h.import);
  if (h.approvals) j["approvals"] = to_json(*h.approvals);
  return j;
}

std::string serialize(const HealthAnswer& answer) { return dump_text(to_json(answer)); }

std::optional<HealthAnswer> health_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  HealthAnswer h;
  h.version = text(j, "version");
  h.backend = text(j, "backend");
  h.persistent = flag(j, "persistent");
  h.uptime_s = number(j, "uptime_s");
  h.cached = number(j, "cached");
  if (const auto it = j.find("profiles"); it != j.end() && it->is_number()) h.profiles = it->get<std::int64_t>();
  h.store_error = text(j, "store_error");
  h.expiry_warning_days = static_cast<int>(number(j, "expiry_warning_days"));
  for (const auto& e : objects(j, "expiring")) {
    h.expiring.push_back(ExpiringKey{text(e, "profile"), time_at(e, "expires_at"), number(e, "days_left"),
                                     flag(e, "expired")});
  }
  for (const auto& u : objects(j, "expiry_unknown")) {
    h.expiry_unknown.push_back(UnknownExpiry{text(u, "profile"), text(u, "how_to_learn")});
  }
  h.rotates = j.contains("rotation") || j.contains("waiting_keys");
  for (const auto& r : objects(j, "rotation")) {
    h.rotation.push_back(RotationSchedule{text(r, "profile"), real(r, "rotate_every_days"),
                                          real(r, "rotate_before_expiry_days"),
                                          time_at(r, "due_at"), time_at(r, "last_rotated_at"),
                                          time_at(r, "last_attempt_at"), text(r, "last_error"),
                                          time_at(r, "next_attempt_at")});
  }
  for (const auto& w : objects(j, "waiting_keys")) {
    h.waiting_keys.push_back(WaitingKey{text(w, "profile"), text(w, "fingerprint"), text(w, "key_id"),
                                        time_at(w, "since"), static_cast<int>(number(w, "attempts")),
                                        text(w, "last_error"), time_at(w, "old_key_works_until"),
                                        text(w, "save_by_hand")});
  }
  if (const auto it = j.find("audit_log"); it != j.end() && it->is_object()) {
    h.audit_log = AuditLogHealth{text(*it, "kind"), text(*it, "path"), flag(*it, "ok"), text(*it, "error"),
                                 time_at(*it, "failing_since")};
  }
  if (const auto it = j.find("session"); it != j.end() && it->is_object()) {
    SessionHealth s;
    if (const auto on = it->find("forget_on"); on != it->end() && on->is_array()) {
      for (const auto& what : *on) {
        if (what.is_string()) s.forget_on.push_back(what.get<std::string>());
      }
    }
    s.notify = flag(*it, "notify");
    s.last_forgot_at = time_at(*it, "last_forgot_at");
    s.last_forgot_reason = text(*it, "last_forgot_reason");
    h.session = std::move(s);
  }
  for (const auto& r : objects(j, "rotate_hooks")) {
    h.rotate_hooks.push_back(RotateHookState{text(r, "profile"), text(r, "fingerprint"), text(r, "result"),
                                             time_at(r, "last_run_at"), static_cast<int>(number(r, "attempts")),
                                             text(r, "last_error"), time_at(r, "next_attempt_at"),
                                             flag(r, "gave_up")});
  }
  if (const auto it = j.find("import"); it != j.end() && it->is_object()) {
    h.import = ImportHealth{text(*it, "file"), flag(*it, "watch"), time_at(*it, "last_import_at"),
                            number(*it, "refused"), text(*it, "last_error"), time_at(*it, "last_error_at")};
  }
  if (const auto it = j.find("approvals"); it != j.end() && it->is_object()) h.approvals = approvals_from_json(*it);
  return h;
}

json to_json(const ListAnswer& answer) {
  json list = json::array();
  for (const auto& meta : answer.profiles) list.push_back(to_json(meta));
  return json{{"profiles", std::move(list)}};
}

std::string serialize(const ListAnswer& answer) { return dump_text(to_json(answer)); }

std::optional<ListAnswer> list_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ListAnswer answer;
  const auto it = j.find("profiles");
  if (it == j.end() || !it->is_array()) return answer;
  for (const auto& item : *it) {
    if (auto meta = profile_from_json(item)) {
      answer.profiles.push_back(std::move(*meta));
    } else {
      ++answer.unreadable;
    }
  }
  return answer;
}

json to_json(const VerifyAnswer& v) {
  json j{{"profile", v.profile},
         {"org", v.org},
         {"host", v.host},
         {"fingerprint", v.fingerprint},
         {"valid", v.result == kVerifyValid || v.result == kVerifyForbidden},
         {"result", v.result},
         {"kosli_status", v.kosli_status == 0 ? json(nullptr) : json(v.kosli_status)},
         {"checked_at", v.checked_at == 0 ? json(nullptr) : json(format_rfc3339(v.checked_at))},
         {"message", v.message}};
  j["expires_at"] = time_or_null(v.expires_at);
  j["expiry_source"] = v.expires_at == 0 ? json(nullptr) : string_or_null(v.expiry_source);
  if (!v.warning.empty()) j["warning"] = v.warning;
  return j;
}

std::string serialize(const VerifyAnswer& answer) { return dump_text(to_json(answer)); }

std::optional<VerifyAnswer> verify_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  return VerifyAnswer{text(j, "profile"),     text(j, "org"),
                      text(j, "host"),        text(j, "fingerprint"),
                      text(j, "result"),      static_cast<int>(number(j, "kosli_status")),
                      time_at(j, "checked_at"), text(j, "message"),
                      text(j, "warning"),     time_at(j, "expires_at"),
                      text(j, "expiry_source")};
}

json to_json(const RotateAnswer& r) {
  json j{{"profile", to_json(r.profile)},
         {"previous_fingerprint", r.previous_fingerprint},
         {"via_api", r.via_api},
         {"verified", r.verify_result == kVerifyValid},
         {"verify_result", string_or_null(r.verify_result)},
         {"grace_period_expires_at", time_or_null(r.grace_period_expires_at)},
         {"stored", true}};
  if (!r.warning.empty()) j["warning"] = r.warning;
  return j;
}

std::string serialize(const RotateAnswer& answer) { return dump_text(to_json(answer)); }

std::optional<RotateAnswer> rotate_answer_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  const auto it = j.find("profile");
  auto meta = it != j.end() ? profile_from_json(*it) : std::nullopt;
  if (!meta) return std::nullopt;
  return RotateAnswer{std::move(*meta), text(j, "previous_fingerprint"), flag(j, "via_api"),
                      text(j, "verify_result"), time_at(j, "grace_period_expires_at"), text(j, "warning")};
}

}  // namespace kosli
