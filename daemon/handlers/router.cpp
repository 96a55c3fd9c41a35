#include "daemon/handlers/router.hpp"

#include <strings.h>

#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/answers.hpp"
#include "daemon/keys/expiry.hpp"
#include "daemon/keys/stored_profile.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/keys/fingerprint.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "daemon/ops/policy.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;

// health's "audit_log": {"kind", "path" (a file's), "ok", and while failing "error", "failing_since"}.
json describe(AuditLog& audit) {
  const auto h = audit.health();
  json j{{"kind", h.kind}, {"ok", h.ok}};
  if (h.kind == "file") j["path"] = audit.target();
  if (!h.ok) {
    j["error"] = h.error;
    j["failing_since"] = format_rfc3339(h.failing_since);
  }
  return j;
}

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

// The audit result for an error answer.
std::string_view result_of(const Response& r) {
  if (r.status == 404) return "not_found";
  if (r.status == 403) return "refused";
  return "error";
}

}  // namespace

Router::Router(StoreWorker& worker, TokenCache& cache, const Policy& policy, AuditLog& audit, Metrics& metrics,
               KeyLifecycle* lifecycle)
    : worker_(worker),
      cache_(cache),
      policy_(policy),
      audit_(audit),
      lifecycle_(lifecycle),
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
  if (policy_.guards(route.route, route.profile)) {
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
    return reply(error_response(ErrorCode::forbidden, *refusal));
  }

  switch (route.route) {
    case Route::health: return health(std::move(reply));
    case Route::list_profiles: return list_profiles(std::move(reply));
    case Route::get_profile: return get_profile(route.profile, std::move(reply));
    case Route::put_profile: return put_profile(route.profile, request, asking, std::move(reply));
    case Route::delete_profile: return delete_profile(route.profile, asking, std::move(reply));
    case Route::token: return token(route.profile, asking, std::move(reply));
    case Route::reject: return reject(route.profile, asking, std::move(reply));
    case Route::lock:
      cache_.clear();
      spdlog::info("lock: forgot every cached key");
      audit_.record(AuditRecord{"lock", {}, "ok", {}}, asking);
      return reply(Response{204, {}});
    case Route::verify:
    case Route::rotate:
      if (lifecycle_) {
        return route.route == Route::verify ? lifecycle_->verify(route.profile, asking, std::move(reply))
                                            : lifecycle_->rotate(route.profile, request, asking, std::move(reply));
      }
      return reply(error_response(ErrorCode::not_implemented,
                                  "this kosli-credd has no Kosli API client, so it cannot " +
                                      std::string(route.route == Route::verify ? "verify" : "rotate") +
                                      " keys"));
    case Route::metrics: {
      const auto audit = audit_.health();
      return reply(Response{200, metrics_.exposition({audit.ok, audit.records_failed}), Metrics::kContentType});
    }
  }
  reply(error_response(ErrorCode::internal, "unhandled route"));
}

void Router::health(Reply reply) {
  worker_.submit([this, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - started_);
    json body{{"status", "ok"},
              {"version", KOSLI_VERSION},
              {"backend", store.backend_name()},
              {"persistent", store.persistent()},
              {"uptime_s", uptime.count()},
              {"cached", cache_.sweep()}};
    auto profiles = store.list(deadline);
    if (auto* list = std::get_if<std::vector<ProfileMeta>>(&profiles)) {
      body["profiles"] = list->size();
      body["expiry_warning_days"] = policy_.expiry_warning_days();
      body["expiring"] = expiry_summary(*list, policy_.expiry_warning_days(), now_s());
    } else {
      body["profiles"] = nullptr;
      body["store_error"] = std::get<StoreError>(profiles).message;
    }
    if (lifecycle_) lifecycle_->describe(body);
    body["audit_log"] = describe(audit_);
    reply(json_response(200, body));
  });
}

void Router::list_profiles(Reply reply) {
  worker_.submit([this, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    auto profiles = store.list(deadline);
    if (auto* e = std::get_if<StoreError>(&profiles)) return reply(store_error_response(*e));
    json list = json::array();
    for (const auto& meta : std::get<std::vector<ProfileMeta>>(profiles)) list.push_back(to_json(meta));
    reply(json_response(200, json{{"profiles", std::move(list)}}));
  });
}

void Router::get_profile(const std::string& name, Reply reply) {
  worker_.submit([this, name, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    auto found = store.find(name, deadline);
    if (auto* e = std::get_if<StoreError>(&found)) return reply(store_error_response(*e));
    const auto& meta = std::get<std::optional<ProfileMeta>>(found);
    if (!meta) return reply(no_such_profile(name));
    reply(json_response(200, to_json(*meta)));
  });
}

