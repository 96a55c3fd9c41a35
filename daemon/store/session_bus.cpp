#include "daemon/store/session_bus.hpp"

namespace kosli::daemon {

bool connection_gone(const GError* error) {
  if (error == nullptr) return false;
  if (error->domain == G_IO_ERROR) {
    return error->code == G_IO_ERROR_CLOSED || error->code == G_IO_ERROR_BROKEN_PIPE ||
           error->code == G_IO_ERROR_CONNECTION_CLOSED;
  }
  if (error->domain == G_DBUS_ERROR) {
    switch (error->code) {
      case G_DBUS_ERROR_DISCONNECTED:
      case G_DBUS_ERROR_NO_REPLY:  // the peer left without answering (our own deadline is a cancellation)
      case G_DBUS_ERROR_SERVICE_UNKNOWN:
      case G_DBUS_ERROR_NAME_HAS_NO_OWNER:
      case G_DBUS_ERROR_UNKNOWN_OBJECT:
      case G_DBUS_ERROR_UNKNOWN_METHOD:
        return true;
      default:
        return false;
    }
  }
  return false;
}

}  // namespace kosli::daemon
