// The routes on profiles: health, list, get, put (store) and delete (erase).
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
#include "proto/answers.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;

// health's audit log: its kind, a file's path, and while failing why and since when.
kosli::AuditLogHealth describe(AuditLog& audit) {
  const auto h = audit.health();
  const bool file = h.kind == "file";
  return kosli::AuditLogHealth{std::string(h.kind), file ? audit.target() : std::string(), h.ok, h.error,
                               h.failing_since};
}

}  // namespace

void Router::health(Reply reply) {
  worker_.submit([this, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - started_);
    HealthAnswer answer;
    answer.version = KOSLI_VERSION;
    answer.backend = store.backend_name();
    answer.persistent = store.persistent();
    answer.uptime_s = uptime.count();
    answer.cached = static_cast<std::int64_t>(cache_.sweep());
    auto profiles = store.list(deadline);
    if (auto* list = std::get_if<std::vector<ProfileMeta>>(&profiles)) {
      answer.profiles = static_cast<std::int64_t>(list->size());
      answer.expiry_warning_days = policy_.expiry_warning_days();
      answer.expiring = expiry_summary(*list, policy_.expiry_warning_days(), now_s());
      for (const auto& meta : *list) {
        if (meta.expires_at == 0) answer.expiry_unknown.push_back(UnknownExpiry{meta.name, how_to_learn_expiry(meta)});
      }
    } else {
      answer.store_error = std::get<StoreError>(profiles).message;
    }
    if (lifecycle_) lifecycle_->describe(answer);
    if (imports_) imports_->describe(answer);
    answer.audit_log = describe(audit_);
    for (const auto& section : health_sections_) section(answer);
    if (approvals_ && approvals_->any()) answer.approvals = approvals_->describe();
    reply(Response{200, serialize(answer)});
  });
}

void Router::list_profiles(Reply reply) {
  worker_.submit([this, reply = std::move(reply)](Store& store, Store::Deadline deadline) {
    auto profiles = store.list(deadline);
    if (auto* e = std::get_if<StoreError>(&profiles)) return reply(store_error_response(*e));
    reply(Response{200, serialize(ListAnswer{std::move(std::get<std::vector<ProfileMeta>>(profiles)), 0})});
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
    if (lifecycle_) {
      lifecycle_->profile_changed(name);
      if (expiry_learnable(meta)) lifecycle_->learn_expiry(name, peer);
    }
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
}  // namespace kosli::daemon
