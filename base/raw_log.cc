#include "base/raw_log.h"

#include <unistd.h>

namespace vu::raw {

void write_parts(int fd, const char* const* parts, size_t n) {
  char buf[512];
  size_t len = 0;
  for (size_t i = 0; i < n; ++i) {
    for (const char* p = parts[i]; *p; ++p) {
      if (len == sizeof buf) {
        (void)!::write(fd, buf, len);
        len = 0;
      }
      buf[len++] = *p;
    }
  }
  if (len) (void)!::write(fd, buf, len);
}

char* format_int(int v, char* buf) {
  char tmp[12];
  unsigned u = v < 0 ? 0u - static_cast<unsigned>(v) : static_cast<unsigned>(v);
  int i = 0;
  do {
    tmp[i++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u);
  int j = 0;
  if (v < 0) buf[j++] = '-';
  while (i) buf[j++] = tmp[--i];
  buf[j] = 0;
  return buf;
}

}  // namespace vu::raw
