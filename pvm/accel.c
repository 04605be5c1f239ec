// pvm/accel.c — libvu-pvm-accel.so: the in-process fast path of the partial virtual machine.
//
// Every call the seccomp filter sends to the monitor costs a round trip between two processes
// (~20 us on the 2-core reference VM, almost all of it the two context switches). A tree walk
// (find, tar, du, rm -r) makes one stat and often one open per entry, nearly all of them of the
// form fstatat(dirfd, "name") / openat(dirfd, "name", O_RDONLY|O_NOFOLLOW…). For those the view's
// answer can be proven equal to the host's with two native system calls, in the caller itself:
//   - `name` is one component (no '/', not "." or ".."): the lookup is one step from dirfd;
//   - dirfd's directory is not the place of any mountpoint of the view: the monitor passes the
//     (st_dev, st_ino) of every directory that holds a mountpoint, and fstat(dirfd) is compared
//     with them, so the step cannot land on a mount;
//   - the entry is not a symlink that would be followed (it could point anywhere in the view).
// Then the native result is the view's result; only the owner ids are mapped (own ids kept or
// 0 under --root, others 65534), exactly as the monitor maps them. fstat(fd) is always exact.
//
// Whole paths (views with mounts; "Whole paths" below): the library also knows the view's mount
// table, so an absolute path is mapped to its host path here (the deepest mount covering it, or
// none), a relative one from a directory with no mountpoint below it is the host's as it is, and
// the kernel is asked with openat2(RESOLVE_NO_SYMLINKS), which fails where a symlink could lead
// elsewhere in the view; symlinks are then expanded in view terms here (readlinkat, realpath's
// walk). That covers open/openat/creat/fopen, the stat family, access, realpath, and the calls
// that make, remove and change names (mkdir, unlink, rmdir, rename, utimensat, chmod) outside
// read-only mounts and away from mountpoints. With a bind and a tmpfs, a C build's configure,
// make and make check trap 6x fewer calls (bench/pvm_files.sh). What still traps: ld.so's own
// calls at each exec (they never pass through a PLT), /proc, "..", writes near mountpoints or in
// read-only mounts, and everything in static binaries. Directory streams of directories that hold
// no mountpoint are read natively (getdents64), as are one-component readlinkat calls there.
// Anything else goes to libc as usual and so to the monitor. The library is only an
// accelerator: without it (static binaries, a cleared environment) every answer is the same,
// only slower.
//
// The native calls are made from a trampoline page mapped at a fixed address; the filter
// (pvm/monitor.cc, kNative) lets exactly these system calls pass when they are made from that
// address. A program that deliberately jumps there can read metadata without the view's id
// mapping and open, make or remove files outside the path map: an accepted limit, pvm is a
// view, not a sandbox (bwrap's or a seccomp profile's job).
//
// A view without mounts ("a" below) is simpler still: every lookup is the host's, so every stat
// is answered natively and only the owners are mapped.
//
// Configuration comes in the environment,
// VU_PVM_ACCEL=1:UID:GID:ROOT:a|m:DEV.INO,…[:ANCESTORS:MOUNTS] (see parse_whole), and is
// removed from it (with LD_PRELOAD) at load time, so the command sees the environment it was
// given; the monitor puts both back into every execve.
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <limits.h>

#include "pvm/accel_abi.h"

extern char** environ;

#define EXPORT __attribute__((visibility("default")))
// glibc declares some of the arguments below nonnull; programs pass NULL all the same (utimensat's
// path for futimens), and the kernel's answer is theirs.
#pragma GCC diagnostic ignored "-Wnonnull-compare"
#define REAL(type, name) ((type)dlsym(RTLD_NEXT, name))
// glibc's own function (its checks and fallbacks, not only the system call), looked up once.
#define CALL_REAL(ret, name, params, ...)          \
  do {                                             \
    typedef ret(*fn_t) params;                     \
    static fn_t f_;                                \
    if (!f_) f_ = (fn_t)dlsym(RTLD_NEXT, #name);   \
    if (!f_) return errno = ENOSYS, (ret)-1;       \
    return f_(__VA_ARGS__);                        \
  } while (0)

static int enabled;
static uid_t own_uid;
static gid_t own_gid;
static int as_root;
static unsigned shown_uid, shown_gid;  // under --root (or an image's User): the caller's ids as shown
static int all_paths_plain;  // no mounts in the view: every lookup is the host's
static struct {
  unsigned long dev, ino;
} holders[VU_ACCEL_MAX_HOLDERS];
static int n_holders;
// Whole paths (views with mounts): the view's mount table, and the (st_dev, st_ino) of every
// directory that holds a mountpoint anywhere below it in the view ("ancestors", the holders
// among them). See map_abs() and rel_plain().
static int path_fast;
static struct {
  char* view;
  size_t vlen;
  char* host;
  size_t hlen;
  int ro;
  char* upper;  // a copy-on-write directory's layer (host: its lower directory), else NULL
  size_t ulen;
  int nested;   // copy-on-write: another mount lies below its view
} mounts[VU_ACCEL_MAX_MOUNTS];
static int n_mounts, has_ro_mounts, has_cows;
static int table_read;  // the whole mount table was read (parse_whole)
static struct {
  unsigned long dev, ino;
} ancestors[VU_ACCEL_MAX_HOLDERS];
static int n_ancestors;
static unsigned long proc_dev;  // /proc's st_dev: lookups from a /proc directory are the monitor's
typedef long (*tramp_fn)(long nr, long a, long b, long c, long d, long e);
static tramp_fn tramp;

static long native(long nr, long a, long b, long c, long d, long e) {
  long rc = tramp(nr, a, b, c, d, e);
  if (rc < 0 && rc > -4096) {
    errno = (int)-rc;
    return -1;
  }
  return rc;
}

// An owner as the view shows it: the caller's own id (0 under --root), anyone else 65534.
static unsigned view_id(unsigned id, unsigned own, unsigned shown) {
  return id == own ? (as_root ? shown : own) : VU_ACCEL_OVERFLOW_ID;
}

static void map_ids(struct stat* st) {
  st->st_uid = view_id(st->st_uid, own_uid, shown_uid);
  st->st_gid = view_id(st->st_gid, own_gid, shown_gid);
}


// Whether the string at p can be read here. A bad pointer (NULL, 0xdeadc0de: pjdfstest passes
// both) must get the kernel's EFAULT through the monitor's way, not crash the caller in this
// library. Each page the string touches is looked up with mincore (ENOMEM: not mapped), and the
// last good pages are remembered (a page unmapped since would crash here, as in the caller's own
// code: its bug). A page mapped without PROT_READ is not seen.
// A string of PATH_MAX bytes or more is not taken either: the monitor says ENAMETOOLONG, as the
// kernel does (the fast path splits a path into its parent and a name, which would not).
static uintptr_t good_pages[8];
static unsigned next_good;
static int readable(const char* p) {
  uintptr_t a = (uintptr_t)p;
  const uintptr_t start = a;
  if (a < 65536) return 0;
  for (int n = 0; n < PATH_MAX / 4096 + 2; ++n) {
    const uintptr_t page = a & ~(uintptr_t)4095;
    int known = 0;
    for (int i = 0; i < 8; ++i) known |= __atomic_load_n(&good_pages[i], __ATOMIC_RELAXED) == page;
    if (!known) {
      unsigned char v;
      if (mincore((void*)page, 1, &v) < 0) return 0;
      __atomic_store_n(&good_pages[__atomic_fetch_add(&next_good, 1, __ATOMIC_RELAXED) & 7], page, __ATOMIC_RELAXED);
    }
    const char* nul = memchr((const void*)a, 0, page + 4096 - a);
    if (nul) return (uintptr_t)nul - start < PATH_MAX;
    a = page + 4096;
    if (a - start >= PATH_MAX) return 0;
  }
  return 0;
}
static int simple_name(const char* name) {
  if (!name || !name[0] || strchr(name, '/')) return 0;
  if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) return 0;
  return 1;
}

static int within(const char* p, size_t n, const char* dir, size_t dn);

