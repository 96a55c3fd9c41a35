// A token for a profile with "confirm": a program approved already gets it at
// once; otherwise the profile is read (a missing profile or a locked keyring
// is answered without asking anyone) and the person at the desktop is asked;
// the client is told so at once (102 Processing), so it waits for the answer.
// The answer comes back on the event loop; other requests are served meanwhile.
#include "daemon/handlers/router.hpp"

#include <spdlog/spdlog.h>

#include "daemon/api/answers.hpp"
#include "daemon/ops/approvals.hpp"
#include "daemon/ops/audit_log.hpp"

namespace kosli::daemon {

void Router::approved_token(const std::string& name, const Peer& peer, Interim* interim, Reply reply) {
  if (approvals_->remembered(name, peer)) return token(name, peer, std::move(reply));
  worker_.submit([this, name, peer, interim, reply = std::move(reply)](Store& store,
                                                                      Store::Deadline deadline) mutable {
    auto found = store.find(name, deadline);
    Response response;
    if (auto* e = std::get_if<StoreError>(&found)) {
      response = store_error_response(*e);
    } else if (auto& meta = std::get<std::optional<ProfileMeta>>(found); !meta) {
      response = no_such_profile(name);
    } else {
      // `reply` keeps the connection, and with it `interim`, until the answer.
      return approvals_->ask(
          *meta, peer,
          [this, name, peer, reply = std::move(reply)](Approval approval) {
            if (approval.allowed) return token(name, peer, reply);
            audit_.record(AuditRecord{"token", name, "refused", "not approved"}, peer);
            reply(error_response(ErrorCode::policy_refused, std::move(approval.message)));
          },
          interim);
    }
    audit_.record(AuditRecord{"token", name, result_of(response), {}}, peer);
    reply(std::move(response));
  });
}

}  // namespace kosli::daemon
