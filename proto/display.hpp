// Text from outside (a peer's program path, a profile's description, a
// request target) made safe to put in a log line or on a terminal: it can
// neither start a line of its own nor move the cursor, recolour the screen or
// reorder what follows it.
#pragma once

#include <string>
#include <string_view>

namespace kosli {

// `text` with every C0 control, DEL, C1 control (U+0080-U+009F), line and
// paragraph separator (U+2028, U+2029) and bidirectional control (U+061C,
// U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) written as "\xNN" (a byte) or
// "\u{NNNN}" (a character), and a backslash as "\\", so the escaped form is
// unambiguous. Bytes that are not valid UTF-8 are written as "\xNN" too.
// Everything else, printable non-ASCII text included, is kept as it is.
std::string display_safe(std::string_view text);

}  // namespace kosli
