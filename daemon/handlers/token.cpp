// The routes a consumer uses: token, and reject (a 401 seen).
#include "daemon/handlers/router.hpp"

#include <strings.h>

#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/answers.hpp"
#include "daemon/keys/expiry.hpp"
#include "proto/fingerprint.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/stored_profile.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "proto/routes.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {

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
    return reply(Response{200, serialize_token(waiting->key, waiting->info), kJsonContentType, {}, true});
  }
  TokenInfo cached_info;
  if (auto body = cache_.token_body(name, &cached_info)) {
    metrics_.cache_hit();
    if (refused_expired(name, cached_info, peer, reply)) return wipe(*body);
    const std::string note = expiry_note(cached_info);
    if (!note.empty() && lifecycle_) lifecycle_->notices().key_expiring(name, cached_info.expires_at, now_s());
    issued(name, note.empty() ? "cached" : "cached; " + note, peer);
    return reply(Response{200, std::move(*body), kJsonContentType, {}, true});
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
      response = Response{200, serialize_token(stored->key, info), kJsonContentType, {}, true};
      const std::string note = expiry_note(info);
      if (!note.empty() && lifecycle_) lifecycle_->notices().key_expiring(name, info.expires_at, now_s());
      issued(name, note, peer);
      return reply(std::move(response));
    }
    audit_.record(AuditRecord{"token", name, result_of(response), {}}, peer);
    reply(std::move(response));
  });
}

}  // namespace kosli::daemon
