#include "daemon/ops/name_lookup.hpp"

#if KOSLI_STATIC_CI
#include <nss.h>
#endif

namespace kosli::daemon {

void pin_name_lookup() {
#if KOSLI_STATIC_CI
  ::__nss_configure_lookup("hosts", "files dns");
#endif
}

}  // namespace kosli::daemon
