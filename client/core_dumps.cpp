#include "client/core_dumps.hpp"

#include <sys/resource.h>

namespace kosli::client {
namespace {

rlimit g_started_with{};
bool g_lowered = false;

}  // namespace

void disable_core_dumps() noexcept {
  if (::getrlimit(RLIMIT_CORE, &g_started_with) != 0) return;
  rlimit none = g_started_with;
  none.rlim_cur = 0;  // the hard limit stays, so the old one can be given back
  g_lowered = ::setrlimit(RLIMIT_CORE, &none) == 0;
}

void restore_core_dumps() noexcept {
  if (g_lowered) ::setrlimit(RLIMIT_CORE, &g_started_with);
}

}  // namespace kosli::client
