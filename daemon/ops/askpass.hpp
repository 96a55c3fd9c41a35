// Asking the person at the desktop a yes-or-no question through an askpass
// program, as ssh-agent's confirm does: the question is its argument, the
// answer its exit status (0: yes). Blocking: run it on a thread of its own.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

namespace kosli::daemon {

struct AskpassProgram {
  enum class Style {
    openssh,  // SSH_ASKPASS_PROMPT=confirm PROGRAM QUESTION (ssh-askpass, KOSLI_CRED_ASKPASS, "askpass")
    zenity,   // zenity --question --text=QUESTION
    kdialog,  // kdialog --yesno QUESTION
  };
  std::string path;
  Style style = Style::openssh;
};

// The askpass to use: $KOSLI_CRED_ASKPASS, else `configured` (config: askpass),
// else the first of ssh-askpass, zenity and kdialog on $PATH. Without a display
// ($DISPLAY or $WAYLAND_DISPLAY), or with none of them, a sentence saying why
// no one can be asked and how to change that.
std::variant<AskpassProgram, std::string> find_askpass(const std::optional<std::string>& configured);

enum class AskpassAnswer { yes, no, timeout, failed };

// Runs `program` in a process group of its own and waits up to `timeout` for
// its answer; past it, or once `stop_fd` becomes readable, the group is killed
// (and reaped) and the answer is timeout.
AskpassAnswer ask_through(const AskpassProgram& program, const std::string& question,
                          std::chrono::seconds timeout, int stop_fd);

}  // namespace kosli::daemon
