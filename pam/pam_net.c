/* pam/pam_net.c — pam_newnet.so, pam_usernet.so and pam_groupnet.so (one source, built three
 * times: -DPAM_NET_NEWNET, -DPAM_NET_USERNET, -DPAM_NET_GROUPNET), compatible with libpam-net.
 *
 *   session required pam_newnet.so   [group=NAME] [lodown]              default group newnet
 *   session required pam_usernet.so  [group=NAME] [lodown] [rootshared] default group usernet
 *   session required pam_groupnet.so [group=PFX]  [lodown] [rootshared] default prefix groupnet
 *
 * open_session, for a member of the group (others: PAM_IGNORE):
 *   newnet    unshare(CLONE_NEWNET), lo up (unless lodown).
 *   usernet   the network namespace /run/netns/USER, joined if it exists, else created (lo up)
 *   groupnet  … /run/netns/X for the first group PFX-X the user is in
 *             then a private mount namespace (/ made slave; with rootshared only /sys and /etc
 *             are private), /sys remounted for the namespace, cgroup2 on /sys/fs/cgroup when
 *             the kernel has it, and every /etc/netns/NAME/ENTRY bound over /etc/ENTRY.
 * close_session: PAM_IGNORE (namespaces outlive sessions, as in the original).
 *
 * Divergences from libpam-net 0.3, each a fix: a missing /etc/netns/NAME is not an error (the
 * original aborted the session after entering the namespace); a failed bind of one of its
 * entries fails the session (the original logged and went on; an entry with nothing of that
 * name in /etc is skipped, as `ip netns exec` does); a namespace file that could not
 * be set up is removed (the original left a stale mode-0 file); pam_get_user failures are
 * PAM_SESSION_ERR (an operator-precedence bug made them PAM_SUCCESS); a missing cgroup2 is
 * logged, not fatal. Errors go to syslog through pam_syslog, naming the step and errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#if defined(PAM_NET_NEWNET)
#define DEFAULT_GROUP "newnet"
#elif defined(PAM_NET_USERNET)
#define DEFAULT_GROUP "usernet"
#elif defined(PAM_NET_GROUPNET)
#define DEFAULT_GROUP "groupnet"
#else
#error "build with -DPAM_NET_NEWNET, -DPAM_NET_USERNET or -DPAM_NET_GROUPNET"
#endif

#define NETNS_DIR "/run/netns"
#define NETNS_ETC "/etc/netns"
#define MAX_GROUPS 256

struct options {
  const char *group;
  int lodown;
  int rootshared;
};

static int parse_args(pam_handle_t *pamh, int argc, const char **argv, struct options *o) {
  o->group = DEFAULT_GROUP;
  o->lodown = 0;
  o->rootshared = 0;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "group=", 6) == 0 && argv[i][6]) o->group = argv[i] + 6;
    else if (strcmp(argv[i], "lodown") == 0) o->lodown = 1;
    else if (strcmp(argv[i], "rootshared") == 0) o->rootshared = 1;
    else pam_syslog(pamh, LOG_ERR, "Unknown option: %s", argv[i]);
  }
  return 0;
}

/* The namespace name for this user: "" when the user is not concerned (PAM_IGNORE). */
static int namespace_name(const char *user, const struct options *o, char *name, size_t size) {
  struct passwd *pw = getpwnam(user);
  if (!pw) return -1;
  gid_t gids[MAX_GROUPS];
  int n = MAX_GROUPS;
  if (getgrouplist(user, pw->pw_gid, gids, &n) < 0) n = MAX_GROUPS;
  size_t plen = strlen(o->group);
  name[0] = 0;
  for (int i = 0; i < n; ++i) {
    struct group *gr = getgrgid(gids[i]);
    if (!gr) continue;
#if defined(PAM_NET_GROUPNET)
    if (strncmp(gr->gr_name, o->group, plen) == 0 && gr->gr_name[plen] == '-' && gr->gr_name[plen + 1]) {
      if (strlen(gr->gr_name + plen + 1) >= size) return -1;
      strcpy(name, gr->gr_name + plen + 1);
      return 0;
    }
#else
    if (strcmp(gr->gr_name, o->group) == 0) {
      (void)plen;
      if (strlen(user) >= size) return -1;
      strcpy(name, user);
      return 0;
    }
#endif
  }
  return 0;
}

static int lo_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  close(s);
  errno = e;
  return rc;
}

#if !defined(PAM_NET_NEWNET)

/* /run/netns exists and is a shared mount (as `ip netns add` makes it). */
static int netns_rundir(pam_handle_t *pamh) {
  if (mkdir(NETNS_DIR, 0755) < 0 && errno != EEXIST) {
    pam_syslog(pamh, LOG_ERR, "mkdir %s: %m", NETNS_DIR);
    return -1;
  }
  if (mount("", NETNS_DIR, NULL, MS_SHARED | MS_REC, NULL) == 0) return 0;
  if (errno != EINVAL || mount(NETNS_DIR, NETNS_DIR, NULL, MS_BIND | MS_REC, NULL) < 0 ||
      mount("", NETNS_DIR, NULL, MS_SHARED | MS_REC, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "make %s a shared mount: %m", NETNS_DIR);
    return -1;
  }
  return 0;
}

