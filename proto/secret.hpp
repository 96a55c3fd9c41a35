// Secret: owns the bytes of an API key. The bytes live in their own locked pages
// (mlock, excluded from core dumps), are zeroed on destruction and when moved
// from, are compared in constant time, and never reach a formatter.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <string_view>

namespace kosli {

class Secret {
 public:
  Secret() noexcept = default;
  explicit Secret(std::string_view bytes);
  ~Secret();

  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  // An explicit copy, so copies of a key are visible at the call site.
  Secret clone() const { return Secret(reveal()); }

  // The bytes themselves. Named so every use is easy to find and review.
  std::string_view reveal() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Constant-time in the length of the longer operand.
  bool equals(const Secret& other) const noexcept;
  bool equals(std::string_view other) const noexcept;

  // Whether the pages holding the bytes are locked in RAM.
  bool locked() const noexcept { return locked_; }

 private:
  void release() noexcept;

  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapped_ = 0;
  bool locked_ = false;
};

// Streams print a placeholder, never the bytes.
std::ostream& operator<<(std::ostream& os, const Secret&);

// Zeroes a buffer that held a secret in a way the compiler cannot elide.
void wipe(void* data, std::size_t size) noexcept;
// Zeroes the string's bytes (its whole capacity), then empties it.
void wipe(std::string& s) noexcept;

// Constant-time comparison of two byte strings.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace kosli
