#include "proto/secret.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <ostream>
#include <utility>

namespace kosli {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

void wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size != 0) ::explicit_bzero(data, size);
}

void wipe(std::string& s) noexcept {
  // Zero the whole capacity: a string that shrank keeps old bytes past size().
  s.resize(s.capacity());
  wipe(s.data(), s.size());
  s.clear();
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

Secret::Secret(std::string_view bytes) {
  if (bytes.empty()) return;
  // Whole pages of its own, so locking and unlocking never touch another object.
  const std::size_t page = page_size();
  mapped_ = (bytes.size() + page - 1) / page * page;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<char*>(p);
  // Best effort: RLIMIT_MEMLOCK may be small. The bytes are still zeroed on release.
  // (The system call itself: AddressSanitizer turns mlock() into a no-op, and
  // keys must be locked in the sanitizer build too.)
  locked_ = ::syscall(SYS_mlock, data_, mapped_) == 0;
  ::madvise(data_, mapped_, MADV_DONTDUMP);
  std::memcpy(data_, bytes.data(), bytes.size());
  size_ = bytes.size();
}

Secret::~Secret() { release(); }

Secret::Secret(Secret&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

void Secret::release() noexcept {
  if (data_ == nullptr) return;
  wipe(data_, mapped_);
  if (locked_) ::syscall(SYS_munlock, data_, mapped_);
  ::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
  locked_ = false;
}

bool Secret::equals(const Secret& other) const noexcept { return equals(other.reveal()); }

bool Secret::equals(std::string_view other) const noexcept {
  return constant_time_equal(reveal(), other);
}

std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "[redacted]"; }

}  // namespace kosli
