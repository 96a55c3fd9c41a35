// Every limit of the wire protocol, and every constant both programs must spell
// the same, in one place. Both sides use them; the daemon checks each limit
// before it buffers or allocates.
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>

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
// A profile name (proto/profile.hpp: ^[a-z0-9][a-z0-9._-]{0,63}$).
inline constexpr std::size_t kMaxProfileName = 64;

// Kosli's limits on a rotation's grace period, in hours, and its default.
inline constexpr int kMinGraceHours = 1;
inline constexpr int kMaxGraceHours = 720;
inline constexpr int kDefaultGraceHours = 24;
// The bounds as sentences say them.
inline constexpr std::string_view kGraceHoursRange = "from 1 to 720";

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
// The longest a token for a profile with "confirm" waits for its owner's answer
// (config: confirm_timeout_s, default and most 30 s) ...
inline constexpr std::chrono::seconds kMaxConfirmTimeout{30};
// A token waits kClientRequestDeadline like any request until the daemon says
// (102 Processing, proto/routes.hpp's kAskingSecondsHeader) that it asks a
// person; from then the client waits what the question has left and this much
// besides: the key read after a yes, behind a store call queued before it.
inline constexpr std::chrono::seconds kClientAskingMargin{15};
static_assert(kClientAskingMargin > 2 * kStoreCallDeadline);

// What kosli-credd writes to its --ready-fd once it accepts connections.
inline constexpr std::string_view kReadyLine = "ok\n";
// The client's program name, as users type it and as messages and the
// User-Agent say it.
inline constexpr std::string_view kClientProgram = "kosli-cred";

}  // namespace kosli::limits
