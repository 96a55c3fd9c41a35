#include "proto/secret_json.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "proto/display.hpp"

namespace kosli {

std::optional<std::string> parse_secret_json(std::string& text, SecretJson& out) {
  // The field names of each object open at the moment (they name fields, never
  // hold a key).
  std::vector<std::vector<std::string>> open;
  std::optional<std::string> twice;
  const SecretJson::parser_callback_t check = [&](int, nlohmann::detail::parse_event_t event, SecretJson& parsed) {
    using Event = nlohmann::detail::parse_event_t;
    if (event == Event::object_start) {
      open.emplace_back();
    } else if (event == Event::object_end && !open.empty()) {
      open.pop_back();
    } else if (event == Event::key && !open.empty()) {
      std::string name(parsed.get_ref<const WipingString&>());
      auto& names = open.back();
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        if (!twice) twice = std::move(name);
      } else {
        names.push_back(std::move(name));
      }
    }
    return true;
  };
  out = SecretJson::parse(text, check, /*allow_exceptions=*/false);
  wipe(text);
  if (out.is_discarded()) return "not valid JSON (UTF-8)";
  if (twice) {
    out = nullptr;
    constexpr std::size_t kShownBytes = 64;
    return "the field '" + display_safe(std::string_view(*twice).substr(0, kShownBytes)) +
           "' is given twice; send each field once";
  }
  return std::nullopt;
}

}  // namespace kosli
