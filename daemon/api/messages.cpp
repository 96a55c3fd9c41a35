#include "daemon/api/messages.hpp"

#include <strings.h>
#include <unistd.h>

#include <climits>

namespace kosli::daemon {

bool Request::is_json() const {
  auto type = std::string_view(content_type).substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return type.size() == kJsonContentType.size() &&
         strncasecmp(type.data(), kJsonContentType.data(), kJsonContentType.size()) == 0;
}

Response error_response(ErrorCode code, std::string message) {
  return Response{http_status(code), error_body(ApiError{code, std::move(message)})};
}

Peer this_process() {
  Peer peer;
  peer.pid = ::getpid();
  peer.uid = ::geteuid();
  peer.gid = ::getegid();
  char path[PATH_MAX];
  if (const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1); n > 0) {
    peer.exe.assign(path, static_cast<std::size_t>(n));
  }
  return peer;
}

}  // namespace kosli::daemon
