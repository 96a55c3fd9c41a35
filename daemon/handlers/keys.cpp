// POST /v1/profiles/{name}/verify and …/rotate: the key service does the work
// (daemon/keys/) and hands back a typed result; here it becomes the answer.
#include "daemon/handlers/router.hpp"

#include <utility>
#include <variant>

#include "daemon/api/answers.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "proto/answers.hpp"

namespace kosli::daemon {

void Router::verify(const std::string& name, const Peer& peer, Reply reply) {
  lifecycle_->verify(name, peer, [reply = std::move(reply)](KeyLifecycle::VerifyResult result) {
    if (auto* error = std::get_if<ApiError>(&result)) return reply(error_response(std::move(*error)));
    reply(Response{200, serialize(std::get<VerifyAnswer>(result))});
  });
}

void Router::rotate(const std::string& name, Request& request, const Peer& peer, Reply reply) {
  lifecycle_->rotate(name, request, peer, [reply = std::move(reply)](KeyLifecycle::RotateResult result) {
    if (auto* error = std::get_if<ApiError>(&result)) return reply(error_response(std::move(*error)));
    reply(Response{200, serialize(std::get<RotateAnswer>(result))});
  });
}

}  // namespace kosli::daemon
