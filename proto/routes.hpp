// The route table of the daemon's HTTP API: the one place both sides take
// methods and paths from.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <variant>

namespace kosli {

enum class Route {
  health,
  list_profiles,
  get_profile,
  put_profile,
  delete_profile,
  token,
  verify,
  rotate,
  reject,
  lock,
  metrics,  // the last: daemon/metrics.hpp counts routes up to it
};

// How long a client waits for a route's answer.
enum class Wait {
  daemon,  // the daemon and the keyring: limits::kClientRequestDeadline
  kosli,   // a call to Kosli besides: limits::kClientKosliRequestDeadline
};

struct RouteSpec {
  Route route;
  std::string_view method;
  std::string_view pattern;  // "{name}" stands for a profile name
  Wait wait = Wait::daemon;
};

const RouteSpec& route_spec(Route route) noexcept;
// How long a client waits for the route's answer (its RouteSpec's wait).
std::chrono::seconds route_deadline(Route route) noexcept;

// The request header in which `kosli-cred exec -- CMD` names the program it is
// about to run: CMD's real path, found the way execvp finds it. kosli-credd
// believes it only from its own installation's kosli-cred, and takes that
// program as the requester (allowed_clients, the audit log).
inline constexpr std::string_view kExecProgramHeader = "Kosli-Exec-Program";

// A token for a profile with "confirm" may wait for a person. When the daemon
// starts asking one, it sends an interim "HTTP/1.1 102 Processing" on that
// connection before the final answer, with this header: how many seconds the
// question stays open (an integer). The client then waits that long and
// limits::kClientAskingMargin besides, instead of its route's deadline.
inline constexpr std::string_view kAskingSecondsHeader = "Kosli-Asking-Seconds";

// The User-Agent kosli-cred sends: limits::kClientProgram, "/", its version.
std::string_view client_user_agent() noexcept;

// The Content-Type of every JSON body, both ways.
inline constexpr std::string_view kJsonContentType = "application/json";

// The request target for a route, with the profile name filled in.
std::string route_target(Route route, std::string_view profile = {});

struct RouteMatch {
  Route route;
  std::string profile;  // empty for routes without {name}
};
struct RouteNotFound {};
struct RouteMethodNotAllowed {
  std::string allow;  // the Allow header: "GET, PUT, DELETE"
};
struct RouteBadName {
  std::string message;
};
using RouteResult = std::variant<RouteMatch, RouteNotFound, RouteMethodNotAllowed, RouteBadName>;

// Matches a request's method and target (a query string is ignored). A path that
// has a route's shape but an invalid profile name gives RouteBadName.
RouteResult match_route(std::string_view method, std::string_view target);

}  // namespace kosli
