#include "proto/approvals_answer.hpp"

#include <nlohmann/json.hpp>

#include "proto/codec_detail.hpp"

namespace kosli {
namespace {

using nlohmann::json;

std::string text(const json& j, const char* field) {
  const auto it = j.find(field);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json to_json(const ApprovalsHealth& a) {
  json approved = json::array();
  for (const auto& p : a.approved) approved.push_back({{"profile", p.profile}, {"programs", p.programs}});
  json j{{"approved", std::move(approved)}, {"last_denial", nullptr}};
  if (a.last_denial) {
    const auto& d = *a.last_denial;
    j["last_denial"] = {{"profile", d.profile},
                        {"program", d.program},
                        {"pid", d.pid},
                        {"how", d.how},
                        {"at", codec_detail::time_or_null(d.at)}};
  }
  return j;
}

ApprovalsHealth approvals_from_json(const json& j) {
  ApprovalsHealth a;
  if (!j.is_object()) return a;
  if (const auto it = j.find("approved"); it != j.end() && it->is_array()) {
    for (const auto& p : *it) {
      if (!p.is_object()) continue;
      ApprovedPrograms entry{text(p, "profile"), {}};
      if (const auto programs = p.find("programs"); programs != p.end() && programs->is_array()) {
        for (const auto& program : *programs) {
          if (program.is_string()) entry.programs.push_back(program.get<std::string>());
        }
      }
      a.approved.push_back(std::move(entry));
    }
  }
  if (const auto it = j.find("last_denial"); it != j.end() && it->is_object()) {
    ApprovalDenial d{text(*it, "profile"), text(*it, "program"), 0, text(*it, "how"), 0};
    if (const auto pid = it->find("pid"); pid != it->end() && pid->is_number_integer()) d.pid = pid->get<std::int64_t>();
    if (const auto at = it->find("at"); at != it->end()) d.at = codec_detail::time_from_json(*at).value_or(0);
    a.last_denial = std::move(d);
  }
  return a;
}

}  // namespace kosli
