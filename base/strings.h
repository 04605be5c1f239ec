// base/strings.h — small string helpers shared by the parsers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vu::str {

// Splits s at every sep (empty fields kept).
std::vector<std::string> split(std::string_view s, char sep);
std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
// "a", "b", "c" → "a, b, c"
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// Parses a non-negative decimal number that fits in unsigned; false on anything else.
bool parse_uint(std::string_view s, unsigned long max, unsigned long* out);
// A string safe to show in a message: quoted, control characters escaped.
std::string quote(std::string_view s);

}  // namespace vu::str