// ---------------------------------------------------------------------------------------------
// Copy-on-write directories (--cow, pvm/cow.h). Below one every lookup is a merged lookup of
// the layer over the lower directory, which only the monitor makes: a descriptor (or the cwd)
// whose host path is in a layer or a lower directory is never a start of the shortcuts here
// (in_cow), and a path that the mount table maps into one is the monitor's (map_abs). The host
// path is the kernel's own (readlink of /proc/thread-self/fd/N, or cwd), read for every such
// decision: a (st_dev, st_ino) test cannot tell (a lower tree may hold other filesystems, a
// directory may be moved), and nothing is cached.
// Two calls of a file extraction (tar x into a new directory) are answered here all the same,
// because the monitor would let the kernel run them unchanged (SECCOMP_USER_NOTIF_FLAG_CONTINUE):
//   - an open relative to a directory only the layer has (cow_open): PathMap::resolve's
//     "cow_plain" walk. The directory's host path is in a layer, its cow has no mount below
//     its view, and the lower directory has nothing at the same relative path (ENOENT or
//     ENOTDIR from a native fstatat: then no name below it has a lower counterpart either,
//     opaque or not). The open is openat2 from the descriptor with RESOLVE_BENEATH |
//     RESOLVE_NO_SYMLINKS (no "..", no symlink: the names walked are the layer's own). Any
//     failure is the monitor's to answer (a whiteout met: EEXIST for O_EXCL, ENXIO for an open
//     of the 0/0 device, ENOTDIR on the way; --root's override on EACCES);
//   - futimens and fchmod of a descriptor of the layer's own file (fd_change_native): the
//     monitor changes the layer's copy of a lower file's descriptor, and says EROFS on a
//     read-only mount, otherwise lets the call run; here a host path in a layer whose cow has no
//     mount below it, and in nothing else of the table, runs natively (and, in a view without
//     read-only mounts, one in no copy-on-write directory at all).

// The host path of fd (AT_FDCWD: the cwd) as the kernel names it: its length, or 0.
static size_t fd_host(int fd, char* out, size_t cap) {
  char link[48] = "/proc/thread-self/cwd";
  if (fd != AT_FDCWD) {
    char digits[16];
    int n = 0;
    unsigned v = (unsigned)fd;
    do digits[n++] = (char)('0' + v % 10), v /= 10; while (v);
    char* q = stpcpy(link, "/proc/thread-self/fd/");
    while (n) *q++ = digits[--n];
    *q = 0;
  }
  long n = native(SYS_readlinkat, AT_FDCWD, (long)link, (long)out, (long)cap - 1, 0);
  if (n <= 0 || (size_t)n >= cap - 1) return 0;
  out[n] = 0;
  return (size_t)n;
}

// 1 when fd (or the cwd) may be in a copy-on-write directory's layer or lower directory: an
// unknown path is (a pipe's or socket's name, "pipe:[…]", is not).
static int in_cow(int fd) {
  if (!has_cows) return 0;
  char h[PATH_MAX];
  size_t n = fd_host(fd, h, sizeof h);
  if (!n) return 1;
  if (h[0] != '/') return h[0] == '(';  // "(unreachable)/…"
  for (int i = 0; i < n_mounts; ++i)
    if (mounts[i].upper && (within(h, n, mounts[i].upper, mounts[i].ulen) || within(h, n, mounts[i].host, mounts[i].hlen)))
      return 1;
  return 0;
}

// The copy-on-write mount whose layer holds the host path h (n bytes), with no mount below its
// view, when the monitor places h there too: no other layer or lower directory holds h, and no
// other mount's source holds it as closely (PathMap::to_view takes the longest). Its index,
// else -1; *rel: where the rest starts in h.
static int layer_only(const char* h, size_t n, size_t* rel) {
  int found = -1;
  for (int i = 0; i < n_mounts; ++i)
    if (mounts[i].upper && within(h, n, mounts[i].upper, mounts[i].ulen)) {
      if (found >= 0 || mounts[i].nested) return -1;
      found = i;
    }
  if (found < 0) return -1;
  for (int i = 0; i < n_mounts; ++i)
    if (within(h, n, mounts[i].host, mounts[i].hlen) && (mounts[i].upper || mounts[i].hlen >= mounts[found].ulen))
      return -1;
  *rel = mounts[found].ulen == 1 ? 0 : mounts[found].ulen;
  return found;
}

// 1 when futimens/fchmod of fd are the kernel's as they are, as the monitor decides them
// (do_utimes, do_fd_change: EROFS on a read-only mount, a lower file's copy-up, else CONTINUE):
// the layer's own file (see above), or, in a table without read-only mounts, a file in no
// copy-on-write directory (a pipe's or socket's too).
static int fd_change_native(int fd) {
  if (!table_read) return 0;
  char h[PATH_MAX];
  size_t n = fd_host(fd, h, sizeof h), rel;
  if (!n) return 0;
  if (h[0] == '/' && layer_only(h, n, &rel) >= 0) return 1;
  if (has_ro_mounts) return 0;
  if (h[0] != '/') return h[0] != '(';
  for (int i = 0; i < n_mounts; ++i)
    if (mounts[i].upper && (within(h, n, mounts[i].upper, mounts[i].ulen) || within(h, n, mounts[i].host, mounts[i].hlen)))
      return 0;
  return 1;
}

