// git's credential-helper input (client/git_credential.*): what git, or any
// program that runs `git credential fill`, writes to the helper's stdin.
//
// Besides crashes and sanitizer reports, it traps when a parsed credential
// carries a NUL or a newline in a field (each would break the answer's lines).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/git_credential.hpp"

namespace {

bool has_line_break_or_nul(std::string_view s) { return s.find_first_of(std::string_view("\0\n", 2)) != s.npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = kosli::client::parse_git_credential(input);
  if (auto* c = std::get_if<kosli::client::GitCredential>(&parsed)) {
    for (std::string_view field : {std::string_view(c->protocol), std::string_view(c->host),
                                   std::string_view(c->username), c->password.reveal()}) {
      if (has_line_break_or_nul(field)) __builtin_trap();
    }
  }
  return 0;
}
