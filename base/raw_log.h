// base/raw_log.h — logging for the restricted zone between clone() and execve().
//
// Nothing here allocates, takes a lock or touches errno-unsafe state: only write(2) to a fixed
// fd on a stack buffer. Use it (sparingly) in the child of a clone; everywhere else use log.h.
//
//   vu::raw::write_str(2, "vu: warning: cannot enter ", cwd, "; starting in /\n");
#pragma once

#include <cstddef>

namespace vu::raw {

// Writes each NUL-terminated part in turn to fd, as one write(2) when they fit in 512 bytes.
void write_parts(int fd, const char* const* parts, size_t n);

template <typename... S>
void write_str(int fd, const S&... s) {
  const char* parts[] = {s...};
  write_parts(fd, parts, sizeof...(S));
}

// Formats v in decimal into buf (at least 12 bytes); returns buf.
char* format_int(int v, char* buf);

}  // namespace vu::raw
