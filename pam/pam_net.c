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
 *             then a private mount namespace (/ made slave, unless rootshared; /sys and /etc
 *             private), a sysfs for the namespace over /sys, cgroup2 on /sys/fs/cgroup when
 *             the kernel has it, and every /etc/netns/NAME/ENTRY bound over /etc/ENTRY.
 * close_session: PAM_IGNORE (namespaces outlive sessions, as in the original).
 *
 * Everything done to the host's mount namespace (/run/netns, the namespace files, rootshared's
 * mount points) happens under an exclusive flock of /run/pam_net.lock (root's), so concurrent first sessions
 * never meet a half-made namespace file; a session of a namespace made before joins it without
 * the lock (but with rootshared), and a first session waits for the lock 10 s at most. With
 * rootshared the session's / stays a peer of the host's: a mount made on one of its directories would propagate to the host, so the session
 * only makes private, and mounts over, mount points the host has already — /sys, and /etc when
 * /etc/netns/NAME exists; one that is not, on a shared mount, is bound onto itself in the host,
 * once (as ip netns does for /run/netns).
 *
 * Divergences from libpam-net 0.3, each a fix: an /etc/netns/NAME that is not root's, or that
 * group or others may write, refuses the session (its entries replace /etc/shadow, sudoers…
 * in it), and so does such an entry (what it is or points to, and everything in it); an entry covers /etc/ENTRY itself, never what a symlink there points to (with
 * rootshared, /etc/resolv.conf -> /run/… put the bind on the host's /run); a missing /etc/netns/NAME is not an error (the
 * original aborted the session after entering the namespace); a failed bind of one of its
 * entries fails the session (the original logged and went on; an entry with nothing of that
 * name in /etc is skipped, as `ip netns exec` does); a namespace file that could not
 * be set up is removed (the original left a stale mode-0 file), and one left by a session killed
 * while making it is made again; concurrent first sessions are serialized (the original refused
 * some), and no user can stop the lock's holder (under su or sudo it holds it with root's real
 * uid and the terminal's stop signals blocked); rootshared leaves no mount in the host per session (the original left a sysfs and an
 * /etc bind each time); pam_get_user failures are PAM_SESSION_ERR (an operator-precedence bug
 * made them PAM_SUCCESS); a missing cgroup2 is logged, not fatal. Errors go to syslog through pam_syslog, naming the step and errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <security/pam_ext.h>
#include <linux/magic.h>
#include <security/pam_modules.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>
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
#define NETNS_LOCK "/run/pam_net.lock"
#define LOCK_PAUSE_NS 20000000L /* the lock is tried every 20 ms… */
#define LOCK_TRIES 500          /* …for 10 s at most */
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
    if (strncmp(gr->gr_name, o->group, plen) != 0 || gr->gr_name[plen] != '-') continue;
    const char *ns = gr->gr_name + plen + 1;
#else
    if (strcmp(gr->gr_name, o->group) != 0) continue;
    const char *ns = user;
    (void)plen;
#endif
    if (!*ns) continue;
    /* a file name in /run/netns and /etc/netns: no '/', not "." or ".." */
    if (strlen(ns) >= size || strchr(ns, '/') || strcmp(ns, ".") == 0 || strcmp(ns, "..") == 0) return -1;
    strcpy(name, ns);
    return 0;
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

/* The lock, and what the process was before taking it. */
struct held {
  int fd;
  uid_t ruid;     /* the real uid to give back (su, sudo: the caller's) */
  int ruid_set;   /* the real uid is root's until unlock_rundir */
  sigset_t mask;  /* the signal mask to give back */
};

/* Gives the lock back, then the real uid and the signal mask. Returns 0, or -1 (logged) when
 * the real uid could not be given back. */
static int unlock_rundir(pam_handle_t *pamh, struct held *h) {
  if (h->fd >= 0) close(h->fd);
  h->fd = -1;
  int rc = 0;
  if (h->ruid_set && setresuid(h->ruid, (uid_t)-1, (uid_t)-1) < 0) {
    pam_syslog(pamh, LOG_ERR, "give the real uid %u back: %m", (unsigned)h->ruid);
    rc = -1;
  }
  h->ruid_set = 0;
  sigprocmask(SIG_SETMASK, &h->mask, NULL);
  return rc;
}

/* Takes the lock (flock, exclusive) that covers every change pam_net makes to the host's mount
 * namespace, and creates /run/netns. The lock file is root's alone (/run is writable by root
 * only): a lock on something any user can open, such as /run/netns itself, would let any user
 * hold every first login up. So would a user who could stop the holder: su and sudo run this
 * module with the caller's real uid, which may send them SIGSTOP, and ^Z sends SIGTSTP to the
 * terminal's foreground. From before the wait until unlock_rundir the real uid is root's (no
 * user may signal the process) and SIGTSTP, SIGTTIN and SIGTTOU are blocked. Fills *h (h->fd
 * holds the lock); returns 0, or -1 with everything given back. */
