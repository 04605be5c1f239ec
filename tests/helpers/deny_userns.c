// deny-userns CMD [ARGS...] — run CMD where user namespaces are refused the way Docker's default
// seccomp profile refuses them: unshare() and clone() with CLONE_NEWUSER fail with EPERM, and
// clone3() (whose flags a filter cannot read) fails with ENOSYS so libc falls back to clone().
// Nothing global is touched: the filter applies to CMD and its descendants only.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: deny-userns CMD [ARGS...]\n");
    return 2;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    fprintf(stderr, "deny-userns: seccomp_init failed\n");
    return 125;
  }
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (!rc)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (!rc) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc) {
    fprintf(stderr, "deny-userns: installing the filter: %s\n", strerror(-rc));
    return 125;
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "deny-userns: %s: %s\n", argv[1], strerror(errno));
  return 127;
}