/* Joins /run/netns/NAME, creating it (and bringing lo up) if it does not exist. */
static int enter_netns(pam_handle_t *pamh, const char *name, int lodown) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", NETNS_DIR, name) >= (int)sizeof path) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    int rc = setns(fd, CLONE_NEWNET);
    if (rc < 0) pam_syslog(pamh, LOG_ERR, "setns %s: %m", path);
    close(fd);
    return rc;
  }
  if (errno != ENOENT) {
    pam_syslog(pamh, LOG_ERR, "open %s: %m", path);
    return -1;
  }
  fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    pam_syslog(pamh, LOG_ERR, "create %s: %m", path);
    return -1;
  }
  close(fd);
  if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "create network namespace %s: %m", path);
    unlink(path);
    return -1;
  }
  if (!lodown && lo_up() < 0) pam_syslog(pamh, LOG_ERR, "bring lo up in %s: %m", name);
  return 0;
}

static int remount_sys(pam_handle_t *pamh, const char *name, int rootshared) {
  if (rootshared ? mount("", "/sys", NULL, MS_PRIVATE | MS_REC, NULL) : mount("", "/", NULL, MS_SLAVE | MS_REC, NULL)) {
    pam_syslog(pamh, LOG_ERR, "mount propagation: %m");
    return -1;
  }
  unsigned long flags = MS_NOSUID | MS_NOEXEC | MS_NODEV;
  struct stat st;
  if (umount2("/sys", MNT_DETACH) < 0 && stat("/sys", &st) == 0 && access("/sys", W_OK) < 0) flags |= MS_RDONLY;
  if (mount(name, "/sys", "sysfs", flags, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "mount sysfs on /sys: %m");
    return -1;
  }
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, NULL) < 0)
    pam_syslog(pamh, LOG_NOTICE, "mount cgroup2 on /sys/fs/cgroup: %m (continuing)");
  return 0;
}

/* /etc/netns/NAME/ENTRY over /etc/ENTRY, as `ip netns exec` does. */
static int bind_etc(pam_handle_t *pamh, const char *name, int rootshared) {
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/%s", NETNS_ETC, name) >= (int)sizeof dir) return -1;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : (pam_syslog(pamh, LOG_ERR, "opendir %s: %m", dir), -1);
  int failed = 0;
  if (rootshared && (mount("/etc", "/etc", NULL, MS_BIND, NULL) < 0 || mount("", "/etc", NULL, MS_PRIVATE, NULL) < 0)) {
    pam_syslog(pamh, LOG_ERR, "make /etc private: %m");
    failed = 1;
  }
  struct dirent *e;
  while (!failed && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char from[PATH_MAX], to[PATH_MAX];
    if (snprintf(from, sizeof from, "%s/%s", dir, e->d_name) >= (int)sizeof from ||
        snprintf(to, sizeof to, "/etc/%s", e->d_name) >= (int)sizeof to) {
      failed = 1;
      break;
    }
    if (mount(from, to, NULL, MS_BIND, NULL) < 0) {
      if (errno == ENOENT) {  /* no /etc/ENTRY to cover: as ip netns exec, skip it */
        pam_syslog(pamh, LOG_NOTICE, "bind %s: %s does not exist (skipped)", from, to);
        continue;
      }
      pam_syslog(pamh, LOG_ERR, "bind %s on %s: %m", from, to);
      failed = 1;
    }
  }
  closedir(d);
  return failed ? -1 : 0;
}

#endif

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
  (void)flags;
  struct options o;
  parse_args(pamh, argc, argv, &o);
  const char *user = NULL;
  if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || !user) {
    pam_syslog(pamh, LOG_ERR, "cannot determine the user");
    return PAM_SESSION_ERR;
  }
  char name[NAME_MAX + 1];
  if (namespace_name(user, &o, name, sizeof name) < 0) {
    pam_syslog(pamh, LOG_ERR, "no usable passwd/group entry for %s", user);
    return PAM_SESSION_ERR;
  }
  if (!name[0]) return PAM_IGNORE;
#if defined(PAM_NET_NEWNET)
  if (unshare(CLONE_NEWNET) < 0) {
    pam_syslog(pamh, LOG_ERR, "unshare(CLONE_NEWNET): %m");
    return PAM_ABORT;
  }
  if (!o.lodown && lo_up() < 0) pam_syslog(pamh, LOG_ERR, "bring lo up: %m");
#else
  if (netns_rundir(pamh) < 0 || enter_netns(pamh, name, o.lodown) < 0) return PAM_ABORT;
  if (unshare(CLONE_NEWNS) < 0) {
    pam_syslog(pamh, LOG_ERR, "unshare(CLONE_NEWNS): %m");
    return PAM_ABORT;
  }
  if (remount_sys(pamh, name, o.rootshared) < 0 || bind_etc(pamh, name, o.rootshared) < 0) return PAM_ABORT;
#endif
  return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
  (void)pamh;
  (void)flags;
  (void)argc;
  (void)argv;
  return PAM_IGNORE;
}
