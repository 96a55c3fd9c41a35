#include "client/approvals_status.hpp"

#include <cstdio>
#include <string>

#include "proto/display.hpp"
#include "proto/time_format.hpp"

namespace kosli::client {

void print_approvals(const ApprovalsHealth& approvals) {
  for (const auto& p : approvals.approved) {
    for (const auto& program : p.programs) {
      std::printf("approved:  profile '%s': %s (until the session locks or kosli-credd restarts)\n",
                  display_safe(p.profile).c_str(), display_safe(program).c_str());
    }
  }
  if (const auto& d = approvals.last_denial) {
    std::printf("denied:    profile '%s': %s (pid %lld) at %s (%s)\n", display_safe(d->profile).c_str(),
                d->program.empty() ? "an unidentified program" : display_safe(d->program).c_str(),
                static_cast<long long>(d->pid), d->at == 0 ? "?" : format_rfc3339(d->at).c_str(),
                display_safe(d->how).c_str());
  }
}

}  // namespace kosli::client