static int lock_rundir(pam_handle_t *pamh, struct held *h) {
  uid_t r, e, s;
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTSTP);
  sigaddset(&stops, SIGTTIN);
  sigaddset(&stops, SIGTTOU);
  h->fd = -1;
  h->ruid_set = 0;
  sigprocmask(SIG_BLOCK, &stops, &h->mask);
  if (getresuid(&r, &e, &s) < 0 || (e == 0 && r != 0 && setresuid(0, (uid_t)-1, (uid_t)-1) < 0)) {
    pam_syslog(pamh, LOG_ERR, "make the real uid root's while holding %s: %m", NETNS_LOCK);
    sigprocmask(SIG_SETMASK, &h->mask, NULL);
    return -1;
  }
  h->ruid = r;
  h->ruid_set = e == 0 && r != 0;
  int fd = open(NETNS_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  struct stat st;
  int rc = fd < 0 || fstat(fd, &st) < 0 ? -1 : 0;
  if (rc == 0 && (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077))) {
    errno = EPERM;
    rc = -1;
  }
  /* A bounded wait: a holder no signal stops may still be frozen (su run in a cgroup its caller
   * may freeze, e.g. under systemd-run --user); a first session is refused then, not held up. */
  for (int tries = 0; rc == 0 && (rc = flock(fd, LOCK_EX | LOCK_NB)) < 0 && (errno == EWOULDBLOCK || errno == EINTR);) {
    if (++tries >= LOCK_TRIES) {
      errno = EWOULDBLOCK;
      break;
    }
    struct timespec pause = {0, LOCK_PAUSE_NS};
    nanosleep(&pause, NULL);
    rc = 0;
  }
  if (rc < 0) {
    pam_syslog(pamh, LOG_ERR, "lock %s (root's, mode 0600; waited at most %d s): %m", NETNS_LOCK,
               (int)((long long)LOCK_TRIES * LOCK_PAUSE_NS / 1000000000));
    h->fd = fd;
    unlock_rundir(pamh, h);
    return -1;
  }
  h->fd = fd;
  if (mkdir(NETNS_DIR, 0755) < 0 && errno != EEXIST) {
    pam_syslog(pamh, LOG_ERR, "mkdir %s: %m", NETNS_DIR);
    unlock_rundir(pamh, h);
    return -1;
  }
  return 0;
}

/* /run/netns is a shared mount (as `ip netns add` makes it). */
static int netns_rundir(pam_handle_t *pamh) {
  if (mount("", NETNS_DIR, NULL, MS_SHARED | MS_REC, NULL) == 0) return 0;
  if (errno != EINVAL || mount(NETNS_DIR, NETNS_DIR, NULL, MS_BIND | MS_REC, NULL) < 0 ||
      mount("", NETNS_DIR, NULL, MS_SHARED | MS_REC, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "make %s a shared mount: %m", NETNS_DIR);
    return -1;
  }
  return 0;
}

/* Joins /run/netns/NAME if it is a namespace: 1 joined, 0 it is not (fd: it, open, or -1 with
 * errno), -1 setns failed (logged). Needs no lock: a namespace file is mounted once made. */
static int join_netns(pam_handle_t *pamh, const char *path, int *fd) {
  struct statfs fs;
  *fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd < 0 || fstatfs(*fd, &fs) < 0 || fs.f_type != NSFS_MAGIC) return 0;
  int rc = setns(*fd, CLONE_NEWNET);
  if (rc < 0) pam_syslog(pamh, LOG_ERR, "setns %s: %m", path);
  close(*fd);
  *fd = -1;
  return rc < 0 ? -1 : 1;
}

/* Joins /run/netns/NAME, creating it (and bringing lo up) if it does not exist. Under the lock:
 * a file there that is not a namespace was left by a session killed while making it. */
static int enter_netns(pam_handle_t *pamh, const char *name, int lodown) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", NETNS_DIR, name) >= (int)sizeof path) return -1;
  int fd;
  int joined = join_netns(pamh, path, &fd);
  if (joined) return joined < 0 ? -1 : 0;
  if (fd >= 0) {
    close(fd);
    pam_syslog(pamh, LOG_NOTICE, "%s is not a namespace (half-made): made again", path);
    if (unlink(path) < 0) {
      pam_syslog(pamh, LOG_ERR, "unlink %s: %m", path);
      return -1;
    }
  } else if (errno != ENOENT) {
    pam_syslog(pamh, LOG_ERR, "open %s: %m", path);
    return -1;
  }
  fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    pam_syslog(pamh, LOG_ERR, "create %s: %m", path);
    return -1;
  }
  close(fd);
  if (unshare(CLONE_NEWNET) < 0 || mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "create network namespace %s: %m", path);
    unlink(path);
    return -1;
  }
  if (!lodown && lo_up() < 0) pam_syslog(pamh, LOG_ERR, "bring lo up in %s: %m", name);
  return 0;
}

