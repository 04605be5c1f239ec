// pvm/fuse_shim.c — libvu-fuse-shim.so: preloaded into fuse2fs (the libfuse2 program behind
// `--mount image:` of ext2/3/4) on every backend, and on ns and in environment B into every
// --fuse line (fusefs::fuse_program_preload: fuse2fs may be behind any wrapper), where it
// changes nothing for a program that is not libfuse2 with libext2fs. Two jobs:
//
// 1. Names longer than the image can hold (any path component over EXT2_NAME_LEN, 255 bytes)
//    are answered ENAMETOOLONG before fuse2fs sees them. fuse2fs 1.47 checks no length: asked
//    to make such a name (the kernel's FUSE passes names of up to 1024 bytes) it writes a
//    directory entry whose 8-bit length wrapped, the directory then reads as corrupt (EIO,
//    e2fsck finds errors), and the next change there can turn the whole image read-only. The
//    guard wraps fuse2fs's operations at fuse_main_real: lookups (getattr) and every call that
//    makes a name (mknod, mkdir, create, symlink, link, rename's target). The calls that make
//    a name also get EEXIST when it is taken: fuse2fs links it again otherwise (a second entry
//    of that name, e2fsck errors). libfuse2's struct
//    fuse_operations is a frozen ABI (2.9 is its last version); its leading members are
//    spelled below rather than taken from libfuse-dev, which would be a build dependency for
//    one struct.
//
// 2. Environment A (the pvm backend serves FUSE itself, pvm/fuse_client.h): libfuse2 cannot
//    take an already mounted descriptor ("/dev/fd/N" is libfuse3's): it opens /dev/fuse and
//    calls mount(2) with "fd=N,…" (and, when that fails with EPERM, execs the setuid fusermount,
//    which a container denies too). With VU_FUSE_FD set, and only then:
//   - open("/dev/fuse") returns a duplicate of the socket vu handed over (VU_FUSE_FD), so the
//     program reads its requests from vu, not from the kernel;
//   - mount(2) of a "fuse*" type whose options carry fd=N of that socket succeeds without a
//     system call; umount2 of the same mountpoint too (libfuse2 unmounts at exit).
//   This is the smallest form of the mount(2) trap the environment-B work adds to the monitor
//   (SECCOMP_IOCTL_NOTIF_ADDFD): when that lands, the program can run in the view under the
//   filter and this part can go.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int vu_fd(void) {
  const char* e = getenv("VU_FUSE_FD");
  if (!e || !*e) return -1;
  char* end;
  long n = strtol(e, &end, 10);
  return *end || n < 0 || n > 1 << 20 ? -1 : (int)n;
}

static int is_dev_fuse(const char* path) { return path && strcmp(path, "/dev/fuse") == 0; }

typedef int (*open_fn)(const char*, int, ...);

static int open_common(const char* name, const char* path, int flags, va_list ap) {
  int fd = vu_fd();
  if (fd >= 0 && is_dev_fuse(path)) return fcntl(fd, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
  open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(path, flags, mode);
}

EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int r = open_common("open", path, flags, ap);
  va_end(ap);
  return r;
}

EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int r = open_common("open64", path, flags, ap);
  va_end(ap);
  return r;
}

