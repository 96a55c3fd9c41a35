// The configuration's "on_rotate" (per profile): a rotation hook's command as a
// JSON list of strings, run without a shell (daemon/keys/rotate_hooks.hpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kosli::daemon {

// Reads `value` into `argv`: a non-empty list of strings, the first an absolute
// program path, none holding a NUL. Otherwise what is wrong with it, to follow
// the setting's name in the error.
std::optional<std::string> read_hook_command(const nlohmann::json& value, std::vector<std::string>& argv);

}  // namespace kosli::daemon
