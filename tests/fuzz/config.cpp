// The configuration file's parser (daemon/config.*): a user-edited file, so
// anything may be in it; every problem must be a message, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/ops/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = kosli::daemon::parse_config(input, "fuzz.json");
  if (auto* error = std::get_if<kosli::daemon::ConfigError>(&parsed)) {
    if (error->message.empty()) __builtin_trap();  // every refusal says why
  }
  return 0;
}
