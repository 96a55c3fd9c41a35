// What `kosli-cred exec -- CMD` runs, decided before it asks for a token: the
// daemon is told this program (proto/routes.hpp's kExecProgramHeader, for
// allowed_clients) and exactly this program is run.
#pragma once

#include <optional>
#include <string>

namespace kosli::client {

// The real path of the file `command` names, found the way execvp finds it:
// `command` itself when it contains a '/'; else the first executable regular
// file of that name in $PATH's directories (an empty entry is the current
// directory; without PATH, "/bin:/usr/bin"). nullopt, errno set (ENOENT,
// EACCES, …), when there is none.
std::optional<std::string> find_program(const std::string& command);

}  // namespace kosli::client
