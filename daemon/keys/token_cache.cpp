#include "daemon/keys/token_cache.hpp"

namespace kosli::daemon {

std::optional<std::string> TokenCache::token_body(std::string_view name, TokenInfo* info) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  if (Clock::now() >= it->second.expires) {
    entries_.erase(it);
    return std::nullopt;
  }
  if (info != nullptr) *info = it->second.info;
  return std::string(it->second.body.reveal());
}

std::uint64_t TokenCache::generation() {
  std::lock_guard lock(mutex_);
  return generation_;
}

void TokenCache::put(const std::string& name, const Secret& key, const TokenInfo& info,
                     std::uint64_t loaded_at_generation) {
  if (ttl_.count() == 0) return;
  std::string body = serialize_token(key, info);
  Entry entry{Secret(body), info, Clock::now() + ttl_};
  wipe(body);
  std::lock_guard lock(mutex_);
  if (loaded_at_generation != generation_) return;
  entries_.insert_or_assign(name, std::move(entry));
}

void TokenCache::drop(std::string_view name) {
  std::lock_guard lock(mutex_);
  ++generation_;
  if (const auto it = entries_.find(name); it != entries_.end()) entries_.erase(it);
}

void TokenCache::clear() {
  std::lock_guard lock(mutex_);
  ++generation_;
  entries_.clear();
}

std::size_t TokenCache::sweep() {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  std::erase_if(entries_, [now](const auto& kv) { return now >= kv.second.expires; });
  return entries_.size();
}

}  // namespace kosli::daemon
