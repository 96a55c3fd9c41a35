// SecretJson: a JSON document that may hold a key. nlohmann's parser gathers
// every string in a buffer of its own and its serializer grows its output, and
// both free memory that held the key without zeroing it. In a SecretJson every
// allocation (string values and their buffers, the parser's buffer, object and
// array nodes) comes from WipingAllocator, which zeroes memory before it gives
// it back. Parse any body that holds a key or a token as a SecretJson.
//
// Not reached: the raw copy of each token that nlohmann's lexer keeps for its
// error messages, a std::vector<char> with the default allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "proto/secret.hpp"

namespace kosli {

template <class T>
struct WipingAllocator {
  using value_type = T;

  WipingAllocator() noexcept = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: converting, as allocators are

  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }

  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using SecretJson = nlohmann::basic_json<std::map, std::vector, WipingString, bool, std::int64_t, std::uint64_t,
                                        double, WipingAllocator>;

// Parses a body that holds a key into `out` and wipes `text`. Stricter than
// nlohmann's parse: a field named twice in one object is refused, where
// nlohmann keeps the last (so {"api_key":"","api_key":"x"} would store "x"
// past a check that read the first). Returns the problem, or nullopt.
std::optional<std::string> parse_secret_json(std::string& text, SecretJson& out);

}  // namespace kosli
