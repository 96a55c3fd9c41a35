// What the full command line says when CLI11 cannot parse it, without echoing a
// value: a key typed as an argument by mistake must not land in a CI log.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <CLI/Error.hpp>
#include <CLI/Validators.hpp>

namespace CLI {
class App;
}

namespace kosli::client {

// CLI11's failure message (App::failure_message) for `args`, the command line
// being parsed: option names are shown, values never. An unexpected argument,
// a value that cannot be converted or is not valid, and any message that
// quotes one of `args` get a sentence without it.
std::function<std::string(const CLI::App*, const CLI::Error&)> failure_message_without_values(
    const std::vector<char*>& args);

// CLI::IsMember, with a failure message that does not repeat the value.
CLI::Validator one_of(std::initializer_list<std::string> choices);

}  // namespace kosli::client
