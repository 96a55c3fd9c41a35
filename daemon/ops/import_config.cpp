#include "daemon/ops/import_config.hpp"

#include <nlohmann/json.hpp>

namespace kosli::daemon {

std::optional<std::string> read_import_config(const nlohmann::json& value, const std::string& key,
                                              ImportConfig& out) {
  out.single_key = key == "import_key";
  const std::string known = out.single_key ? "file, org, host, profile, kind, service_account, key_id, watch"
                                           : "file, watch";
  if (!value.is_object()) return "'" + key + "' must be an object (" + known + ")";
  for (const auto& [field, v] : value.items()) {
    const std::string name = "'" + key + "." + field + "'";
    if (field == "watch") {
      if (!v.is_boolean()) return name + " must be true or false";
      out.watch = v.get<bool>();
      continue;
    }
    std::string* text = field == "file" ? &out.file : nullptr;
    if (out.single_key) {
      if (field == "org") text = &out.org;
      if (field == "host") text = &out.host;
      if (field == "profile") text = &out.profile;
      if (field == "kind") text = &out.kind;
      if (field == "service_account") text = &out.service_account;
      if (field == "key_id") text = &out.key_id;
    }
    if (text == nullptr) return name + " is not a known setting (known: " + known + ")";
    if (!v.is_string() || v.get_ref<const std::string&>().empty()) return name + " must be a non-empty string";
    *text = v.get<std::string>();
  }
  if (out.file.empty()) return "'" + key + ".file' is missing: the path of the file to import";
  if (out.single_key && out.org.empty()) return "'" + key + ".org' is missing: the Kosli organisation of the key";
  if (out.kind.size() && out.kind != "service-account" && out.kind != "personal") {
    return "'" + key + ".kind' must be \"service-account\" or \"personal\"";
  }
  return std::nullopt;
}

}  // namespace kosli::daemon