// openat of a relative name from a directory only the layer has (see above): 1 and *fd; 0: not here.
static int cow_open(int dirfd, const char* name, int flags, mode_t mode, int* fd) {
  if (!has_cows || !path_fast || (dirfd < 0 && dirfd != AT_FDCWD) || !name[0] || name[0] == '/' || (flags & O_PATH))
    return 0;
  for (const char* p = name; *p;) {
    while (*p == '/') ++p;
    if (p[0] == '.' && p[1] == '.' && (p[2] == 0 || p[2] == '/')) return 0;
    while (*p && *p != '/') ++p;
  }
  char h[PATH_MAX], lower[PATH_MAX];
  size_t n = fd_host(dirfd, h, sizeof h), rel;
  if (!n || h[0] != '/') return 0;
  int m = layer_only(h, n, &rel);
  if (m < 0 || h[rel] == 0) return 0;  // the layer's root: merged with the lower directory
  if (mounts[m].hlen + (n - rel) >= sizeof lower) return 0;
  memcpy(lower, mounts[m].host, mounts[m].hlen);
  memcpy(lower + (mounts[m].hlen == 1 ? 0 : mounts[m].hlen), h + rel, n - rel + 1);
  struct stat st;
  if (native(SYS_newfstatat, AT_FDCWD, (long)lower, (long)&st, AT_SYMLINK_NOFOLLOW, 0) == 0 ||
      (errno != ENOENT && errno != ENOTDIR))
    return 0;
  struct open_how how = {(unsigned long long)(unsigned)flags,
                         (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode & 07777 : 0,
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  long r = native(SYS_openat2, dirfd, (long)name, (long)&how, sizeof how, 0);
  if (r < 0) return 0;
  *fd = (int)r;
  return 1;
}

// 1 when a one-step lookup from dirfd (or the cwd) cannot meet a mountpoint of the view.
static int dir_is_plain(int dirfd) {
  struct stat st;
  long rc = dirfd == AT_FDCWD ? native(SYS_newfstatat, AT_FDCWD, (long)".", (long)&st, 0, 0)
                              : native(SYS_fstat, dirfd, (long)&st, 0, 0, 0);
  if (rc < 0 || in_cow(dirfd)) return 0;
  for (int i = 0; i < n_holders; ++i)
    if (holders[i].dev == st.st_dev && holders[i].ino == st.st_ino) return 0;
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Whole paths. In a view with mounts, a path whose lookup provably stays out of every mount (or
// inside one mount) is the host's lookup of a path computed here from the mount table, as long
// as the kernel meets no symlink on the way (a symlink could point anywhere in the view) — which
// openat2's RESOLVE_NO_SYMLINKS makes the kernel check in the same system call:
//   - absolute, no "." or ".." component: lexically inside the deepest mount that covers it
//     (the host path is that mount's source + the rest), or under none (the path itself); not
//     under /proc (the view's /proc/PID/mountinfo, magic links: the monitor's);
//   - relative, no "." or ".." component, from a directory that holds no mountpoint anywhere
//     below it in the view (its (st_dev, st_ino) is not among the ancestors'), not in /proc.
// ELOOP (a symlink on the way) and the errors that may be openat2's own (EINVAL, ENOSYS, EXDEV,
// EAGAIN) go to the monitor, which decides as before; any other result is the view's. Writes
// take this way only outside read-only mounts and not next to a mountpoint (the monitor answers
// EROFS for names made in the ns backend's read-only mirrors of a mountpoint's parent).

static int within(const char* p, size_t n, const char* dir, size_t dn) {
  if (dn == 1) return 1;  // "/"
  return n >= dn && memcmp(p, dir, dn) == 0 && (n == dn || p[dn] == '/');
}

struct where {
  int ro;          // the mount that covers it is read-only
  int near;        // a mountpoint lies below its parent (or is the path itself)
  int mount;       // the mount that covers it (-1: none)
};

// The host path of an absolute view path (see above), in out; 0: the monitor's way.
static int map_abs(const char* path, char* out, size_t cap, struct where* w) {
  char norm[PATH_MAX];
  size_t n = 0;
  const char* p = path;
  // "." and ".." are the kernel's own when the walk touches no mount and not /proc: the path
  // is then passed as it is ("/usr/lib/gcc/…/12/../../../../include"), else the monitor's.
  int dots = 0, touched = 0;
  while (*p) {
    while (*p == '/') ++p;
    if (!*p) break;
    const char* c = p;
    while (*p && *p != '/') ++p;
    size_t len = (size_t)(p - c);
    if (c[0] == '.' && len == 1) {
      dots = 1;
      continue;
    }
    if (c[0] == '.' && len == 2 && c[1] == '.') {
      dots = 1;
      while (n > 0 && norm[n - 1] != '/') --n;
      if (n > 0) --n;
      continue;
    }
    if (n + 1 + len >= sizeof norm) return 0;
    norm[n++] = '/';
    memcpy(norm + n, c, len);
    n += len;
    if (!touched) {
      if (within(norm, n, "/proc", 5)) touched = 1;
      for (int i = 0; i < n_mounts && !touched; ++i)
        if (within(norm, n, mounts[i].view, mounts[i].vlen)) touched = 1;
    }
  }
  if (dots) {
    size_t plen = strlen(path);
    if (touched || plen >= cap) return 0;
    memcpy(out, path, plen + 1);  // as it is; near, for writes, from the lexical path below
  }
  const int trailing = n > 0 && p[-1] == '/';
  if (n == 0) norm[n++] = '/';
  norm[n] = 0;
  int best = -1;
  for (int i = 0; i < n_mounts; ++i)
    if (within(norm, n, mounts[i].view, mounts[i].vlen) && (best < 0 || mounts[i].vlen > mounts[best].vlen)) best = i;
  size_t parent = n;  // the parent's length: up to the last '/' ("/" for "/x")
  while (parent > 0 && norm[parent - 1] != '/') --parent;
  parent = parent > 1 ? parent - 1 : 1;
  w->near = 0;
  for (int i = 0; i < n_mounts; ++i)
    if (mounts[i].vlen > parent && within(mounts[i].view, mounts[i].vlen, norm, parent)) w->near = 1;
  w->ro = best >= 0 && mounts[best].ro;
  w->mount = best;
  if (best >= 0 && mounts[best].upper) return 0;  // merged lookups: the monitor's
  if (dots) return best < 0;
  size_t len;
  if (best < 0) {
    len = n;
    if (len + 2 > cap) return 0;
    memcpy(out, norm, n);
  } else {
    const char* rest = mounts[best].vlen == 1 ? norm : norm + mounts[best].vlen;
    size_t rlen = n - (size_t)(rest - norm);
    if (rlen == 1 && mounts[best].vlen == 1) rlen = 0;  // "/" itself
    size_t hlen = mounts[best].hlen == 1 && rlen ? 0 : mounts[best].hlen;  // source "/": the rest alone
    len = hlen + rlen;
    if (len + 2 > cap) return 0;
    memcpy(out, mounts[best].host, hlen);
    memcpy(out + hlen, rest, rlen);
  }
  if (trailing && !(len == 1 && out[0] == '/')) out[len++] = '/';
  out[len] = 0;
  if (!strncmp(out, "/proc", 5) && (out[5] == 0 || out[5] == '/')) return 0;
  return 1;
}

static int in_set(const struct stat* st, int n, const void* set) {
  const unsigned long(*ids)[2] = set;
  for (int i = 0; i < n; ++i)
    if (ids[i][0] == st->st_dev && ids[i][1] == st->st_ino) return 1;
  return 0;
}

// 1 when a relative path from dirfd (see above) cannot meet a mountpoint.
static int rel_plain(int dirfd, const char* name) {
  if (!name || !name[0] || (dirfd < 0 && dirfd != AT_FDCWD)) return 0;
  for (const char* p = name; *p;) {
    while (*p == '/') ++p;
    if (p[0] == '.' && p[1] == '.' && (p[2] == 0 || p[2] == '/')) return 0;  // "." stays where it is
    while (*p && *p != '/') ++p;
  }
  struct stat st;
  long rc = dirfd == AT_FDCWD ? native(SYS_newfstatat, AT_FDCWD, (long)".", (long)&st, 0, 0)
                              : native(SYS_fstat, dirfd, (long)&st, 0, 0, 0);
  if (rc < 0 || st.st_dev == proc_dev) return 0;
  return !in_set(&st, n_ancestors, ancestors) && !in_cow(dirfd);
}

static int view_realpath(const char* path, char* out);

// The host path of an absolute view path with its symlinks expanded in the view (the final one
// only when `follow`): 1; -1 with errno (the view's lookup fails); 0: the monitor's way.
static int resolve_links(const char* path, int follow, char* host, size_t cap) {
  char canon[PATH_MAX], dir[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof dir || path[len - 1] == '/') return 0;
  int k;
  if (follow) {
    k = view_realpath(path, canon);
  } else {
    const char* base = strrchr(path, '/') + 1;
    if (!*base || (base[0] == '.' && (!base[1] || (base[1] == '.' && !base[2])))) return 0;
    memcpy(dir, path, (size_t)(base - path));
    dir[base - path] = 0;
    k = view_realpath(dir, canon);
    size_t cl = strlen(canon);
    if (k > 0 && cl + 1 + strlen(base) >= sizeof canon) return errno = ENAMETOOLONG, -1;
    if (k > 0) snprintf(canon + cl, sizeof canon - cl, "%s%s", cl > 1 ? "/" : "", base);
  }
  if (k <= 0) return k;
  struct where w;
  return map_abs(canon, host, cap, &w) ? 1 : 0;
}

// openat2 with RESOLVE_NO_SYMLINKS on the host path of (dirfd, name): 1 and the result (an fd,
// or -1 with errno) in *fd; 0: the monitor's way.
static int open_path(int dirfd, const char* name, int flags, mode_t mode, int writes, long* fd) {
  if (!path_fast || !name || !readable(name)) return 0;
  char host[PATH_MAX];
  const char* path = name;
  if (name[0] == '/') {
    struct where w;
    if (!map_abs(name, host, sizeof host, &w) || (writes && (w.ro || w.near))) return 0;
    path = host;
    dirfd = AT_FDCWD;
  } else if ((writes && has_ro_mounts) || !rel_plain(dirfd, name)) {
    return 0;
  }
  struct open_how how = {(unsigned long long)(unsigned)flags,
                         (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode & 07777 : 0,
                         RESOLVE_NO_SYMLINKS};
  long r = native(SYS_openat2, dirfd, (long)path, (long)&how, sizeof how, 0);
  if (r < 0 && errno == ELOOP && name[0] == '/' && !(flags & O_CREAT)) {
    // A symlink on the way: the path resolved in the view here (view_realpath), then opened.
    int k = resolve_links(name, !(flags & O_NOFOLLOW), host, sizeof host);
    if (k < 0) return *fd = -1, 1;
    if (k == 0) return 0;
    r = native(SYS_openat2, AT_FDCWD, (long)host, (long)&how, sizeof how, 0);
  }
  if (r < 0 && (errno == ELOOP || errno == EINVAL || errno == ENOSYS || errno == EXDEV || errno == EAGAIN ||
                errno == E2BIG))
    return 0;
  *fd = r;
  return 1;
}

// stat through an O_PATH descriptor of the host path: 1 and *rc, or 0.
static int stat_path(int dirfd, const char* name, struct stat* st, int nofollow, int* rc) {
  long fd;
  if (!open_path(dirfd, name, O_PATH | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0), 0, 0, &fd)) return 0;
  if (fd < 0) return *rc = -1, 1;
  long r = native(SYS_fstat, fd, (long)st, 0, 0, 0);
  int e = errno;
  (void)native(SYS_close, fd, 0, 0, 0, 0);
  if (r < 0) return errno = e, *rc = -1, 1;
  map_ids(st);
  return *rc = 0, 1;
}

// 1: answered in *rc; 0: take the monitor's way.
static int fast_fstatat(int dirfd, const char* name, struct stat* st, int flags, int* rc) {
  if (!enabled || (name && !readable(name))) return 0;
  if ((flags & AT_EMPTY_PATH) && name && !name[0]) {
    if (in_cow(dirfd)) return 0;  // the monitor shows the merged identity (Cow::present_fd)
    if (native(SYS_fstat, dirfd, (long)st, 0, 0, 0) < 0) return *rc = -1, 1;
    map_ids(st);
    return *rc = 0, 1;
  }
  if (all_paths_plain) {
    if (native(SYS_newfstatat, dirfd, (long)name, (long)st, flags, 0) < 0) return *rc = -1, 1;
    map_ids(st);
    return *rc = 0, 1;
  }
  if ((dirfd < 0 && dirfd != AT_FDCWD) || (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT))) return 0;
  if (!simple_name(name) || !dir_is_plain(dirfd)) return stat_path(dirfd, name, st, flags & AT_SYMLINK_NOFOLLOW, rc);
  if (native(SYS_newfstatat, dirfd, (long)name, (long)st, AT_SYMLINK_NOFOLLOW, 0) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return *rc = -1, 1;  // the same in the view
    return 0;
  }
  if (S_ISLNK(st->st_mode) && !(flags & AT_SYMLINK_NOFOLLOW)) return 0;  // followed: the view decides
  map_ids(st);
  return *rc = 0, 1;
}

EXPORT int fstatat(int dirfd, const char* name, struct stat* st, int flags) {
  int rc;
  if (fast_fstatat(dirfd, name, st, flags, &rc)) return rc;
  return (int)syscall(SYS_newfstatat, dirfd, name, st, flags);
}
EXPORT int fstatat64(int dirfd, const char* name, struct stat64* st, int flags) {
  return fstatat(dirfd, name, (struct stat*)st, flags);  // one layout on x86_64
}

EXPORT int stat(const char* path, struct stat* st) { return fstatat(AT_FDCWD, path, st, 0); }
EXPORT int stat64(const char* path, struct stat64* st) { return fstatat(AT_FDCWD, path, (struct stat*)st, 0); }
EXPORT int lstat(const char* path, struct stat* st) { return fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW); }
EXPORT int lstat64(const char* path, struct stat64* st) {
  return fstatat(AT_FDCWD, path, (struct stat*)st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int fstat(int fd, struct stat* st) {
  if (!enabled || in_cow(fd)) return (int)syscall(SYS_fstat, fd, st);
  if (native(SYS_fstat, fd, (long)st, 0, 0, 0) < 0) return -1;
  map_ids(st);
  return 0;
}
EXPORT int fstat64(int fd, struct stat64* st) { return fstat(fd, (struct stat*)st); }

EXPORT int statx(int dirfd, const char* name, int flags, unsigned int mask, struct statx* stx) {
  if (enabled) {
    int ok = 0;
    if (all_paths_plain || ((flags & AT_EMPTY_PATH) && !name[0] && !in_cow(dirfd))) {
      if (native(SYS_statx, dirfd, (long)name, flags, mask, (long)stx) < 0) return -1;
      ok = 1;
    } else if ((dirfd >= 0 || dirfd == AT_FDCWD) && simple_name(name) &&
               !(flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) && dir_is_plain(dirfd)) {
      if (native(SYS_statx, dirfd, (long)name, flags | AT_SYMLINK_NOFOLLOW, mask, (long)stx) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return -1;
      } else if (!S_ISLNK(stx->stx_mode) || (flags & AT_SYMLINK_NOFOLLOW)) {
        ok = 1;
      }
    }
    if (!ok && !(flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) && name && name[0]) {
      long fd;
      if (open_path(dirfd, name, O_PATH | O_CLOEXEC | (flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0), 0, 0, &fd)) {
        if (fd < 0) return -1;
        long r = native(SYS_statx, fd, (long)"", (flags & AT_STATX_SYNC_TYPE) | AT_EMPTY_PATH, mask, (long)stx);
        int e = errno;
        (void)native(SYS_close, fd, 0, 0, 0, 0);
        if (r < 0) return errno = e, -1;
        ok = 1;
      }
    }
    if (ok) {
      stx->stx_uid = view_id(stx->stx_uid, own_uid, shown_uid);
      stx->stx_gid = view_id(stx->stx_gid, own_gid, shown_gid);
      return 0;
    }
  }
  return (int)syscall(SYS_statx, dirfd, name, flags, mask, stx);
}

static int open_fast(int dirfd, const char* name, int flags, mode_t mode, int* fd) {
  if (!enabled || !readable(name)) return 0;
  const int writes = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) || (flags & O_TMPFILE) == O_TMPFILE;
  long pr;
  if (cow_open(dirfd, name, flags, mode, fd)) return 1;  // first: relative ones in a layer never take the next
  if (open_path(dirfd, name, flags, mode, writes, &pr)) return *fd = (int)pr, 1;
  if ((dirfd < 0 && dirfd != AT_FDCWD) || !simple_name(name) || writes) return 0;
  if (!dir_is_plain(dirfd)) return 0;
  if (!(flags & O_NOFOLLOW)) {
    struct stat st;
    if (native(SYS_newfstatat, dirfd, (long)name, (long)&st, AT_SYMLINK_NOFOLLOW, 0) < 0) return 0;
    if (S_ISLNK(st.st_mode)) return 0;
  }
  long r = native(SYS_openat, dirfd, (long)name, flags, 0, 0);
  if (r < 0 && errno == ELOOP && (flags & O_NOFOLLOW)) return *fd = -1, 1;  // a symlink, as the view says
  if (r < 0) return 0;  // let the monitor give the view's errno
  *fd = (int)r;
  return 1;
}

// access(2) family: the host object, through an O_PATH descriptor (faccessat2 AT_EMPTY_PATH).
static int access_fast(int dirfd, const char* name, int mode, int flags, int* rc) {
  if (!enabled || !path_fast || !readable(name) || (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW))) return 0;
  if ((mode & W_OK) && (name[0] == '/' ? 0 : has_ro_mounts)) return 0;
  if (name[0] == '/' && (mode & W_OK)) {  // a read-only mount says EROFS: the monitor's
    char host[PATH_MAX];
    struct where w;
    if (!map_abs(name, host, sizeof host, &w) || w.ro) return 0;
  }
  long fd;
  if (!open_path(dirfd, name, O_PATH | O_CLOEXEC | (flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0), 0, 0, &fd))
    return 0;
  if (fd < 0) return *rc = -1, 1;
  long r = native(SYS_faccessat2, fd, (long)"", mode, (flags & AT_EACCESS) | AT_EMPTY_PATH, 0);
  int e = errno;
  (void)native(SYS_close, fd, 0, 0, 0, 0);
  if (r < 0 && (e == EINVAL || e == ENOSYS)) return 0;
  if (r < 0) return errno = e, *rc = -1, 1;
  return *rc = 0, 1;
}

EXPORT int faccessat(int dirfd, const char* name, int mode, int flags) {
  int rc;
  if (access_fast(dirfd, name, mode, flags, &rc)) return rc;
  CALL_REAL(int, faccessat, (int, const char*, int, int), dirfd, name, mode, flags);
}
EXPORT int access(const char* name, int mode) {
  int rc;
  if (access_fast(AT_FDCWD, name, mode, 0, &rc)) return rc;
  CALL_REAL(int, access, (const char*, int), name, mode);
}
EXPORT int euidaccess(const char* name, int mode) {
  int rc;
  if (access_fast(AT_FDCWD, name, mode, AT_EACCESS, &rc)) return rc;
  CALL_REAL(int, euidaccess, (const char*, int), name, mode);
}
EXPORT int eaccess(const char* name, int mode) __attribute__((alias("euidaccess")));

// readlinkat(dirfd, "name"): one component from a directory that holds no mountpoint (and is not
// /proc's, whose links the monitor translates) reads the same link natively (tar's symlinks).
EXPORT ssize_t readlinkat(int dirfd, const char* name, char* buf, size_t size) {
  if (enabled && name && name[0] && name[0] != '/' && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") &&
      (dirfd >= 0 || dirfd == AT_FDCWD)) {
    struct stat st;
    long r = dirfd == AT_FDCWD ? native(SYS_newfstatat, AT_FDCWD, (long)".", (long)&st, 0, 0)
                               : native(SYS_fstat, dirfd, (long)&st, 0, 0, 0);
    if (r == 0 && S_ISDIR(st.st_mode) && st.st_dev != proc_dev && !in_set(&st, n_holders, holders) && !in_cow(dirfd))
      return native(SYS_readlinkat, dirfd, (long)name, (long)buf, (long)size, 0);
  }
  CALL_REAL(ssize_t, readlinkat, (int, const char*, char*, size_t), dirfd, name, buf, size);
}

// realpath(3) in the view: each component's host path (map_abs of the canonical view path so
// far, which has no symlink left) is read with readlinkat natively, symlinks are expanded in
// view terms (an absolute target restarts at the view's root, ".." is the parent in the view).
// 1: *out holds it; -1: errno; 0: the monitor's way (glibc's realpath through trapped calls).
static int view_realpath(const char* path, char* out) {
  if (!enabled || !path_fast || !path || !readable(path) || !path[0]) return 0;
  char view[PATH_MAX], rest[2 * PATH_MAX], host[PATH_MAX], link[PATH_MAX];
  size_t vn = 0;  // view[0..vn): the canonical path so far ("" = "/")
  size_t len = strlen(path);
  if (len >= sizeof rest) return 0;
  if (path[0] != '/') {
    // The cwd as the view sees it (getcwd is answered by the monitor).
    if (syscall(SYS_getcwd, view, sizeof view) < 0 || view[0] != '/') return 0;
    vn = strlen(view);
    if (vn == 1) vn = 0;
  }
  memcpy(rest, path, len + 1);
  size_t pos = 0;  // rest[pos..] is still to walk
  int links = 0;
  while (rest[pos]) {
    while (rest[pos] == '/') ++pos;
    if (!rest[pos]) break;
    size_t c = pos;
    while (rest[pos] && rest[pos] != '/') ++pos;
    size_t cl = pos - c;
    if (cl == 1 && rest[c] == '.') continue;
    if (cl == 2 && rest[c] == '.' && rest[c + 1] == '.') {
      while (vn > 0 && view[vn - 1] != '/') --vn;
      if (vn > 0) --vn;
      continue;
    }
    size_t before = vn;
    if (vn + 1 + cl >= sizeof view) return errno = ENAMETOOLONG, -1;
    view[vn++] = '/';
    memcpy(view + vn, rest + c, cl);
    vn += cl;
    view[vn] = 0;
    struct where w;
    if (!map_abs(view, host, sizeof host, &w)) return 0;  // /proc: magic links
    long n = native(SYS_readlinkat, AT_FDCWD, (long)host, (long)link, sizeof link - 1, 0);
    if (n < 0) {
      if (errno == EINVAL) continue;  // there, and not a symlink
      if (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ENAMETOOLONG) return -1;
      return 0;
    }
    if (++links > 40) return errno = ELOOP, -1;
    if (n == 0) return errno = ENOENT, -1;
    link[n] = 0;
    // The target, then what was left.
    size_t left = strlen(rest + pos);
    if ((size_t)n + 1 + left >= sizeof rest) return errno = ENAMETOOLONG, -1;
    memmove(rest + n + 1, rest + pos, left + 1);
    memcpy(rest, link, (size_t)n);
    rest[n] = '/';
    pos = 0;
    vn = link[0] == '/' ? 0 : before;
  }
  if (vn == 0) view[vn++] = '/';
  view[vn] = 0;
  memcpy(out, view, vn + 1);
  return 1;
}

typedef char* (*realpath_fn)(const char*, char*);
typedef char* (*realpath_chk_fn)(const char*, char*, size_t);
typedef char* (*canon_fn)(const char*);

EXPORT char* realpath(const char* path, char* resolved) {
  char buf[PATH_MAX];
  int r = path && readable(path) && path[strlen(path) - (path[0] ? 1 : 0)] != '/' ? view_realpath(path, buf) : 0;
  if (r < 0) return NULL;
  if (r == 0) return REAL(realpath_fn, "realpath")(path, resolved);
  if (!resolved) return strdup(buf);
  return strcpy(resolved, buf);
}
EXPORT char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen) {
  if (resolvedlen < PATH_MAX) return REAL(realpath_chk_fn, "__realpath_chk")(path, resolved, resolvedlen);
  return realpath(path, resolved);
}
EXPORT char* canonicalize_file_name(const char* path) {
  char buf[PATH_MAX];
  int r = readable(path) && path[strlen(path) - (path[0] ? 1 : 0)] != '/' ? view_realpath(path, buf) : 0;
  if (r < 0) return NULL;
  if (r == 0) return REAL(canon_fn, "canonicalize_file_name")(path);
  return strdup(buf);
}

// ---- names made, removed, changed: unlink, rmdir, mkdir, rename, utimensat, chmod ----------
// The parent directory is opened O_PATH with RESOLVE_NO_SYMLINKS (its host path, as above) and
// the call made natively on (parent, last name). Never for a mountpoint or next to one, in a
// read-only mount (the monitor says EROFS, EBUSY, EXDEV as the ns backend does), nor for a
// name ending in '/', ".", "..".
struct parent {
  long fd;     // O_PATH of the parent, or the caller's dirfd (own = 0)
  int own;     // fd is ours to close
  int mount;   // covering mount of an absolute path (-2: relative, from dirfd)
  char last[NAME_MAX + 1];
};

static void parent_close(struct parent* p) {
  if (p->own) (void)native(SYS_close, p->fd, 0, 0, 0, 0);
}

// 1: *p is ready; -1: the view's answer is this errno (the parent's lookup failed); 0: monitor.
static int parent_of(int dirfd, const char* path, struct parent* p) {
  if (!enabled || !path_fast || !readable(path) || !path[0]) return 0;
  size_t len = strlen(path);
  if (path[len - 1] == '/') return 0;
  const char* slash = strrchr(path, '/');
  const char* last = slash ? slash + 1 : path;
  size_t ll = len - (size_t)(last - path);
  if (ll > NAME_MAX || (last[0] == '.' && (ll == 1 || (ll == 2 && last[1] == '.')))) return 0;
  memcpy(p->last, last, ll + 1);
  char host[PATH_MAX];
  const char* dir;
  char rel[PATH_MAX];
  if (path[0] == '/') {
    struct where w;
    if (!map_abs(path, host, sizeof host, &w) || w.ro || w.near) return 0;
    char* k = strrchr(host, '/');
    if (!k || strcmp(k + 1, p->last) != 0) return 0;
    if (k == host) k[1] = 0;
    else *k = 0;
    dir = host;
    dirfd = AT_FDCWD;
    p->mount = w.mount;
  } else {
    if (has_ro_mounts || !rel_plain(dirfd, path)) return 0;
    p->mount = -2;
    if (!slash) {  // one name from dirfd: no lookup but its own
      p->fd = dirfd;
      p->own = 0;
      return 1;
    }
    memcpy(rel, path, (size_t)(slash - path));
    rel[slash - path] = 0;
    dir = rel;
  }
  struct open_how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS};
  long fd = native(SYS_openat2, dirfd, (long)dir, (long)&how, sizeof how, 0);
  if (fd < 0) return errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ENAMETOOLONG ? -1 : 0;
  p->fd = fd;
  p->own = 1;
  return 1;
}

