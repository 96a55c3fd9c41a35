// What each of kosli-cred's two programs does first, in one place: which of
// them runs (each finds the other, and kosli-credd, at its own relative path:
// client/CMakeLists.txt), no core files, SIGPIPE ignored.
#pragma once

#include <optional>
#include <string>

namespace kosli::client {

enum class Program {
  fast,  // bin/kosli-cred: the plain forms of token, header and exec (client/fast_path.hpp)
  full,  // libexec/kosli-cred/kosli-cred: the full command line (CLI11)
};

// Call first in main. Turns core files off (client/core_dumps.hpp), ignores
// SIGPIPE (a daemon that closes mid-request gives an error, not a killed
// client), and records which program runs.
void start_process(Program program) noexcept;

// Where kosli-credd is installed, for the program start_process named:
// "<this program's directory><relative path>/kosli-credd"; nullopt when
// start_process was not called or the directory cannot be read.
std::optional<std::string> installed_credd_path();

// The full command line's path, from bin/kosli-cred's directory `bindir`
// (ending in '/').
std::string full_command_line_path(const std::string& bindir);

}  // namespace kosli::client
