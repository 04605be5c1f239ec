#include "runtime/watchdog.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#if !defined(__x86_64__)
#error "runtime/watchdog.cc: raw system calls are written for x86_64 (as pvm/ is)"
#endif

namespace vu {

namespace {

// ---- The watchdog's side: raw system calls only -------------------------------------------
// CRITICAL: the watchdog shares vu's memory (CLONE_VM) and its thread pointer, so a libc call
// that sets errno would write vu's errno under its feet. Everything below returns -errno.

long sys6(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

constexpr size_t kStack = 64 * 1024;

struct WatchArgs {
  int pipe_fd;
  ino_t own;   // our user namespace: processes in it are skipped at the first look
};

// What the first process writes: its user namespace (nsfs), and its pid to find it by.
struct Identity {
  uint64_t dev;
  uint64_t ino;
  int64_t pid;
};

struct Target {
  dev_t dev;
  ino_t ino;
  ino_t own;
};

struct Dirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

// "PID/SUFFIX" into buf (at least 32 bytes).
void proc_path(char* buf, long pid, const char* suffix) {
  char digits[24];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + pid % 10); while ((pid /= 10) > 0);
  char* p = buf;
  while (n > 0) *p++ = digits[--n];
  while ((*p++ = *suffix++)) {
  }
}

// Whether the user namespace `ns` (an nsfs fd) is the view's or nested in it. Closes ns.
bool in_view(long ns, const Target& a) {
  for (int depth = 0; ns >= 0 && depth < 33; ++depth) {  // the kernel nests at most 32 deep
    struct stat st;
    if (sys6(SYS_fstat, ns, reinterpret_cast<long>(&st)) == 0 && st.st_dev == a.dev && st.st_ino == a.ino) {
      sys6(SYS_close, ns);
      return true;
    }
    long parent = sys6(SYS_ioctl, ns, NS_GET_PARENT);  // -EPERM at the top of our scope
    sys6(SYS_close, ns);
    ns = parent;
  }
  if (ns >= 0) sys6(SYS_close, ns);
  return false;
}

// One pass over /proc; returns how many live processes of the view were sent SIGKILL.
int kill_pass(const Target& a) {
  long proc = sys6(SYS_open, reinterpret_cast<long>("/proc"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return 0;
  int killed = 0;
  alignas(8) char buf[4096];
  for (;;) {
    long n = sys6(SYS_getdents64, proc, reinterpret_cast<long>(buf), sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const Dirent64*>(buf + off);
      off += d->reclen;
      long pid = 0;
      const char* c = d->name;
      for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
      if (*c || pid <= 1) continue;
      char path[48];
      proc_path(path, pid, "/ns/user");
      struct stat st;
      if (sys6(SYS_newfstatat, proc, reinterpret_cast<long>(path), reinterpret_cast<long>(&st), 0) < 0 ||
          st.st_ino == a.own)
        continue;  // gone, or the host's
      long ns = sys6(SYS_openat, proc, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || !in_view(ns, a)) continue;
      // A zombie keeps its credentials (so its namespace) until init reaps it: not a survivor.
      proc_path(path, pid, "/stat");
      char text[160];
      long fd = sys6(SYS_openat, proc, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
      long len = fd >= 0 ? sys6(SYS_read, fd, reinterpret_cast<long>(text), sizeof text - 1) : -1;
      if (fd >= 0) sys6(SYS_close, fd);
      char state = 0;
      for (long i = len - 1; i > 0; --i)
        if (text[i] == ')') {
          state = i + 2 < len ? text[i + 2] : 0;
          break;
        }
      if (state == 'Z' || state == 'X') continue;
      if (sys6(SYS_kill, pid, SIGKILL) == 0) ++killed;
    }
  }
  sys6(SYS_close, proc);
  return killed;
}

// Reads exactly n bytes; false at end-of-file or error.
bool read_full(int fd, void* buf, long n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    long k = sys6(SYS_read, fd, reinterpret_cast<long>(p), n);
    if (k == -EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

int watchdog_main(void* arg) {
  const WatchArgs a = *static_cast<const WatchArgs*>(arg);
  sys6(SYS_setpgid, 0, 0);
  sys6(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("vu-watchdog"));
  if (a.pipe_fd > 0) sys6(SYS_close_range, 0, a.pipe_fd - 1, 0);
  sys6(SYS_close_range, a.pipe_fd + 1, ~0U, 0);
  Identity id;
  char c;
  if (!read_full(a.pipe_fd, &id, sizeof id)) sys6(SYS_exit, 0);  // the view never started
  // Hold the view's user namespace (its first process's, if it still is that one): namespace
  // inode numbers are handed out again at once when one is freed, so without a reference a
  // namespace made after the view's is gone could take its number, and the passes below would
  // kill that namespace's processes. Held, it keeps its number as long as the watchdog lives.
  char path[64] = "/proc/";
  proc_path(path + 6, static_cast<long>(id.pid), "/ns/user");
  long held = id.pid > 0 ? sys6(SYS_open, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC) : -1;
  struct stat hs;
  if (held >= 0 && (sys6(SYS_fstat, held, reinterpret_cast<long>(&hs)) < 0 || hs.st_dev != id.dev || hs.st_ino != id.ino)) {
    sys6(SYS_close, held);  // it already left (a nested namespace) or is gone: numbers only
    held = -1;
  }
  // Told "done": nothing to do.
  if (read_full(a.pipe_fd, &c, 1)) sys6(SYS_exit, 0);
  // vu is gone without a word. New processes can appear while a pass runs (a fork just before
  // its parent's SIGKILL): pass again until one finds nobody (bounded: 2000 passes, ~2 s).
  const Target t{static_cast<dev_t>(id.dev), static_cast<ino_t>(id.ino), a.own};
  for (int round = 0; round < 2000 && kill_pass(t) > 0; ++round) {
    struct timespec ts{0, 1000000};
    sys6(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
  }
  sys6(SYS_exit, 0);
  return 0;
}

}  // namespace

// ---- vu's side ----------------------------------------------------------------------------

Result<Watchdog> Watchdog::start() {
  struct stat own;
  if (::stat("/proc/self/ns/user", &own) < 0) return Error::sys("stat", errno, "/proc/self/ns/user");
  auto p = VU_TRY(sys::pipe());
  // If vu is killed the watchdog keeps the memory (and its stack) alive; otherwise the stack is
  // unmapped after the watchdog has been reaped.
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Error::sys("mmap", errno, "(watchdog stack)");
  auto* args = static_cast<WatchArgs*>(stack);  // at the bottom; the stack grows down from the top
  *args = WatchArgs{p.first.get(), own.st_ino};
  int pidfd = -1;
  int r = ::clone(watchdog_main, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_PIDFD | SIGCHLD, args, &pidfd);
  if (r < 0) {
    int err = errno;
    ::munmap(stack, kStack);
    return Error::sys("clone", err, "(watchdog)");
  }
  Watchdog w;
  w.child_ = Child::adopt(r, pidfd);
  w.done_ = std::move(p.second);
  w.stack_.reset(stack);
  return w;  // p.first closes here: the watchdog has its own copy of the fd table
}

void Watchdog::tell_userns(int identity_fd) {
  struct stat st;
  if (identity_fd < 0 || ::stat("/proc/self/ns/user", &st) < 0) return;
  Identity id{st.st_dev, st.st_ino, ::getpid()};
  (void)!::write(identity_fd, &id, sizeof id);  // atomic: far below PIPE_BUF
}

void Watchdog::disarm() {
  if (!done_) return;
  char c = 'd';
  // A watchdog killed (kill -9) has closed its end: the write fails with EPIPE, and the SIGPIPE
  // that comes with it must not kill vu (it lost the command's status: 141). Blocked for the
  // write, taken back if it was raised; SIG_IGN would be inherited by the views' commands.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  const bool pending = ::sigpending(&old) == 0 && sigismember(&old, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  if (::write(done_.get(), &c, 1) < 0 && errno == EPIPE && !pending) {
    const struct timespec zero {};
    (void)::sigtimedwait(&pipe_set, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  done_.reset();
  // It exits as soon as it reads that; vu does not wait for it (that would add its wake-up to
  // every exit). Reaped here if it is already gone, else by vu's reaping loop or, after vu,
  // by init; its stack is then left mapped (64 KiB) rather than pulled from under it.
  bool exited = false;
  if (auto st = child_.try_wait(&exited); st && exited) {
    stack_.reset();
  } else {
    child_.release();
    (void)stack_.release();
  }
}

void Watchdog::Unmap::operator()(void* stack) const { ::munmap(stack, kStack); }

}  // namespace vu
