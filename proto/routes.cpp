#include "proto/routes.hpp"

#include <array>
#include <vector>

#include "proto/limits.hpp"
#include "proto/profile.hpp"

namespace kosli {
namespace {

constexpr std::string_view kNameSlot = "{name}";

constexpr std::array<RouteSpec, 11> kRoutes{{
    {Route::health, "GET", "/v1/health"},
    {Route::list_profiles, "GET", "/v1/profiles"},
    {Route::get_profile, "GET", "/v1/profiles/{name}"},
    {Route::put_profile, "PUT", "/v1/profiles/{name}"},
    {Route::delete_profile, "DELETE", "/v1/profiles/{name}"},
    {Route::token, "GET", "/v1/profiles/{name}/token"},
    {Route::verify, "POST", "/v1/profiles/{name}/verify", Wait::kosli},
    {Route::rotate, "POST", "/v1/profiles/{name}/rotate", Wait::kosli},
    // A consumer (git's credential protocol: erase) saw the key rejected.
    {Route::reject, "POST", "/v1/profiles/{name}/reject"},
    {Route::lock, "POST", "/v1/lock"},
    {Route::metrics, "GET", "/v1/metrics"},
}};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() != '/') return {};
    path.remove_prefix(1);
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return parts;
}

// Whether the path has the pattern's shape; fills `name` from the {name} slot.
bool shape_matches(std::string_view pattern, const std::vector<std::string_view>& path,
                   std::string_view& name) {
  const auto want = split_path(pattern);
  if (want.size() != path.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] == kNameSlot) {
      name = path[i];
    } else if (want[i] != path[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

const RouteSpec& route_spec(Route route) noexcept {
  for (const auto& spec : kRoutes) {
    if (spec.route == route) return spec;
  }
  return kRoutes.front();
}

std::string_view client_user_agent() noexcept {
  static constexpr std::string_view kUserAgent = "kosli-cred/" KOSLI_VERSION;
  static_assert(kUserAgent.starts_with(limits::kClientProgram));
  return kUserAgent;
}

std::chrono::seconds route_deadline(Route route) noexcept {
  switch (route_spec(route).wait) {
    case Wait::kosli: return limits::kClientKosliRequestDeadline;
    case Wait::daemon: break;
  }
  return limits::kClientRequestDeadline;
}

std::string route_target(Route route, std::string_view profile) {
  std::string target(route_spec(route).pattern);
  if (const auto slot = target.find(kNameSlot); slot != std::string::npos) {
    target.replace(slot, kNameSlot.size(), profile);
  }
  return target;
}

RouteResult match_route(std::string_view method, std::string_view target) {
  const auto path = split_path(target.substr(0, target.find('?')));
  std::string allow;
  std::string_view matched_name;
  bool shape_found = false, named = false;
  for (const auto& spec : kRoutes) {
    std::string_view name;
    if (!shape_matches(spec.pattern, path, name)) continue;
    shape_found = true;
    matched_name = name;
    named = spec.pattern.find(kNameSlot) != std::string_view::npos;
    if (spec.method == method) {
      if (spec.pattern.find(kNameSlot) != std::string_view::npos) {
        if (auto problem = profile_name_problem(name)) return RouteBadName{std::move(*problem)};
      }
      return RouteMatch{spec.route, std::string(name)};
    }
    if (!allow.empty()) allow += ", ";
    allow += spec.method;
  }
  if (!shape_found) return RouteNotFound{};
  // A bad name is the first thing wrong with the request, whatever its method.
  if (auto problem = profile_name_problem(matched_name); problem && named) {
    return RouteBadName{std::move(*problem)};
  }
  return RouteMethodNotAllowed{std::move(allow)};
}

}  // namespace kosli