// The final name must not be a symlink the call would follow (it could lead anywhere).
static int not_a_followed_link(struct parent* p) {
  struct stat st;
  if (native(SYS_newfstatat, p->fd, (long)p->last, (long)&st, AT_SYMLINK_NOFOLLOW, 0) < 0) return errno != ELOOP;
  return !S_ISLNK(st.st_mode);
}

#define NAME_CALL(rc_expr, dirfd, path, follows)                           \
  do {                                                                      \
    struct parent p_;                                                       \
    int k_ = parent_of(dirfd, path, &p_);                                   \
    if (k_ < 0) return -1;                                                  \
    if (k_ > 0) {                                                           \
      if ((follows) && !not_a_followed_link(&p_)) {                         \
        parent_close(&p_);                                                  \
        break;                                                              \
      }                                                                     \
      long r_ = (rc_expr);                                                  \
      int e_ = errno;                                                       \
      parent_close(&p_);                                                    \
      errno = e_;                                                           \
      return (int)r_;                                                       \
    }                                                                       \
  } while (0)

EXPORT int unlinkat(int dirfd, const char* path, int flags) {
  if (!(flags & ~AT_REMOVEDIR))
    NAME_CALL(native(SYS_unlinkat, p_.fd, (long)p_.last, flags, 0, 0), dirfd, path, 0);
  CALL_REAL(int, unlinkat, (int, const char*, int), dirfd, path, flags);
}
EXPORT int unlink(const char* path) {
  NAME_CALL(native(SYS_unlinkat, p_.fd, (long)p_.last, 0, 0, 0), AT_FDCWD, path, 0);
  CALL_REAL(int, unlink, (const char*), path);
}
EXPORT int rmdir(const char* path) {
  NAME_CALL(native(SYS_unlinkat, p_.fd, (long)p_.last, AT_REMOVEDIR, 0, 0), AT_FDCWD, path, 0);
  CALL_REAL(int, rmdir, (const char*), path);
}
EXPORT int mkdirat(int dirfd, const char* path, mode_t mode) {
  NAME_CALL(native(SYS_mkdirat, p_.fd, (long)p_.last, mode, 0, 0), dirfd, path, 0);
  CALL_REAL(int, mkdirat, (int, const char*, mode_t), dirfd, path, mode);
}
EXPORT int mkdir(const char* path, mode_t mode) {
  NAME_CALL(native(SYS_mkdirat, p_.fd, (long)p_.last, mode, 0, 0), AT_FDCWD, path, 0);
  CALL_REAL(int, mkdir, (const char*, mode_t), path, mode);
}
EXPORT int fchmodat(int dirfd, const char* path, mode_t mode, int flags) {
  if (!flags) NAME_CALL(native(SYS_fchmodat, p_.fd, (long)p_.last, mode, 0, 0), dirfd, path, 1);
  CALL_REAL(int, fchmodat, (int, const char*, mode_t, int), dirfd, path, mode, flags);
}
EXPORT int futimens(int fd, const struct timespec times[2]) {
  if (enabled && fd_change_native(fd)) return (int)native(SYS_utimensat, fd, 0, (long)times, 0, 0);
  CALL_REAL(int, futimens, (int, const struct timespec*), fd, times);
}
EXPORT int fchmod(int fd, mode_t mode) {
  if (enabled && fd_change_native(fd)) return (int)native(SYS_fchmod, fd, mode, 0, 0, 0);
  CALL_REAL(int, fchmod, (int, mode_t), fd, mode);
}
EXPORT int chmod(const char* path, mode_t mode) {
  NAME_CALL(native(SYS_fchmodat, p_.fd, (long)p_.last, mode, 0, 0), AT_FDCWD, path, 1);
  CALL_REAL(int, chmod, (const char*, mode_t), path, mode);
}
EXPORT int utimensat(int dirfd, const char* path, const struct timespec times[2], int flags) {
  if (path && !(flags & ~AT_SYMLINK_NOFOLLOW))
    NAME_CALL(native(SYS_utimensat, p_.fd, (long)p_.last, (long)times, flags, 0), dirfd, path,
              !(flags & AT_SYMLINK_NOFOLLOW));
  CALL_REAL(int, utimensat, (int, const char*, const struct timespec*, int), dirfd, path, times, flags);
}

