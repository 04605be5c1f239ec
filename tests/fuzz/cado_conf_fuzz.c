/* libFuzzer target: /etc/cado.conf as cado parses it (cado_conf_allowed), for a user in two
 * groups, with and without a wanted set, conditions answered by the input's first byte. */
#include <stddef.h>
#include <stdint.h>

#include "cado_parse.h"

static int cond(const char *cmd, size_t len, void *ctx) {
  (void)cmd;
  return (int)(len + *(const uint8_t *)ctx) & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const groups[] = {"wheel", "netdev", NULL};
  const struct cado_who who = {"alice", groups};
  uint8_t salt = size ? data[0] : 0;
  int bad;
  uint64_t all = cado_conf_allowed((const char *)data, size, NULL, ~UINT64_C(0), cond, &salt, &bad);
  uint64_t mine = cado_conf_allowed((const char *)data, size, &who, ~UINT64_C(0), cond, &salt, &bad);
  uint64_t some = cado_conf_allowed((const char *)data, size, &who, UINT64_C(0x3000), cond, &salt, &bad);
  /* What one user is allowed is among what the file names at all. */
  if ((mine & ~all) || (some & ~all)) __builtin_trap();
  uint64_t caps;
  (void)cado_capset_parse((const char *)data, size, &caps);
  return 0;
}
