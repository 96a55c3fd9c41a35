#include "daemon/ops/hook_config.hpp"

#include <nlohmann/json.hpp>

namespace kosli::daemon {

std::optional<std::string> read_hook_command(const nlohmann::json& value, std::vector<std::string>& argv) {
  const std::string what =
      "must be a list of strings: an absolute program path, then its arguments (no shell; the new key goes to its "
      "standard input), e.g. [\"/usr/local/bin/publish-key\", \"--name\", \"kosli\"]";
  if (!value.is_array() || value.empty()) return what;
  std::vector<std::string> read;
  for (const auto& arg : value) {
    if (!arg.is_string()) return what;
    const auto& text = arg.get_ref<const std::string&>();
    if (text.find('\0') != std::string::npos) return what;
    read.push_back(text);
  }
  if (read.front().empty() || read.front().front() != '/') return what;
  argv = std::move(read);
  return std::nullopt;
}

}  // namespace kosli::daemon