// Both names in the same place: the same mount (absolute paths), or the same dirfd (relative
// ones: neither can leave it without "..", a symlink or a mountpoint).
static int rename_fast(int olddir, const char* oldp, int newdir, const char* newp, unsigned flags) {
  struct parent a, b;
  int ka = parent_of(olddir, oldp, &a);
  if (ka < 0) return -1;  // the old name's parent is missing: the view says so too
  if (ka > 0) {
    int kb = parent_of(newdir, newp, &b);
    if (kb > 0 && a.mount == b.mount && (a.mount != -2 || olddir == newdir)) {
      long r = native(SYS_renameat2, a.fd, (long)a.last, b.fd, (long)b.last, flags);
      int e = errno;
      parent_close(&a);
      parent_close(&b);
      errno = e;
      return (int)r;
    }
    if (kb > 0) parent_close(&b);
    parent_close(&a);
  }
  return -2;  // not here
}
EXPORT int renameat2(int olddir, const char* oldp, int newdir, const char* newp, unsigned flags) {
  int r = rename_fast(olddir, oldp, newdir, newp, flags);
  if (r != -2) return r;
  CALL_REAL(int, renameat2, (int, const char*, int, const char*, unsigned), olddir, oldp, newdir, newp, flags);
}
EXPORT int renameat(int olddir, const char* oldp, int newdir, const char* newp) {
  int r = rename_fast(olddir, oldp, newdir, newp, 0);
  if (r != -2) return r;
  CALL_REAL(int, renameat, (int, const char*, int, const char*), olddir, oldp, newdir, newp);
}
EXPORT int rename(const char* oldp, const char* newp) {
  int r = rename_fast(AT_FDCWD, oldp, AT_FDCWD, newp, 0);
  if (r != -2) return r;
  CALL_REAL(int, rename, (const char*, const char*), oldp, newp);
}