/* Whether the mount with this id is shared (mountinfo's optional field "shared:N"); 1 when it
 * cannot be told (the safe side). */
static int mount_is_shared(uint64_t id) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return 1;
  char *line = NULL;
  size_t size = 0;
  int shared = 1;
  while (getline(&line, &size, f) > 0) {
    char *end;
    if (strtoull(line, &end, 10) != id || *end != ' ') continue;
    char *sep = strstr(line, " - "), *tag = strstr(line, " shared:");
    shared = tag && sep && tag < sep;
    break;
  }
  free(line);
  fclose(f);
  return shared;
}

enum bind_when { BIND_IF_SHARED, BIND_ALWAYS };

/* rootshared: unless path is a mount point already, binds it onto itself. In the host's
 * namespace only when it lies in a shared mount (BIND_IF_SHARED: else nothing propagates and
 * the host is left alone); in the session's always (it is not shared there, or the host's
 * would have been bound). */
static int own_mount_point(pam_handle_t *pamh, const char *path, enum bind_when when) {
  struct statx st;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &st) < 0 ||
      !(st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(st.stx_mask & STATX_MNT_ID)) {
    pam_syslog(pamh, LOG_ERR, "statx %s (mount root, mount id): %m", path);
    return -1;
  }
  if ((st.stx_attributes & STATX_ATTR_MOUNT_ROOT) || (when == BIND_IF_SHARED && !mount_is_shared(st.stx_mnt_id)) ||
      mount(path, path, NULL, MS_BIND | MS_REC, NULL) == 0)
    return 0;
  pam_syslog(pamh, LOG_ERR, "bind %s onto itself: %m", path);
  return -1;
}

/* In the session's namespace: / a slave of the host's (with rootshared it stays a peer); /sys
 * and /etc (when there is an /etc/netns/NAME) private mount points of their own. What the
 * session mounts there then sits on its own mounts, and a mount the host makes later on /etc
 * is slipped beneath them, not over them. */
