// The hosts where user namespaces fail, imitated with a seccomp filter that applies to CMD and
// its descendants only (nothing global is touched). One source, three programs (DENY_MODE):
//
//   deny-userns CMD…     Docker's default profile: unshare() and clone() with CLONE_NEWUSER fail
//                        with EPERM, clone3() (whose flags a filter cannot read) with ENOSYS so
//                        libc falls back to clone().
//   deny-mount CMD…      Ubuntu >= 23.10 (kernel.apparmor_restrict_unprivileged_userns=1): user
//                        namespaces are made and their id maps written, but nothing privileged
//                        works in them: every mount call (mount, umount2, pivot_root, the new
//                        mount API) and sethostname/setdomainname fail with EPERM.
//   deny-container USER CMD…   a container: both of the above, for everyone — setuid helpers
//                        (fusermount3, newuidmap) included, since the filter is installed by root
//                        without no_new_privs — then the ids of USER, as a container runtime
//                        starts its workload. Must be run as root.
//   deny-userns-host USER CMD…  a desktop or CI host whose user namespaces are denied by a
//                        filter applied without no_new_privs (Docker's profile as the runtime
//                        applies it, a systemd unit's RestrictNamespaces=): unshare/clone with
//                        CLONE_NEWUSER fail, but setuid helpers keep their privilege, so the
//                        setuid fusermount3 still mounts (issue 16's environment B). Then the ids of
//                        USER. Must be run as root.
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MODE_USERNS 1
#define MODE_MOUNT 2
#define MODE_CONTAINER 3
#define MODE_USERNS_HOST 4
#ifndef DENY_MODE
#error "build with -DDENY_MODE=1 (userns), 2 (mount), 3 (container) or 4 (userns-host)"
#endif

static const char* const kMountCalls[] = {
    "mount",      "umount2",    "pivot_root", "fsopen",        "fsconfig",    "fsmount",
    "fspick",     "move_mount", "open_tree",  "mount_setattr", "sethostname", "setdomainname",
};

static int deny_userns(scmp_filter_ctx ctx) {
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (!rc)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  return rc;
}

static int deny_mounts(scmp_filter_ctx ctx) {
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof kMountCalls / sizeof kMountCalls[0]; ++i) {
    int nr = seccomp_syscall_resolve_name(kMountCalls[i]);
    if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: nothing to deny
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  return rc;
}

int main(int argc, char** argv) {
  const int as_root = DENY_MODE == MODE_CONTAINER || DENY_MODE == MODE_USERNS_HOST;
  const char* name = DENY_MODE == MODE_USERNS ? "deny-userns" : DENY_MODE == MODE_MOUNT ? "deny-mount"
                     : DENY_MODE == MODE_CONTAINER ? "deny-container" : "deny-userns-host";
  int first = as_root ? 2 : 1;
  if (argc <= first) {
    fprintf(stderr, "usage: %s %sCMD [ARGS...]\n", name, as_root ? "USER " : "");
    return 2;
  }
  struct passwd* pw = NULL;
  if (as_root) {
    if (geteuid() != 0) {
      fprintf(stderr, "%s: must run as root (it installs the filter without no_new_privs)\n", name);
      return 2;
    }
    if (!(pw = getpwnam(argv[1]))) {
      fprintf(stderr, "%s: no user %s\n", name, argv[1]);
      return 2;
    }
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    fprintf(stderr, "%s: seccomp_init failed\n", name);
    return 125;
  }
  int rc = 0;
  if (DENY_MODE != MODE_MOUNT) rc = deny_userns(ctx);
  if (!rc && DENY_MODE != MODE_USERNS && DENY_MODE != MODE_USERNS_HOST) rc = deny_mounts(ctx);
  // As root, no no_new_privs: setuid programs started below keep their privileges (and the filter).
  if (!rc && as_root) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (!rc) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc) {
    fprintf(stderr, "%s: installing the filter: %s\n", name, strerror(-rc));
    return 125;
  }
  if (pw && (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)) {
    fprintf(stderr, "%s: becoming %s: %s\n", name, pw->pw_name, strerror(errno));
    return 125;
  }
  execvp(argv[first], argv + first);
  fprintf(stderr, "%s: %s: %s\n", name, argv[first], strerror(errno));
  return 127;
}
