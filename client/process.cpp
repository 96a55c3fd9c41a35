#include "client/process.hpp"

#include <csignal>

#include "client/core_dumps.hpp"
#include "client/program_dir.hpp"

// The installed layout, relative paths between the bin directory and the full
// command line's (client/CMakeLists.txt sets both; the build tree has the same).
#ifndef KOSLI_CLI_DIR_FROM_BINDIR
#error "client/CMakeLists.txt defines KOSLI_CLI_DIR_FROM_BINDIR"
#endif
#ifndef KOSLI_BINDIR_FROM_CLI_DIR
#error "client/CMakeLists.txt defines KOSLI_BINDIR_FROM_CLI_DIR"
#endif

namespace kosli::client {
namespace {

std::optional<Program> g_running;

}  // namespace

void start_process(Program program) noexcept {
  g_running = program;
  disable_core_dumps();
  std::signal(SIGPIPE, SIG_IGN);
}

std::optional<std::string> installed_credd_path() {
  if (!g_running) return std::nullopt;
  auto dir = this_program_directory();
  if (!dir) return std::nullopt;
  // kosli-credd lies in the bin directory: beside bin/kosli-cred.
  return *dir + (*g_running == Program::fast ? "." : KOSLI_BINDIR_FROM_CLI_DIR) + "/kosli-credd";
}

std::string full_command_line_path(const std::string& bindir) {
  return bindir + KOSLI_CLI_DIR_FROM_BINDIR "/kosli-cred";
}

}  // namespace kosli::client