static int session_propagation(pam_handle_t *pamh, int rootshared, int etc) {
  if ((!rootshared && mount("", "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) ||
      own_mount_point(pamh, "/sys", BIND_ALWAYS) < 0 || (etc && own_mount_point(pamh, "/etc", BIND_ALWAYS) < 0) ||
      mount("", "/sys", NULL, MS_PRIVATE | MS_REC, NULL) < 0 ||
      (etc && mount("", "/etc", NULL, MS_PRIVATE | MS_REC, NULL) < 0)) {
    pam_syslog(pamh, LOG_ERR, "mount propagation: %m");
    return -1;
  }
  return 0;
}

/* A sysfs of the namespace over /sys (read-only if /sys is), cgroup2 over /sys/fs/cgroup. */
static int remount_sys(pam_handle_t *pamh, const char *name) {
  unsigned long flags = MS_NOSUID | MS_NOEXEC | MS_NODEV;
  struct statvfs vfs;
  if (statvfs("/sys", &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) flags |= MS_RDONLY;
  if (mount(name, "/sys", "sysfs", flags, NULL) < 0) {
    pam_syslog(pamh, LOG_ERR, "mount sysfs on /sys: %m");
    return -1;
  }
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, NULL) < 0)
    pam_syslog(pamh, LOG_NOTICE, "mount cgroup2 on /sys/fs/cgroup: %m (continuing)");
  return 0;
}

/* For nftw over a directory entry of /etc/netns/NAME: the first object below it that another
 * than root could write (or what a symlink there points to), or that cannot be looked at. */
static char unsafe_below[PATH_MAX];
static int check_below(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  struct stat target;
  int bad = type == FTW_NS || type == FTW_DNR;
  if (type == FTW_SL) bad = stat(path, &target) == 0 && (target.st_uid != 0 || (target.st_mode & (S_IWGRP | S_IWOTH)));
  else if (!bad) bad = st->st_uid != 0 || (st->st_mode & (S_IWGRP | S_IWOTH));
  if (bad) snprintf(unsafe_below, sizeof unsafe_below, "%s", path);
  return bad;
}

/* /etc/netns/NAME/ENTRY over /etc/ENTRY, as `ip netns exec` does, but over /etc/ENTRY itself
 * when it is a symlink, never over what it points to: /etc/resolv.conf -> /run/… would put the
 * bind on /run, which with rootshared is a peer of the host's (every process on the host would
 * see the namespace's file). open_tree + move_mount without MOVE_MOUNT_T_SYMLINKS. */
static int bind_etc(pam_handle_t *pamh, const char *dir) {
  DIR *d = opendir(dir);
  int etc = open("/etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (!d || etc < 0) {
    pam_syslog(pamh, LOG_ERR, "open %s and /etc: %m", dir);
    if (d) closedir(d);
    if (etc >= 0) close(etc);
    return -1;
  }
  int failed = 0;
  struct dirent *e;
  while (!failed && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char from[PATH_MAX];
    if (snprintf(from, sizeof from, "%s/%s", dir, e->d_name) >= (int)sizeof from) {
      failed = 1;
      break;
    }
    int tree = open_tree(AT_FDCWD, from, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
      pam_syslog(pamh, LOG_ERR, "bind %s: %m", from);
      failed = 1;
      break;
    }
    /* What is bound (a symlink entry's target included) replaces /etc/ENTRY for the session's
     * setuid programs too: root's, written by no one else, as /etc/netns/NAME itself. */
    struct stat est;
    if (fstat(tree, &est) < 0 || est.st_uid != 0 || (est.st_mode & (S_IWGRP | S_IWOTH))) {
      pam_syslog(pamh, LOG_ERR, "%s is not root's or is writable by others: refused", from);
      close(tree);
      failed = 1;
      break;
    }
    /* A directory: everything in it (the tree that is bound, walked through its descriptor). */
    char below[64];  /* (".": nftw takes the magic link itself for a symlink, and stops there) */
    snprintf(below, sizeof below, "/proc/self/fd/%d/.", tree);
    unsafe_below[0] = 0;
    if (S_ISDIR(est.st_mode) && nftw(below, check_below, 8, FTW_PHYS) != 0) {
      pam_syslog(pamh, LOG_ERR, "%s: %s is not root's or is writable by others: refused", from,
                 strlen(unsafe_below) > strlen(below) ? unsafe_below + strlen(below) + 1 : "a file in it");
      close(tree);
      failed = 1;
      break;
    }
    if (move_mount(tree, "", etc, e->d_name, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      if (errno == ENOENT) {  /* no /etc/ENTRY to cover: as ip netns exec, skip it */
        pam_syslog(pamh, LOG_NOTICE, "bind %s: /etc/%s does not exist (skipped)", from, e->d_name);
      } else {
        pam_syslog(pamh, LOG_ERR, "bind %s on /etc/%s: %m", from, e->d_name);
        failed = 1;
      }
    }
    close(tree);
  }
  closedir(d);
  close(etc);
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
  char etc[PATH_MAX];
  struct stat st;
  if (snprintf(etc, sizeof etc, "%s/%s", NETNS_ETC, name) >= (int)sizeof etc) return PAM_ABORT;
  int has_etc = stat(etc, &st) == 0; /* a missing /etc/netns/NAME is fine */
  /* Its entries cover /etc in the session (shadow, sudoers, pam.d…): only root may choose them. */
  if (has_etc && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
    pam_syslog(pamh, LOG_ERR, "%s is not root's or is writable by others: refused", etc);
    return PAM_ABORT;
  }
  /* A namespace made before is joined without the lock (rootshared takes it: its own mount
   * points in the host may be still to make): only first sessions ever wait for it. */
  char path[PATH_MAX];
  int joined = 0, fd = -1;
  if (!o.rootshared && snprintf(path, sizeof path, "%s/%s", NETNS_DIR, name) < (int)sizeof path) {
    joined = join_netns(pamh, path, &fd);
    if (fd >= 0) close(fd);
    if (joined < 0) return PAM_ABORT;
  }
  if (!joined) {
    struct held lock;
    if (lock_rundir(pamh, &lock) < 0) return PAM_ABORT;
    int failed = netns_rundir(pamh) < 0 || enter_netns(pamh, name, o.lodown) < 0 ||
                 (o.rootshared && (own_mount_point(pamh, "/sys", BIND_IF_SHARED) < 0 ||
                                   (has_etc && own_mount_point(pamh, "/etc", BIND_IF_SHARED) < 0)));
    if (unlock_rundir(pamh, &lock) < 0 || failed) return PAM_ABORT;
  }
  if (unshare(CLONE_NEWNS) < 0) {
    pam_syslog(pamh, LOG_ERR, "unshare(CLONE_NEWNS): %m");
    return PAM_ABORT;
  }
  if (session_propagation(pamh, o.rootshared, has_etc) < 0 || remount_sys(pamh, name) < 0 ||
      (has_etc && bind_etc(pamh, etc) < 0))
    return PAM_ABORT;
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
