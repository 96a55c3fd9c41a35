#include "daemon/handlers/router.hpp"

#include <strings.h>

#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/answers.hpp"
#include "daemon/keys/expiry.hpp"
#include "proto/fingerprint.hpp"
#include "daemon/keys/import_watch.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/stored_profile.hpp"
#include "daemon/ops/approvals.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;

// The audit log's name for what a route does.
std::string_view audit_event(Route route) {
  switch (route) {
    case Route::put_profile: return "store";
    case Route::delete_profile: return "erase";
    case Route::token: return "token";
    case Route::verify: return "verify";
    case Route::rotate: return "rotate";
    case Route::reject: return "reject";
    case Route::lock: return "lock";
    default: return route_spec(route).pattern;
  }
}

}  // namespace

Router::Router(StoreWorker& worker, TokenCache& cache, const Policy& policy, AuditLog& audit, Metrics& metrics,
               KeyLifecycle* lifecycle, Approvals* approvals)
    : worker_(worker),
      cache_(cache),
      policy_(policy),
      audit_(audit),
      lifecycle_(lifecycle),
      approvals_(approvals),
      metrics_(metrics),
      started_(std::chrono::steady_clock::now()) {}

void Router::connection_refused(const Peer& peer, std::string_view why) {
  audit_.record(AuditRecord{"connection", {}, "refused", why}, peer);
}

void Router::handle(Request request, const Peer& peer, Reply reply) {
  const auto received = std::chrono::steady_clock::now();
  const auto matched = match_route(request.method, request.target);
  std::optional<Route> route;
  if (const auto* m = std::get_if<RouteMatch>(&matched)) route = m->route;
  dispatch(matched, request, peer, [this, route, received, reply = std::move(reply)](Response response) {
    metrics_.request_answered(route, response.status, std::chrono::steady_clock::now() - received);
    if (!response.sensitive) return reply(std::move(response));
    // A key leaves only once its record is written; the keys answered in the
    // same turn of the event loop wait for the same write.
    audit_.when_written([reply, response = std::move(response)]() mutable { reply(std::move(response)); });
  });
}

void Router::dispatch(const RouteResult& matched, Request& request, const Peer& peer, Reply reply) {
  if (std::holds_alternative<RouteNotFound>(matched)) {
    wipe(request.body);
    return reply(error_response(ErrorCode::not_found,
                                "no such route: " + request.method + " " + request.target));
  }
  if (auto* bad = std::get_if<RouteBadName>(&matched)) {
    wipe(request.body);
    return reply(error_response(ErrorCode::bad_request, bad->message));
  }
  if (auto* wrong = std::get_if<RouteMethodNotAllowed>(&matched)) {
    wipe(request.body);
    Response r = error_response(ErrorCode::method_not_allowed,
                                request.method + " is not allowed here; use " + wrong->allow);
    r.allow = wrong->allow;
    return reply(std::move(r));
  }
  const auto& route = std::get<RouteMatch>(matched);
  if (route.route != Route::put_profile && !(route.route == Route::rotate && lifecycle_)) wipe(request.body);

  // The one guard for every route. Where the program asking decides, it is
  // read again for this request (a peer may have exec'd since it connected);
  // elsewhere the peer as it connected is enough, and costs nothing more.
  std::optional<Peer> now;
  const bool confirms = approvals_ != nullptr && approvals_->confirms(route.route, route.profile);
  if (policy_.guards(route.route, route.profile) || confirms) {
    now = peer_now(peer, request.exec_program);
  } else if (!request.exec_program.empty() && peer.installed_client) {
    now = peer;
    take_exec_program(*now, request.exec_program);
  }
  const Peer& asking = now ? *now : peer;
  if (auto refusal = policy_.refuse(route.route, route.profile, asking)) {
    wipe(request.body);
    // (The refusal names the program through display_safe; a profile name is checked.)
    spdlog::warn("{}: refused uid {} pid {}{}{}: {}", audit_event(route.route), asking.uid, asking.pid,
                 route.profile.empty() ? "" : ", profile ", route.profile, *refusal);
    audit_.record(AuditRecord{audit_event(route.route), route.profile, "refused", *refusal}, asking);
    return reply(error_response(ErrorCode::policy_refused, *refusal));
  }

  switch (route.route) {
    case Route::health: return health(std::move(reply));
    case Route::list_profiles: return list_profiles(std::move(reply));
    case Route::get_profile: return get_profile(route.profile, std::move(reply));
    case Route::put_profile: return put_profile(route.profile, request, asking, std::move(reply));
    case Route::delete_profile: return delete_profile(route.profile, asking, std::move(reply));
    case Route::token:
      if (confirms) return approved_token(route.profile, asking, request.interim, std::move(reply));
      return token(route.profile, asking, std::move(reply));
    case Route::reject: return reject(route.profile, asking, std::move(reply));
    case Route::lock:
      cache_.clear();
      if (approvals_) approvals_->forget_all("kosli-cred lock");
      spdlog::info("lock: forgot every cached key");
      audit_.record(AuditRecord{"lock", {}, "ok", {}}, asking);
      return reply(Response{204, {}});
    case Route::verify:
    case Route::rotate:
      if (lifecycle_) {
        return route.route == Route::verify ? verify(route.profile, asking, std::move(reply))
                                            : rotate(route.profile, request, asking, std::move(reply));
      }
      return reply(error_response(ErrorCode::not_implemented,
                                  "this kosli-credd has no Kosli API client, so it cannot " +
                                      std::string(route.route == Route::verify ? "verify" : "rotate") +
                                      " keys"));
    case Route::metrics: {
      const auto audit = audit_.health();
      std::string text = metrics_.exposition({audit.ok, audit.records_failed});
      if (imports_) text += imports_->exposition();
      return reply(Response{200, std::move(text), Metrics::kContentType});
    }
  }
  reply(error_response(ErrorCode::internal, "unhandled route"));
}
}  // namespace kosli::daemon