// ---- fopen: the descriptor from the fast path, the stream from glibc's fdopen ---------------
typedef FILE* (*fopen_fn)(const char*, const char*);
static FILE* fopen_impl(const char* path, const char* mode, const char* real_name) {
  int flags = 0, ok = enabled && path_fast;
  switch (ok ? mode[0] : 0) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: ok = 0;
  }
  for (const char* m = mode + 1; ok && *m; ++m) {
    switch (*m) {
      case '+': flags = (flags & ~O_ACCMODE) | O_RDWR; break;
      case 'x': flags |= O_EXCL; break;
      case 'e': flags |= O_CLOEXEC; break;
      case 'b': case 't': case 'm': case 'c': break;
      default: ok = 0;  // ",ccs=" and the like: glibc's
    }
  }
  int fd;
  if (ok && open_fast(AT_FDCWD, path, flags, 0666, &fd)) {
    if (fd < 0) return NULL;
    FILE* f = fdopen(fd, mode);
    if (!f) {
      int e = errno;
      close(fd);
      errno = e;
    }
    return f;
  }
  return REAL(fopen_fn, real_name)(path, mode);
}
EXPORT FILE* fopen(const char* path, const char* mode) { return fopen_impl(path, mode, "fopen"); }
EXPORT FILE* fopen64(const char* path, const char* mode) { return fopen_impl(path, mode, "fopen64"); }

// The mode argument exists only with O_CREAT or O_TMPFILE.
static mode_t mode_arg(int flags, va_list ap) {
  return ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? va_arg(ap, mode_t) : 0;
}

static int open_impl(int dirfd, const char* name, int flags, mode_t mode) {
  int fd;
  if (open_fast(dirfd, name, flags, mode, &fd)) return fd;
  return (int)syscall(SYS_openat, dirfd, name, flags, mode);
}

EXPORT int open(const char* name, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_impl(AT_FDCWD, name, flags, mode);
}
EXPORT int open64(const char* name, int flags, ...) __attribute__((alias("open")));
EXPORT int __open_2(const char* name, int flags) { return open_impl(AT_FDCWD, name, flags, 0); }
EXPORT int __open64_2(const char* name, int flags) { return open_impl(AT_FDCWD, name, flags, 0); }
EXPORT int creat(const char* name, mode_t mode) { return open_impl(AT_FDCWD, name, O_CREAT | O_WRONLY | O_TRUNC, mode); }
EXPORT int creat64(const char* name, mode_t mode) __attribute__((alias("creat")));

EXPORT int openat(int dirfd, const char* name, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_impl(dirfd, name, flags, mode);
}
EXPORT int openat64(int dirfd, const char* name, int flags, ...) __attribute__((alias("openat")));
EXPORT int __openat_2(int dirfd, const char* name, int flags) { return open_impl(dirfd, name, flags, 0); }
EXPORT int __openat64_2(int dirfd, const char* name, int flags) { return open_impl(dirfd, name, flags, 0); }

// ---------------------------------------------------------------------------------------------
// Directory streams. glibc's opendir/fdopendir make an internal fstat the preload cannot reach,
// so every directory a tree walk opens would cost a trip to the monitor (17,000 in find /usr).
// When the fast path is on, the whole public DIR API is ours: a stream is an fd and a getdents64
// buffer, as in glibc. The DIR* a program holds therefore always comes from here (glibc's own
// users — scandir, glob, nftw — use glibc's internal functions on glibc's own streams).

#define VU_DIR_MAGIC 0x56554449u
struct vu_dir {
  unsigned magic;
  int fd;
  pthread_mutex_t lock;
  size_t pos, len;
  long filepos;  // d_off of the entry last returned (telldir)
  int native;    // getdents64 from the trampoline: the directory holds no mountpoint (see new_stream)
  char buf[32768] __attribute__((aligned(8)));
};

