/* cadrop — drop ambient capabilities and run a command, as rd235/cado's:
 *   cadrop [CAPS|all|-] [CMD [ARGS…]]      (no CAPS, "all", "-" or "": every capability;
 *                                           CMD defaults to $SHELL)
 * The capabilities leave the ambient and the inheritable sets. Exit: 2 bad list or exec
 * failure, 1 $SHELL unset; else the command's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cado_parse.h"

int main(int argc, char **argv) {
  uint64_t drop = ~UINT64_C(0);
  int i = 1;
  if (i < argc && strcmp(argv[i], "--") == 0) ++i;
  if (i < argc) {
    const char *a = argv[i++];
    if (a[0] && strcmp(a, "all") != 0 && strcmp(a, "-") != 0 && cado_capset_parse(a, strlen(a), &drop) < 0) {
      fprintf(stderr, "cadrop: List of capabilities: syntax error\n");
      return 2;
    }
  }
  if (i < argc && strcmp(argv[i], "--") == 0) ++i;
  cap_t c = cap_get_proc();
  if (!c) return 2;
  for (int k = 0; k < 64; ++k) {
    if (!(drop & (UINT64_C(1) << k)) || !CAP_IS_SUPPORTED(k)) continue;
    cap_value_t v = k;
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, k, 0, 0);
    if (cap_set_flag(c, CAP_INHERITABLE, 1, &v, CAP_CLEAR) < 0) return 2;
  }
  if (cap_set_proc(c) < 0) {
    fprintf(stderr, "cadrop: %s\n", strerror(errno));
    return 2;
  }
  cap_free(c);
  char *shell[2] = {getenv("SHELL"), NULL};
  char **cmd = i < argc ? argv + i : shell;
  if (!cmd[0]) {
    fprintf(stderr, "Error: $SHELL env variable not set.\n");
    return 1;
  }
  execvp(cmd[0], cmd);
  fprintf(stderr, "cadrop: %s: %s\n", cmd[0], strerror(errno));
  return 2;
}
