// Every limit of the wire protocol, in one place. Both sides use them; the daemon
// checks each one before it buffers or allocates.
#pragma once

#include <chrono>
#include <cstddef>

namespace kosli::limits {

// Request line plus headers; larger requests get 431.
inline constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
// Request bodies; larger ones get 413 before the body is read.
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
// The request target (path and query); the longest route needs under 100 bytes.
// Longer ones get 414.
inline constexpr std::size_t kMaxTargetBytes = 1024;
// How deep a JSON body may nest ({"via_api":{…}} is 2); deeper ones get 400
// before they are parsed.
inline constexpr std::size_t kMaxJsonDepth = 8;
// Response bodies the client accepts (a profile list for many profiles).
inline constexpr std::size_t kMaxResponseBodyBytes = 1024 * 1024;
// A Kosli API key is opaque; nothing real comes close to this.
inline constexpr std::size_t kMaxKeyBytes = 4 * 1024;
// Free-text description kept as keyring metadata.
inline constexpr std::size_t kMaxDescriptionBytes = 256;
// Org, service account and key id names.
inline constexpr std::size_t kMaxIdentifierBytes = 128;
// A host base URL.
inline constexpr std::size_t kMaxHostBytes = 256;

// A request must arrive whole within this long once its first byte is read.
inline constexpr std::chrono::seconds kRequestReadDeadline{10};
// A keep-alive connection with no request in flight is closed after this long.
inline constexpr std::chrono::seconds kIdleKeepAliveDeadline{60};
// Connections open at once. At the cap a new connection closes the one that
// has waited longest for its next request (or, failing that, the one slowest to
// send its request); only when every connection is being answered does it get 429.
inline constexpr std::size_t kMaxOpenConnections = 256;

// Each call into the keyring (one D-Bus round trip or a few) must finish in this.
inline constexpr std::chrono::seconds kStoreCallDeadline{5};
// One call to Kosli's API, its retries included.
inline constexpr std::chrono::seconds kKosliCallDeadline{12};
// How long the client waits for the daemon to answer one request.
inline constexpr std::chrono::seconds kClientRequestDeadline{15};
// ... and a verify or a rotate, which waits for Kosli besides the keyring: the
// key read, one Kosli call, the result or the new key stored, with room to spare
// for a store call queued before them.
inline constexpr std::chrono::seconds kClientKosliRequestDeadline{45};
static_assert(kClientKosliRequestDeadline > kKosliCallDeadline + 3 * kStoreCallDeadline);

}  // namespace kosli::limits
