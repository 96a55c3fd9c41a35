#include "client/cli_failure.hpp"

#include <algorithm>
#include <string_view>

#include <CLI/App.hpp>

namespace kosli::client {
namespace {

// Arguments shorter than this are not searched for in a message: no key is so
// short, and a word such as "eu" would match innocent text.
constexpr std::size_t kShortestQuotable = 4;

constexpr std::string_view kNotShown = "(not shown, in case it is a key)";
constexpr std::string_view kNoKeyArguments = "(not shown, in case it is a key: a key is never given as an "
                                             "argument; pipe it in on stdin)";

// The option an error's message begins with ("--region: …"), or "".
std::string option_named(std::string_view message) {
  if (!message.starts_with("-")) return {};
  const auto end = message.find_first_of(": =");
  return std::string(message.substr(0, end));
}

// The values on the command line: arguments that are not option names, and
// what follows '=' in "--name=value".
bool quotes_a_value(std::string_view message, const std::vector<char*>& args) {
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string_view value = args[i];
    if (value.starts_with("-")) {
      const auto eq = value.find('=');
      if (eq == std::string_view::npos) continue;
      value = value.substr(eq + 1);
    }
    if (value.size() >= kShortestQuotable && message.find(value) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

std::function<std::string(const CLI::App*, const CLI::Error&)> failure_message_without_values(
    const std::vector<char*>& args) {
  return [args](const CLI::App* app, const CLI::Error& e) {
    const std::string_view what = e.what();
    // By exit code: CLI11 names some errors after the subcommand that threw them.
    const auto kind = static_cast<CLI::ExitCodes>(e.get_exit_code());
    const bool invalid = kind == CLI::ExitCodes::ValidationError;
    std::string sentence;
    if (kind == CLI::ExitCodes::ExtrasError) {
      const bool several = what.find("arguments were") != std::string_view::npos;
      sentence = std::string(several ? "unexpected arguments " : "unexpected argument ") + std::string(kNoKeyArguments);
    } else if (invalid || kind == CLI::ExitCodes::ConversionError || quotes_a_value(what, args)) {
      // ConversionError: "Could not convert: --name = value" or "The value … for --name".
      std::string option = option_named(what);
      if (option.empty() && what.starts_with("Could not convert: ")) {
        option = option_named(what.substr(std::string_view("Could not convert: ").size()));
      }
      std::string explanation;
      if (invalid && !option.empty() && !quotes_a_value(what, args)) {
        explanation = std::string(what.substr(std::min(what.size(), option.size() + 2)));  // after "--name: "
      }
      sentence = (option.empty() ? std::string("a value given") : option + ": the value given") + " is not valid " +
                 std::string(kNotShown);
      if (!explanation.empty()) sentence += "; " + explanation;
    } else {
      sentence = std::string(what);
    }
    std::string message = sentence + "\n";
    if (app->get_help_ptr() != nullptr) {
      message += "Run with " + app->get_help_ptr()->get_name() + " for more information.\n";
    }
    return message;
  };
}

CLI::Validator one_of(std::initializer_list<std::string> choices) {
  std::vector<std::string> allowed(choices);
  std::string listed;
  for (const auto& choice : allowed) listed += (listed.empty() ? "" : ",") + choice;
  std::string must_be = "must be one of: " + listed;
  return CLI::Validator(
      [allowed, must_be](std::string& value) {
        return std::find(allowed.begin(), allowed.end(), value) != allowed.end() ? std::string() : must_be;
      },
      "{" + listed + "}");
}

}  // namespace kosli::client