// "fd=N" in a mount's option string names a descriptor of ours that is the socket.
static int names_our_socket(const char* data) {
  if (!data) return 0;
  const char* p = strstr(data, "fd=");
  if (!p || (p != data && p[-1] != ',')) return 0;
  int n = atoi(p + 3);
  struct stat a, b;
  int fd = vu_fd();
  if (fd < 0 || fstat(n, &a) < 0 || fstat(fd, &b) < 0) return 0;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

EXPORT int mount(const char* source, const char* target, const char* type, unsigned long flags, const void* data) {
  if (type && strncmp(type, "fuse", 4) == 0 && names_our_socket((const char*)data)) return 0;
  typedef int (*mount_fn)(const char*, const char*, const char*, unsigned long, const void*);
  mount_fn real = (mount_fn)dlsym(RTLD_NEXT, "mount");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(source, target, type, flags, data);
}

EXPORT int umount2(const char* target, int flags) {
  if (vu_fd() >= 0) return 0;  // nothing was mounted
  // Without VU_FUSE_FD (ns, environment B: the shim is there for the name guard) the program
  // mounted for real, and unmounts so when told to finish (libfuse2's SIGTERM handling).
  typedef int (*umount2_fn)(const char*, int);
  umount2_fn real = (umount2_fn)dlsym(RTLD_NEXT, "umount2");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(target, flags);
}

EXPORT int umount(const char* target) { return umount2(target, 0); }

// ---------------------------------------------------------------------------------------------
// 1. The name guard.

// libfuse2's struct fuse_operations (fuse.h, FUSE_USE_VERSION 26 and later), up to `create`:
// function pointers only, so the prefix is an array of them in this order.
enum {
  kGetattr = 0, kReadlink, kGetdir, kMknod, kMkdir, kUnlink, kRmdir, kSymlink, kRename, kLink,
  kChmod, kChown, kTruncate, kUtime, kOpen, kRead, kWrite, kStatfs, kFlush, kRelease, kFsync,
  kSetxattr, kGetxattr, kListxattr, kRemovexattr, kOpendir, kReaddir, kReleasedir, kFsyncdir,
  kInit, kDestroy, kAccess, kCreate, kPrefix
};
typedef void (*any_fn)(void);
typedef int (*path_fn)(const char*);  // first argument a path (others follow, untouched below)
enum { kMaxOps = 128 };               // pointers in the whole struct: 2.9 has 44
static any_fn real_ops[kMaxOps];
static any_fn our_ops[kMaxOps];

// Whether a component of PATH is longer than an ext2/3/4 directory entry can name.
static int too_long(const char* p) {
  size_t run = 0;
  for (; p && *p; ++p)
    if (*p == '/') run = 0;
    else if (++run > 255) return 1;
  return 0;
}

typedef int (*getattr_fn)(const char*, void*);
typedef int (*mknod_fn)(const char*, mode_t, dev_t);
typedef int (*mkdir_fn)(const char*, mode_t);
typedef int (*two_paths_fn)(const char*, const char*);
typedef int (*create_fn)(const char*, mode_t, void*);

// 0, or the errno a new name at P gets before fuse2fs sees it: too long, or taken (fuse2fs
// links a name without looking whether the directory has it: the kernel always looked it up
// first, but environment A's write-back does not, and a second entry corrupts the directory).
static int new_name(const char* p) {
  if (too_long(p)) return -ENAMETOOLONG;
  struct stat st;
  if (real_ops[kGetattr] && ((getattr_fn)real_ops[kGetattr])(p, &st) == 0) return -EEXIST;
  return 0;
}

static int g_getattr(const char* p, void* st) { return too_long(p) ? -ENAMETOOLONG : ((getattr_fn)real_ops[kGetattr])(p, st); }
static int g_mknod(const char* p, mode_t m, dev_t d) {
  int e = new_name(p);
  return e ? e : ((mknod_fn)real_ops[kMknod])(p, m, d);
}
static int g_mkdir(const char* p, mode_t m) {
  int e = new_name(p);
  return e ? e : ((mkdir_fn)real_ops[kMkdir])(p, m);
}
static int g_symlink(const char* target, const char* p) {
  int e = new_name(p);
  return e ? e : ((two_paths_fn)real_ops[kSymlink])(target, p);
}
static int g_rename(const char* from, const char* to) { return too_long(to) ? -ENAMETOOLONG : ((two_paths_fn)real_ops[kRename])(from, to); }
static int g_link(const char* from, const char* to) {
  int e = new_name(to);
  return e ? e : ((two_paths_fn)real_ops[kLink])(from, to);
}
static int g_create(const char* p, mode_t m, void* fi) {
  int e = new_name(p);
  return e ? e : ((create_fn)real_ops[kCreate])(p, m, fi);
}

typedef int (*main_fn)(int, char**, const void*, size_t, void*);

EXPORT int fuse_main_real(int argc, char* argv[], const void* op, size_t op_size, void* user_data) {
  // The layout below is libfuse2's: only a caller of libfuse2's fuse_main_real@FUSE_2.6 gets
  // the guard (the version script keeps libfuse3's fuse_main_real@FUSE_3.0 callers away; this
  // is the second line: libfuse3's struct has no getdir, three-argument getattr/rename/chmod…,
  // and guards at these indices would call its operations with the wrong arguments).
  main_fn real = (main_fn)dlvsym(RTLD_NEXT, "fuse_main_real", "FUSE_2.6");  // what fuse2fs links
  const int libfuse2 = real != NULL;
  if (!real) real = (main_fn)dlsym(RTLD_NEXT, "fuse_main_real");
  if (!real) {
    errno = ENOSYS;
    return 1;
  }
  // Not libfuse2, not an ext2/3/4 program (the shim may be preloaded into any --fuse line, which
  // reaches fuse2fs through sh and any wrapper: fusefs::fuse_program_preload), a struct smaller
  // than the prefix (a program built for an older API) or larger than any libfuse2 has:
  // served as it is.
  if (!libfuse2 || !dlsym(RTLD_DEFAULT, "ext2fs_open2") || !op || op_size < kPrefix * sizeof(any_fn) ||
      op_size > sizeof our_ops || op_size % sizeof(any_fn))
    return real(argc, argv, op, op_size, user_data);
  memcpy(real_ops, op, op_size);
  memcpy(our_ops, op, op_size);
  static const struct { int i; any_fn f; } guards[] = {
      {kGetattr, (any_fn)g_getattr}, {kMknod, (any_fn)g_mknod},   {kMkdir, (any_fn)g_mkdir}, {kSymlink, (any_fn)g_symlink},
      {kRename, (any_fn)g_rename},   {kLink, (any_fn)g_link},     {kCreate, (any_fn)g_create},
  };
  for (size_t k = 0; k < sizeof guards / sizeof guards[0]; ++k)
    if (real_ops[guards[k].i]) our_ops[guards[k].i] = guards[k].f;
  return real(argc, argv, our_ops, op_size, user_data);
}
