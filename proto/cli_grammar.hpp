// `--dump-grammar` (hidden, not in --help): every command and option a CLI11
// app knows, one a line, for scripts/check-docs, which checks the man pages and
// the bash completion against it so that they cannot drift from the programs.
//   command store            command git setup
//   option - --socket        (before or after any command)
//   option store --org       option store -p
// Header-only, for the two programs that link CLI11: kosli-cred's full command
// line and kosli-credd.
#pragma once

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

namespace kosli {

inline constexpr const char* kDumpGrammarFlag = "--dump-grammar";

inline void dump_grammar(const CLI::App& app, const std::string& path = "-") {
  for (const CLI::Option* option : app.get_options()) {
    if (option == app.get_help_ptr() || option == app.get_help_all_ptr() || option->get_positional()) continue;
    if (option->get_single_name() == "version") continue;
    for (const auto& name : option->get_lnames()) std::printf("option %s --%s\n", path.c_str(), name.c_str());
    for (const auto& name : option->get_snames()) std::printf("option %s -%s\n", path.c_str(), name.c_str());
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string sub_path = path == "-" ? sub->get_name() : path + " " + sub->get_name();
    std::printf("command %s\n", sub_path.c_str());
    dump_grammar(*sub, sub_path);
  }
}

}  // namespace kosli
