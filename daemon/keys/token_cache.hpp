// Keys already read from the store, kept in locked memory for a while so the
// hot path (a token request) never touches D-Bus.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "proto/profile.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;

  // ttl 0 disables caching.
  explicit TokenCache(std::chrono::seconds ttl) : ttl_(ttl) {}

  // The token body for `name` when a fresh entry exists (and, when `info` is
  // given, what it says besides the token). Wipe it after use.
  std::optional<std::string> token_body(std::string_view name, TokenInfo* info = nullptr);
  // Bumped by every drop and clear. A key read from the store before an erase
  // or a lock finished must not be cached after it: read the generation before
  // loading and pass it to put(), which then ignores a stale fill.
  std::uint64_t generation();
  void put(const std::string& name, const Secret& key, const TokenInfo& info,
           std::uint64_t loaded_at_generation);
  void drop(std::string_view name);
  void clear();
  // Forgets entries past their time; returns how many remain.
  std::size_t sweep();

 private:
  struct Entry {
    Secret body;  // the token's JSON, made once: a hit only copies it
    TokenInfo info;
    Clock::time_point expires;
  };

  const std::chrono::seconds ttl_;
  std::mutex mutex_;
  std::uint64_t generation_ = 0;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace kosli::daemon
