// The JSON codecs of proto/profile.* on untrusted bodies: PUT and rotate
// requests (what a peer sends the daemon), token and profile bodies (what the
// client reads back), and the host rules they rely on.
//
// Besides crashes and sanitizer reports, it traps when a body that parses does
// not survive serialize → parse unchanged, or a normalised host is not
// normalised again to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proto/host.hpp"
#include "proto/profile.hpp"
#include "proto/time_format.hpp"

namespace {

using namespace kosli;

void put_round_trip(const PutProfileRequest& first) {
  std::string body = serialize_put_profile(first);
  auto again = parse_put_profile(body);
  const auto* second = std::get_if<PutProfileRequest>(&again);
  if (second == nullptr) __builtin_trap();
  if (second->org != first.org || second->host != first.host || second->kind != first.kind ||
      second->api_key.reveal() != first.api_key.reveal() || second->expires_at != first.expires_at ||
      second->description != first.description || second->service_account != first.service_account ||
      second->key_id != first.key_id) {
    __builtin_trap();
  }
}

void rotate_round_trip(const RotateRequest& first) {
  std::string body = serialize_rotate(first);
  auto again = parse_rotate(body);
  const auto* second = std::get_if<RotateRequest>(&again);
  if (second == nullptr) __builtin_trap();
  if (second->via_api != first.via_api || second->api_key.reveal() != first.api_key.reveal() ||
      second->grace_period_hours != first.grace_period_hours) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  {
    std::string body = input;
    auto parsed = parse_put_profile(body);
    if (auto* put = std::get_if<PutProfileRequest>(&parsed)) put_round_trip(*put);
  }
  {
    std::string body = input;
    auto parsed = parse_rotate(body);
    if (auto* rotate = std::get_if<RotateRequest>(&parsed)) rotate_round_trip(*rotate);
  }
  {
    std::string body = input;
    (void)parse_token(body);
  }
  const auto j = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (auto meta = profile_from_json(j)) (void)to_json(*meta).dump();

  (void)profile_name_problem(input);
  (void)api_key_problem(input);
  (void)parse_rfc3339(input);
  auto host = normalize_host(input);
  if (auto* normalized = std::get_if<std::string>(&host)) {
    auto again = normalize_host(*normalized);
    const auto* twice = std::get_if<std::string>(&again);
    if (twice == nullptr || *twice != *normalized) __builtin_trap();
    (void)host_authority(*normalized);
  }
  return 0;
}
