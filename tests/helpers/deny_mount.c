// deny-mount CMD [ARGS...] — run CMD the way Ubuntu >= 23.10 treats unprivileged user namespaces
// (kernel.apparmor_restrict_unprivileged_userns=1): unshare/clone(CLONE_NEWUSER) still work and
// the id maps can be written, but nothing privileged works in the namespace: every mount call
// (mount, umount2, pivot_root and the new mount API) and sethostname/setdomainname fail with
// EPERM. Nothing global is touched: the filter applies to CMD and its descendants only.
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char* const kDenied[] = {
    "mount",      "umount2",    "pivot_root", "fsopen",      "fsconfig",    "fsmount",
    "fspick",     "move_mount", "open_tree",  "mount_setattr", "sethostname", "setdomainname",
};

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: deny-mount CMD [ARGS...]\n");
    return 2;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    fprintf(stderr, "deny-mount: seccomp_init failed\n");
    return 125;
  }
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof kDenied / sizeof kDenied[0]; ++i) {
    int nr = seccomp_syscall_resolve_name(kDenied[i]);
    if (nr == __NR_SCMP_ERROR) continue;  // not known to this libseccomp: the kernel has it or not
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  if (!rc) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc) {
    fprintf(stderr, "deny-mount: installing the filter: %s\n", strerror(-rc));
    return 125;
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "deny-mount: %s: %s\n", argv[1], strerror(errno));
  return 127;
}
