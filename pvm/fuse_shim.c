// pvm/fuse_shim.c — libvu-fuse-shim.so: preloaded into a libfuse2 FUSE program (fuse2fs) that
// the pvm backend serves itself (pvm/fuse_client.h, environment A). libfuse2 cannot take an
// already mounted descriptor ("/dev/fd/N" is libfuse3's): it opens /dev/fuse and calls
// mount(2) with "fd=N,…" (and, when that fails with EPERM, execs the setuid fusermount, which a
// container denies too). Here:
//   - open("/dev/fuse") returns a duplicate of the socket vu handed over (VU_FUSE_FD), so the
//     program reads its requests from vu, not from the kernel;
//   - mount(2) of a "fuse*" type whose options carry fd=N of that socket succeeds without a
//     system call; umount2 of the same mountpoint too (libfuse2 unmounts at exit).
// Nothing else changes, and nothing at all without VU_FUSE_FD. This is the smallest form of the
// mount(2) trap the environment-B work adds to the monitor (SECCOMP_IOCTL_NOTIF_ADDFD): when that
// lands, the program can run in the view under the filter and this file can go.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
  (void)target;
  (void)flags;
  if (vu_fd() >= 0) return 0;  // nothing was mounted
  errno = EPERM;
  return -1;
}

EXPORT int umount(const char* target) { return umount2(target, 0); }
