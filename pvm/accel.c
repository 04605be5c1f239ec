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
// Anything else — absolute paths, "..", symlinks, writes — goes to libc as usual and so to the
// monitor. The library is only an accelerator: without it (static binaries, a cleared
// environment) every answer is the same, only slower.
//
// The native calls are made from a trampoline page mapped at a fixed address; the filter
// (pvm/monitor.cc) lets exactly these system calls (fstat, newfstatat, statx, openat) pass when they are
// made from that address. A program that deliberately jumps there can read metadata without the
// view's id mapping and open files read-only outside the path map: an accepted limit, pvm is a
// view, not a sandbox (bwrap's or a seccomp profile's job).
//
// A view without mounts ("a" below) is simpler still: every lookup is the host's, so every stat
// is answered natively and only the owners are mapped.
//
// Configuration comes in the environment, VU_PVM_ACCEL=1:UID:GID:ROOT:a|m:DEV.INO,DEV.INO,…, and is
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

#include "pvm/accel_abi.h"

extern char** environ;

#define EXPORT __attribute__((visibility("default")))

static int enabled;
static uid_t own_uid;
static gid_t own_gid;
static int as_root;
static int all_paths_plain;  // no mounts in the view: every lookup is the host's
static struct {
  unsigned long dev, ino;
} holders[VU_ACCEL_MAX_HOLDERS];
static int n_holders;
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
static unsigned view_id(unsigned id, unsigned own) {
  return id == own ? (as_root ? 0 : own) : VU_ACCEL_OVERFLOW_ID;
}

static void map_ids(struct stat* st) {
  st->st_uid = view_id(st->st_uid, own_uid);
  st->st_gid = view_id(st->st_gid, own_gid);
}

static int simple_name(const char* name) {
  if (!name || !name[0] || strchr(name, '/')) return 0;
  if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) return 0;
  return 1;
}

// 1 when a one-step lookup from dirfd (or the cwd) cannot meet a mountpoint of the view.
static int dir_is_plain(int dirfd) {
  struct stat st;
  long rc = dirfd == AT_FDCWD ? native(SYS_newfstatat, AT_FDCWD, (long)".", (long)&st, 0, 0)
                              : native(SYS_fstat, dirfd, (long)&st, 0, 0, 0);
  if (rc < 0) return 0;
  for (int i = 0; i < n_holders; ++i)
    if (holders[i].dev == st.st_dev && holders[i].ino == st.st_ino) return 0;
  return 1;
}

// 1: answered in *rc; 0: take the monitor's way.
static int fast_fstatat(int dirfd, const char* name, struct stat* st, int flags, int* rc) {
  if (!enabled) return 0;
  if ((flags & AT_EMPTY_PATH) && name && !name[0]) {
    if (native(SYS_fstat, dirfd, (long)st, 0, 0, 0) < 0) return *rc = -1, 1;
    map_ids(st);
    return *rc = 0, 1;
  }
  if (all_paths_plain) {
    if (native(SYS_newfstatat, dirfd, (long)name, (long)st, flags, 0) < 0) return *rc = -1, 1;
    map_ids(st);
    return *rc = 0, 1;
  }
  if ((dirfd < 0 && dirfd != AT_FDCWD) || !simple_name(name) || (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)))
    return 0;
  if (!dir_is_plain(dirfd)) return 0;
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
  if (!enabled) return (int)syscall(SYS_fstat, fd, st);
  if (native(SYS_fstat, fd, (long)st, 0, 0, 0) < 0) return -1;
  map_ids(st);
  return 0;
}
EXPORT int fstat64(int fd, struct stat64* st) { return fstat(fd, (struct stat*)st); }

EXPORT int statx(int dirfd, const char* name, int flags, unsigned int mask, struct statx* stx) {
  if (enabled) {
    int ok = 0;
    if (all_paths_plain || ((flags & AT_EMPTY_PATH) && !name[0])) {
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
    if (ok) {
      stx->stx_uid = view_id(stx->stx_uid, own_uid);
      stx->stx_gid = view_id(stx->stx_gid, own_gid);
      return 0;
    }
  }
  return (int)syscall(SYS_statx, dirfd, name, flags, mask, stx);
}

static int open_fast(int dirfd, const char* name, int flags, int* fd) {
  if (!enabled || (dirfd < 0 && dirfd != AT_FDCWD) || !simple_name(name)) return 0;
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) || (flags & O_TMPFILE) == O_TMPFILE) return 0;
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

// The mode argument exists only with O_CREAT or O_TMPFILE.
static mode_t mode_arg(int flags, va_list ap) {
  return ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? va_arg(ap, mode_t) : 0;
}

static int open_impl(int dirfd, const char* name, int flags, mode_t mode) {
  int fd;
  if (open_fast(dirfd, name, flags, &fd)) return fd;
  return (int)syscall(SYS_openat, dirfd, name, flags, mode);
}

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
#define REAL(type, name) ((type)dlsym(RTLD_NEXT, name))

static DIR* new_stream(int fd) {
  struct vu_dir* d = malloc(sizeof *d);
  if (!d) return NULL;
  d->magic = VU_DIR_MAGIC;
  d->fd = fd;
  pthread_mutex_init(&d->lock, NULL);
  d->pos = d->len = 0;
  d->filepos = 0;
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
  return new_stream(fd);
}

EXPORT DIR* opendir(const char* name) {
  if (!enabled) return REAL(opendir_fn, "opendir")(name);
  int fd = openat(AT_FDCWD, name, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return NULL;
  DIR* d = new_stream(fd);
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
    long n = syscall(SYS_getdents64, d->fd, d->buf, sizeof d->buf);
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
  if (*p++ != ':') return;
  if (*p != 'a' && *p != 'm') return;
  all_paths_plain = *p++ == 'a';
  if (*p++ != ':') return;
  while (*p && n_holders < VU_ACCEL_MAX_HOLDERS) {
    holders[n_holders].dev = parse_ul(&p, 10);
    if (*p++ != '.') return;
    holders[n_holders].ino = parse_ul(&p, 10);
    ++n_holders;
    if (*p == ',') ++p;
    else if (*p) return;
  }
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
