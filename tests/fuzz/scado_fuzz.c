/* libFuzzer target: scado spool files (cado_scado_find, cado_scado_check_line). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cado_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  uint64_t caps;
  char digest[65];
  digest[64] = 'x';
  if (cado_scado_find(text, size, "/usr/bin/ping", &caps, digest) && digest[0] && strlen(digest) != 64)
    __builtin_trap();
  const char *p = text;
  size_t left = size;
  while (left) {
    const char *nl = memchr(p, '\n', left);
    size_t l = nl ? (size_t)(nl - p) : left;
    (void)cado_scado_check_line(p, l);
    p += l + (nl ? 1 : 0);
    left -= l + (nl ? 1 : 0);
  }
  return 0;
}