typedef DIR* (*opendir_fn)(const char*);
typedef DIR* (*fdopendir_fn)(int);
typedef int (*closedir_fn)(DIR*);
typedef struct dirent* (*readdir_fn)(DIR*);
typedef int (*readdir_r_fn)(DIR*, struct dirent*, struct dirent**);
typedef void (*rewinddir_fn)(DIR*);
typedef long (*telldir_fn)(DIR*);
typedef void (*seekdir_fn)(DIR*, long);
typedef int (*dirfd_fn)(DIR*);

// st: the directory's (native fstat), or NULL. A directory that holds no mountpoint of the view
// lists the same natively (the monitor adds names only to those that do: Config::listing, a
// subset of the holders, and merges those of copy-on-write directories: in_cow), so its
// getdents64 need not trap.
static DIR* new_stream(int fd, const struct stat* st) {
  struct vu_dir* d = malloc(sizeof *d);
  if (!d) return NULL;
  d->magic = VU_DIR_MAGIC;
  d->fd = fd;
  pthread_mutex_init(&d->lock, NULL);
  d->pos = d->len = 0;
  d->filepos = 0;
  d->native = st && st->st_dev != proc_dev && !in_set(st, n_holders, holders) && !in_cow(fd);
  return (DIR*)d;
}

EXPORT DIR* fdopendir(int fd) {
  if (!enabled) return REAL(fdopendir_fn, "fdopendir")(fd);
  struct stat st;
  if (native(SYS_fstat, fd, (long)&st, 0, 0, 0) < 0) return NULL;
  if (!S_ISDIR(st.st_mode)) return errno = ENOTDIR, NULL;
  int fl = fcntl(fd, F_GETFL);  // glibc's checks, glibc's errnos
  if (fl < 0) return NULL;
  if ((fl & O_ACCMODE) == O_WRONLY) return errno = EINVAL, NULL;
  return new_stream(fd, &st);
}

EXPORT DIR* opendir(const char* name) {
  if (!enabled) return REAL(opendir_fn, "opendir")(name);
  int fd = openat(AT_FDCWD, name, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  DIR* d = new_stream(fd, native(SYS_fstat, fd, (long)&st, 0, 0, 0) == 0 ? &st : NULL);
  if (!d) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return d;
}

EXPORT int closedir(DIR* dir) {
  if (!enabled) return REAL(closedir_fn, "closedir")(dir);
  struct vu_dir* d = (struct vu_dir*)dir;
  if (!d || d->magic != VU_DIR_MAGIC) return errno = EBADF, -1;
  int rc = close(d->fd);
  d->magic = 0;
  pthread_mutex_destroy(&d->lock);
  free(d);
  return rc;
}

static struct dirent* next_entry(struct vu_dir* d) {
  if (d->pos >= d->len) {
    int saved = errno;
    long n = d->native ? native(SYS_getdents64, d->fd, (long)d->buf, sizeof d->buf, 0, 0)
                       : syscall(SYS_getdents64, d->fd, d->buf, sizeof d->buf);
    if (n <= 0) {
      if (n == 0 || errno == ENOENT) errno = saved;  // end of the directory is not an error
      return NULL;
    }
    d->len = (size_t)n;
    d->pos = 0;
  }
  struct dirent64* e = (struct dirent64*)(d->buf + d->pos);
  d->pos += e->d_reclen;
  d->filepos = e->d_off;
  return (struct dirent*)e;  // one layout on x86_64
}

EXPORT struct dirent* readdir(DIR* dir) {
  if (!enabled) return REAL(readdir_fn, "readdir")(dir);
  struct vu_dir* d = (struct vu_dir*)dir;
  pthread_mutex_lock(&d->lock);
  struct dirent* e = next_entry(d);
  pthread_mutex_unlock(&d->lock);
  return e;
}
EXPORT struct dirent64* readdir64(DIR* dir) { return (struct dirent64*)readdir(dir); }

EXPORT int readdir_r(DIR* dir, struct dirent* entry, struct dirent** result) {
  if (!enabled) return REAL(readdir_r_fn, "readdir_r")(dir, entry, result);
  struct vu_dir* d = (struct vu_dir*)dir;
  pthread_mutex_lock(&d->lock);
  int saved = errno;
  errno = 0;
  struct dirent* e = next_entry(d);
  int err = e ? 0 : errno;
  if (e) memcpy(entry, e, e->d_reclen < sizeof *entry ? e->d_reclen : sizeof *entry);
  *result = e ? entry : NULL;
  errno = saved;
  pthread_mutex_unlock(&d->lock);
  return err;
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // still exported, still used
EXPORT int readdir64_r(DIR* dir, struct dirent64* entry, struct dirent64** result) {
  return readdir_r(dir, (struct dirent*)entry, (struct dirent**)result);
}
#pragma GCC diagnostic pop

EXPORT void rewinddir(DIR* dir) {
  if (!enabled) return REAL(rewinddir_fn, "rewinddir")(dir);
  struct vu_dir* d = (struct vu_dir*)dir;
  pthread_mutex_lock(&d->lock);
  (void)lseek(d->fd, 0, SEEK_SET);
  d->pos = d->len = 0;
  d->filepos = 0;
  pthread_mutex_unlock(&d->lock);
}

EXPORT long telldir(DIR* dir) {
  if (!enabled) return REAL(telldir_fn, "telldir")(dir);
  return ((struct vu_dir*)dir)->filepos;
}

EXPORT void seekdir(DIR* dir, long loc) {
  if (!enabled) return REAL(seekdir_fn, "seekdir")(dir, loc);
  struct vu_dir* d = (struct vu_dir*)dir;
  pthread_mutex_lock(&d->lock);
  (void)lseek(d->fd, loc, SEEK_SET);
  d->pos = d->len = 0;
  d->filepos = loc;
  pthread_mutex_unlock(&d->lock);
}

EXPORT int dirfd(DIR* dir) {
  if (!enabled) return REAL(dirfd_fn, "dirfd")(dir);
  return ((struct vu_dir*)dir)->fd;
}

// ---------------------------------------------------------------------------------------------
// Carrying the library across execve. In a view without mounts nothing traces execve, so the
// library adds its two variables to the environment of every program it starts. No allocation:
// these may run in a vfork child. A program that sets LD_PRELOAD itself keeps it, without us.
// glibc's own internal spawns (system, popen) bypass this: those programs run without the fast
// path, with the same answers.

static char saved_preload[4096 + 16];
static char saved_config[VU_ACCEL_MAX_HOLDERS * 48 + 64];
static int carry;  // the two variables were saved and must be passed on

#define MAX_CARRIED_ENV 1024

// Fills out[] with envp plus our two variables; returns out, or envp itself when it has its own
// LD_PRELOAD or is too large.
static char* const* with_env(char* const* envp, char** out) {
  if (!carry || !envp) return envp;
  size_t n = 0;
  for (; envp[n]; ++n) {
    if (n >= MAX_CARRIED_ENV || !strncmp(envp[n], "LD_PRELOAD=", 11) ||
        !strncmp(envp[n], VU_ACCEL_ENV "=", sizeof VU_ACCEL_ENV))
      return envp;
  }
  out[0] = saved_preload;
  out[1] = saved_config;
  memcpy(out + 2, envp, (n + 1) * sizeof *envp);
  return out;
}

#define ENV_BUF(name) char* name[MAX_CARRIED_ENV + 3]

EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  ENV_BUF(e);
  return (int)syscall(SYS_execve, path, argv, with_env(envp, e));
}
EXPORT int execv(const char* path, char* const argv[]) { return execve(path, argv, environ); }
EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  ENV_BUF(e);
  return (int)syscall(SYS_execveat, fd, "", argv, with_env(envp, e), AT_EMPTY_PATH);
}

typedef int (*execvpe_fn)(const char*, char* const[], char* const[]);
EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  static execvpe_fn real;
  if (!real) real = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
  if (!real) return errno = ENOSYS, -1;
  ENV_BUF(e);
  return real(file, argv, with_env(envp, e));
}
EXPORT int execvp(const char* file, char* const argv[]) { return execvpe(file, argv, environ); }