void Router::put_profile(const std::string& name, Request& request, const Peer& peer, Reply reply) {
  if (!request.is_json()) {
    wipe(request.body);
    return reply(error_response(ErrorCode::unsupported_media_type,
                                "send the profile as JSON with Content-Type: application/json"));
  }
  auto parsed = parse_put_profile(request.body);
  if (auto* e = std::get_if<CodecError>(&parsed)) {
    audit_.record(AuditRecord{"store", name, "refused", e->message}, peer);
    return reply(error_response(ErrorCode::bad_request, e->message));
  }
  // std::function needs a copyable job: share the request, which owns the key.
  auto put = std::make_shared<PutProfileRequest>(std::move(std::get<PutProfileRequest>(parsed)));
  worker_.submit([this, name, put, peer, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    const auto generation = cache_.generation();
    const ProfileMeta meta = meta_from_put(name, *put, store.persistent());

    auto stored = store.put(meta, put->api_key, deadline);
    if (auto* e = std::get_if<StoreError>(&stored)) {
      audit_.record(AuditRecord{"store", name, "error", e->message}, peer);
      return reply(store_error_response(*e));
    }
    cache_.put(name, put->api_key,
               TokenInfo{meta.org, meta.host, meta.expires_at, policy_.expiry_warning_days()}, generation);
    if (lifecycle_) lifecycle_->profile_changed(name);
    const bool replaced = std::get<bool>(stored);
    spdlog::info("store: profile '{}' {} (org {}, {}, {})", name, replaced ? "replaced" : "created",
                 meta.org, meta.host, meta.fingerprint);
    audit_.record(AuditRecord{"store", name, "ok", replaced ? "replaced " + meta.fingerprint : "created " + meta.fingerprint}, peer);
    reply(json_response(replaced ? 200 : 201, to_json(meta)));
  });
}

void Router::delete_profile(const std::string& name, const Peer& peer, Reply reply) {
  worker_.submit([this, name, peer, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    cache_.drop(name);
    auto erased = store.erase(name, deadline);
    cache_.drop(name);  // also forgets a fill that raced with the erase
    Response response{204, {}};
    if (auto* e = std::get_if<StoreError>(&erased)) {
      response = store_error_response(*e);
    } else if (!std::get<bool>(erased)) {
      response = no_such_profile(name);
    } else {
      spdlog::info("erase: profile '{}' erased", name);
      if (lifecycle_) lifecycle_->profile_changed(name);
    }
    audit_.record(AuditRecord{"erase", name, response.status == 204 ? "ok" : result_of(response), {}}, peer);
    reply(std::move(response));
  });
}

// A single 401 seen by a consumer must not cost the user a stored key: by
// default only the cached copy goes; git_erase "delete" erases the profile.
void Router::reject(const std::string& name, const Peer& peer, Reply reply) {
  if (policy_.on_reject() == GitErase::remove) {
    audit_.record(AuditRecord{"reject", name, "ok", "git_erase is delete: erasing the profile"}, peer);
    return delete_profile(name, peer, std::move(reply));
  }
  cache_.drop(name);
  spdlog::info("reject: a client saw profile '{}' rejected; forgot its cached copy, kept the stored key", name);
  audit_.record(AuditRecord{"reject", name, "ok", "forgot the cached copy; the stored key is kept"}, peer);
  reply(Response{204, {}});
}

bool Router::refused_expired(const std::string& name, const TokenInfo& info, const Peer& peer, const Reply& reply) {
  auto why = expired(name, info);
  if (!why) return false;
  audit_.record(AuditRecord{"token", name, "refused", "expired"}, peer);
  reply(error_response(ErrorCode::key_expired, std::move(*why)));
  return true;
}

void Router::issued(const std::string& name, std::string_view detail, const Peer& peer) {
  audit_.record(AuditRecord{"token", name, "issued", detail}, peer);
  metrics_.token_issued(name);
}

void Router::token(const std::string& name, const Peer& peer, Reply reply) {
  if (auto waiting = lifecycle_ ? lifecycle_->waiting_key(name) : std::nullopt) {
    // Kosli issued this key and the keyring has not taken it yet: it is the current one.
    if (refused_expired(name, waiting->info, peer, reply)) return;
    issued(name, "held in memory, not yet in the keyring", peer);
    return reply(Response{200, serialize_token(waiting->key, waiting->info), "application/json", {}, true});
  }
  TokenInfo cached_info;
  if (auto body = cache_.token_body(name, &cached_info)) {
    metrics_.cache_hit();
    if (refused_expired(name, cached_info, peer, reply)) return wipe(*body);
    const std::string note = expiry_note(cached_info);
    issued(name, note.empty() ? "cached" : "cached; " + note, peer);
    return reply(Response{200, std::move(*body), "application/json", {}, true});
  }
  metrics_.cache_miss();
  worker_.submit([this, name, peer, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    const auto generation = cache_.generation();
    auto loaded = store.load(name, deadline);
    Response response;
    if (auto* e = std::get_if<StoreError>(&loaded)) {
      response = store_error_response(*e);
    } else if (auto& stored = std::get<std::optional<StoredKey>>(loaded); !stored) {
      response = no_such_profile(name);
    } else {
      const TokenInfo info{stored->meta.org, stored->meta.host, stored->meta.expires_at,
                           policy_.expiry_warning_days()};
      if (refused_expired(name, info, peer, reply)) return;
      cache_.put(name, stored->key, info, generation);
      response = Response{200, serialize_token(stored->key, info), "application/json", {}, true};
      issued(name, expiry_note(info), peer);
      return reply(std::move(response));
    }
    audit_.record(AuditRecord{"token", name, result_of(response), {}}, peer);
    reply(std::move(response));
  });
}

}  // namespace kosli::daemon
