#include "client/key_input.hpp"

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "client/cli_error.hpp"
#include "proto/errors.hpp"
#include "proto/limits.hpp"
#include "proto/profile.hpp"

namespace kosli::client {
namespace {

// Reads stdin to EOF (or, when `line` is set, to the first newline), refusing
// more than a key can be.
std::string read_stdin(bool line) {
  std::string out;
  out.reserve(limits::kMaxKeyBytes + 2);  // no reallocation: no stray copies to wipe
  char c;
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (line && c == '\n') break;
    if (out.size() >= limits::kMaxKeyBytes + 2) {
      wipe(out);
      throw CliError(exit_code::usage, "the input is longer than any Kosli API key; send the key alone");
    }
    out.push_back(c);
  }
  c = 0;
  return out;
}

class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
  }
  ~EchoOff() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

Secret read_api_key(const std::string& prompt) {
  std::string raw;
  if (::isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "%s", prompt.c_str());
    std::fflush(stderr);
    {
      EchoOff quiet;
      raw = read_stdin(/*line=*/true);
    }
    std::fprintf(stderr, "\n");
  } else {
    raw = read_stdin(/*line=*/false);
  }
  if (!raw.empty() && raw.back() == '\n') raw.pop_back();
  if (!raw.empty() && raw.back() == '\r') raw.pop_back();
  Secret key(raw);
  wipe(raw);
  if (auto problem = api_key_problem(key.reveal())) {
    throw CliError(exit_code::usage, *problem + " (send the key on stdin, or type it at the prompt)");
  }
  return key;
}

}  // namespace kosli::client