// execl, execlp, execle: the arguments into an array on the stack, then execve/execvpe.
#define MAX_EXECL_ARGS 1024
static int execl_common(char kind, const char* path, const char* arg0, va_list* ap) {
  char* argv[MAX_EXECL_ARGS + 1];
  int n = 0;
  argv[n++] = (char*)arg0;
  while (argv[n - 1]) {
    if (n >= MAX_EXECL_ARGS) return errno = E2BIG, -1;
    argv[n++] = va_arg(*ap, char*);
  }
  if (kind == 'e') return execve(path, argv, va_arg(*ap, char* const*));
  return kind == 'p' ? execvpe(path, argv, environ) : execve(path, argv, environ);
}
#define EXECL(name, kind)                                  \
  EXPORT int name(const char* path, const char* arg, ...) { \
    va_list ap;                                            \
    va_start(ap, arg);                                     \
    int rc = execl_common(kind, path, arg, &ap);           \
    va_end(ap);                                            \
    return rc;                                             \
  }
EXECL(execl, 'l')
EXECL(execlp, 'p')
EXECL(execle, 'e')

typedef int (*spawn_fn)(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*,
                        char* const[], char* const[]);
static int spawn_with(const char* name, spawn_fn* real, pid_t* pid, const char* path,
                      const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                      char* const argv[], char* const envp[]) {
  if (!*real) *real = (spawn_fn)dlsym(RTLD_NEXT, name);
  if (!*real) return ENOSYS;
  ENV_BUF(e);
  return (*real)(pid, path, fa, attr, argv, with_env(envp, e));
}
EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                       const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  static spawn_fn real;
  return spawn_with("posix_spawn", &real, pid, path, fa, attr, argv, envp);
}
EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                        const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  static spawn_fn real;
  return spawn_with("posix_spawnp", &real, pid, file, fa, attr, argv, envp);
}

// ---------------------------------------------------------------------------------------------

static unsigned long parse_ul(const char** p, int base) {
  char* end;
  unsigned long v = strtoul(*p, &end, base);
  *p = end;
  return v;
}

// "%XX"-escaped text up to one of `stops` (or the end): a malloc'd string, *len; NULL on error.
static char* parse_text(const char** p, const char* stops, size_t* len) {
  size_t n = 0;
  const char* q = *p;
  while (*q && !strchr(stops, *q)) q += *q == '%' ? 3 : 1;
  char* out = malloc((size_t)(q - *p) + 1);
  if (!out) return NULL;
  for (q = *p; *q && !strchr(stops, *q);) {
    if (*q == '%') {
      char hex[3] = {q[1], q[2], 0};
      if (!q[1] || !q[2]) return free(out), NULL;
      out[n++] = (char)strtoul(hex, NULL, 16);
      q += 3;
    } else {
      out[n++] = *q++;
    }
  }
  out[n] = 0;
  *p = q;
  *len = n;
  return out;
}

// ANCESTORS:MOUNTS — DEV.INO,… : (R|W)VIEW=HOST,… and CVIEW=LOWER=LAYER (copy-on-write; paths
// %XX-escaped). Whole paths are decided in process only when all of it was read (path_fast).
// -1: the table could not be read (a copy-on-write directory may be missing from it).
static int parse_whole(const char* p) {
  while (*p && *p != ':') {
    if (n_ancestors >= VU_ACCEL_MAX_HOLDERS) return -1;
    ancestors[n_ancestors].dev = parse_ul(&p, 10);
    if (*p++ != '.') return -1;
    ancestors[n_ancestors].ino = parse_ul(&p, 10);
    ++n_ancestors;
    if (*p == ',') ++p;
    else if (*p && *p != ':') return -1;
  }
  if (*p++ != ':') return -1;
  while (*p) {
    if (n_mounts >= VU_ACCEL_MAX_MOUNTS || (*p != 'R' && *p != 'W' && *p != 'C')) return -1;
    const char kind = *p++;
    mounts[n_mounts].ro = kind == 'R';
    mounts[n_mounts].view = parse_text(&p, "=", &mounts[n_mounts].vlen);
    if (!mounts[n_mounts].view || *p++ != '=') return -1;
    mounts[n_mounts].host = parse_text(&p, kind == 'C' ? "=," : ",", &mounts[n_mounts].hlen);
    if (!mounts[n_mounts].host || mounts[n_mounts].view[0] != '/' || mounts[n_mounts].host[0] != '/') return -1;
    if (kind == 'C') {
      if (*p++ != '=') return -1;
      mounts[n_mounts].upper = parse_text(&p, ",", &mounts[n_mounts].ulen);
      if (!mounts[n_mounts].upper || mounts[n_mounts].upper[0] != '/') return -1;
      has_cows = 1;
    }
    has_ro_mounts |= mounts[n_mounts].ro;
    ++n_mounts;
    if (*p == ',') ++p;
  }
  table_read = 1;
  for (int i = 0; i < n_mounts; ++i)
    for (int j = 0; j < n_mounts; ++j)
      if (mounts[i].upper && j != i && mounts[j].vlen > mounts[i].vlen &&
          within(mounts[j].view, mounts[j].vlen, mounts[i].view, mounts[i].vlen))
        mounts[i].nested = 1;
  struct stat st;
  if (native(SYS_newfstatat, AT_FDCWD, (long)"/proc", (long)&st, 0, 0) < 0) return 0;
  proc_dev = st.st_dev;
  struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS};
  long fd = native(SYS_openat2, AT_FDCWD, (long)"/", (long)&how, sizeof how, 0);  // a kernel with openat2?
  if (fd < 0) return 0;
  (void)native(SYS_close, fd, 0, 0, 0, 0);
  path_fast = 1;
  return 0;
}

// Drops `name=` from the environment the command sees.
static void hide(const char* name) { unsetenv(name); }

__attribute__((constructor)) static void accel_init(void) {
  const char* cfg = getenv(VU_ACCEL_ENV);
  if (!cfg || strncmp(cfg, "1:", 2) != 0) return;
  const char* p = cfg + 2;
  own_uid = (uid_t)parse_ul(&p, 10);
  if (*p++ != ':') return;
  own_gid = (gid_t)parse_ul(&p, 10);
  if (*p++ != ':') return;
  as_root = (int)parse_ul(&p, 10);
  if (as_root && *p == '.') {  // 1.UID.GID: the ids shown for the caller's (0.0 when absent)
    ++p;
    shown_uid = (unsigned)parse_ul(&p, 10);
    if (*p++ != '.') return;
    shown_gid = (unsigned)parse_ul(&p, 10);
  }
  if (*p++ != ':') return;
  if (*p != 'a' && *p != 'm') return;
  all_paths_plain = *p++ == 'a';
  if (*p++ != ':') return;
  while (*p && *p != ':' && n_holders < VU_ACCEL_MAX_HOLDERS) {
    holders[n_holders].dev = parse_ul(&p, 10);
    if (*p++ != '.') return;
    holders[n_holders].ino = parse_ul(&p, 10);
    ++n_holders;
    if (*p == ',') ++p;
    else if (*p && *p != ':') return;
  }
  const char* whole = *p == ':' ? p + 1 : NULL;  // ANCESTORS:MOUNTS (views with mounts)
  // The trampoline: `mov rax, rdi; mov rdi, rsi; mov rsi, rdx; mov rdx, rcx; mov r10, r8;
  // mov r8, r9; syscall; ret` at the fixed address the filter knows. If the address is taken,
  // no fast path.
  void* page = (void*)VU_ACCEL_TRAMPOLINE_PAGE;
  static const unsigned char code[] = {0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x48, 0x89,
                                       0xca, 0x4d, 0x89, 0xc2, 0x4d, 0x89, 0xc8, 0x0f, 0x05, 0xc3};
  _Static_assert(sizeof code - 1 == VU_ACCEL_SYSCALL_END, "the filter's address of the syscall's end");
  void* m = mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m != page) {
    if (m != MAP_FAILED) munmap(m, 4096);  // a kernel without MAP_FIXED_NOREPLACE put it elsewhere
    return;
  }
  memcpy(page, code, sizeof code);
  if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) return;
  tramp = (tramp_fn)page;
  enabled = 1;
  // An unreadable table: no fast path at all (its one-name shortcuts would not know the
  // copy-on-write directories either).
  if (whole && !all_paths_plain && parse_whole(whole) < 0) enabled = 0;
  const char* preload = getenv("LD_PRELOAD");
  if (all_paths_plain && preload && strlen(preload) < sizeof saved_preload - 16 &&
      strlen(cfg) < sizeof saved_config - 16) {
    // Without mounts nobody traces execve: pass the variables on ourselves (above).
    snprintf(saved_preload, sizeof saved_preload, "LD_PRELOAD=%s", preload);
    snprintf(saved_config, sizeof saved_config, "%s=%s", VU_ACCEL_ENV, cfg);
    carry = 1;
  }
  hide(VU_ACCEL_ENV);
  hide("LD_PRELOAD");
}
