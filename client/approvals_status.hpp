// What `kosli-cred status` says about approvals (profiles with "confirm").
#pragma once

#include "proto/approvals_answer.hpp"

namespace kosli::client {

// The programs approved now, per profile, and the last denial; nothing when
// no program is approved and none was denied.
void print_approvals(const ApprovalsHealth& approvals);

}  // namespace kosli::client
