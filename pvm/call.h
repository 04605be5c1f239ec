// pvm/call.h — one intercepted call as the modules see it, and what every module needs to
// serve it: the caller's memory (process_vm_readv/writev), facts about it from /proc, its
// path arguments resolved in the view, its descriptors (pidfd_getfd), and the way to wait as
// the caller would (wait_like_caller). Internal to pvm/: the modules (fs, net, identity, uts)
// and the capture core (monitor.cc) include it; nothing outside pvm/ does.
//
// Thread-safety: every function here may run on any worker at once; Config is read-only
// except its hostname (uts.cc, under the core's lock).
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <linux/seccomp.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "pvm/monitor.h"
#include "pvm/path_map.h"

#ifndef SECCOMP_IOCTL_NOTIF_ID_VALID
#define SECCOMP_IOCTL_NOTIF_ID_VALID SECCOMP_IOW(2, __u64)
#endif

namespace vu::pvm {

// The caller's memory: whole reads and writes, or false.
bool read_mem(pid_t pid, uint64_t addr, void* buf, size_t len);
// The bytes of the caller's iovecs, at most `max` of them (more: EMSGSIZE in *err; an unreadable
// one: EFAULT). Each length is checked before it is added: a sum cannot wrap.
bool gather_iov(pid_t pid, const std::vector<iovec>& riov, size_t max, std::vector<char>* data, int* err);
bool write_mem(pid_t pid, uint64_t addr, const void* buf, size_t len);
// A NUL-terminated string of at most `max` bytes: 0, EFAULT or ENAMETOOLONG.
int read_string(pid_t pid, uint64_t addr, std::string* out, size_t max = 4096);
std::string read_link(const std::string& path);  // "" on error
std::string proc_path(pid_t tid, const char* what);
std::string fd_path(pid_t tid, int fd);
std::string dirfd_path(pid_t tid, int dirfd);  // the descriptor's, or the cwd for AT_FDCWD
bool names_dirfd(pid_t tid, uint64_t path, int flags);  // AT_EMPTY_PATH with ""
long status_field(pid_t tid, const char* key, int base);  // /proc/TID/status, or -1

// One call.

struct Monitor::Call {
  uint64_t id;
  pid_t tid;
  int nr;
  uint64_t a[6];
  int listener = -1;  // for id_valid() (-1: a ptrace stop, always valid)
  std::function<void()> before_wait;  // the worker hands the receiving over (Monitor::Core)
  pid_t tgid_cache = 0;
  pid_t tgid() {
    if (!tgid_cache) {
      long t = status_field(tid, "Tgid:", 10);
      tgid_cache = t > 0 ? static_cast<pid_t>(t) : tid;
    }
    return tgid_cache;
  }
  int arg_int(int i) const { return static_cast<int>(a[i]); }
  // Whether the caller still waits for this answer (a blocking call interrupted by the monitor's
  // wake-up signal goes on only while it does).
  bool id_valid() const {
    return listener < 0 || ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
  }
};

struct Monitor::Answer {
  enum Kind { kContinue, kValue, kFd } kind = kContinue;
  int64_t val = 0;
  int err = 0;
  UniqueFd fd;
  bool cloexec = false;
  static Answer cont() { return {}; }
  static Answer value(int64_t v) {
    Answer a;
    a.kind = kValue;
    a.val = v;
    return a;
  }
  static Answer error(int e) {
    Answer a;
    a.kind = kValue;
    a.err = e;
    return a;
  }
  // The result of a call we made ourselves: -1 → errno.
  static Answer result(long rc) { return rc < 0 ? error(errno) : value(rc); }
};


using Answer = Monitor::Answer;
using Call = Monitor::Call;

// Owners: the caller's ids as the view shows them (65534 for the unmapped), and back (chown).
uid_t view_uid(const Config& c, uid_t u);
gid_t view_gid(const Config& c, gid_t g);
bool host_uid(const Config& c, uint32_t v, uid_t* out);
bool host_gid(const Config& c, uint32_t v, gid_t* out);
// Where a relative path starts (dirfd or cwd), in both worlds; 0 or errno.
int start_of(const Config& cfg, Call& c, int dirfd, Start* s);
// The path argument at addr, resolved in the view from dirfd (errors in Resolved::err).
Resolved resolve_arg(const Config& cfg, Call& c, int dirfd, uint64_t addr, bool follow, std::string* raw = nullptr);
mode_t umask_of(Call& c);
// The caller's descriptor fd, duplicated into vu (same open file description).
UniqueFd take_fd(Call& c, int fd, int* err);

// Starts fn(arg) on a thread of the monitor's with every signal blocked from its first
// instruction (a thread that wants the wake-up signal sets its own mask) and a stack of `stack`
// bytes; pthread_create's result (arg stays the caller's to free when it fails).
int start_masked_thread(pthread_t* t, void* (*fn)(void*), void* arg, size_t stack);

// Interrupts a worker's poll() or blocking call (no SA_RESTART: the call returns EINTR).
int wake_signal();
constexpr int kERestartSys = 512;  // the kernel's "interrupted, restart if the handler allows"
bool signal_pending(pid_t tid);

// Runs op() — a call that may wait for another process (a FIFO open, a connect) — on this
// worker as the caller would run it: the caller, in its killable seccomp wait, cannot take a
// signal meanwhile (and, being traced, not even a fatal one), so every 20 ms op is interrupted
// (the wake-up signal through a timer of this thread) and the caller looked at: gone → ENOENT
// from here (nothing to answer); a signal to handle → ERESTARTSYS, which the kernel turns into
// what the interrupted call gives natively (restart after the handler, EINTR, or the default
// action). Returns op's result, or -1 with errno.
template <typename Op>
long wait_like_caller(Call& c, Op op) {
  if (c.before_wait) c.before_wait();
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = wake_signal();
  sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
  timer_t timer;
  const bool timed = ::timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
  if (timed) {
    itimerspec its{{0, 20'000'000}, {0, 20'000'000}};
    ::timer_settime(timer, 0, &its, nullptr);
  }
  long rc;
  int err = 0;
  for (;;) {
    rc = op();
    if (rc >= 0 || errno != EINTR) {
      err = errno;
      break;
    }
    if (!c.id_valid()) {
      err = ENOENT;
      break;
    }
    if (signal_pending(c.tid)) {
      err = kERestartSys;
      break;
    }
  }
  if (timed) ::timer_delete(timer);
  errno = err;
  return rc >= 0 ? rc : -1;
}

// A receive on the view's socket fd (a host socket or a socketpair end) that may wait, run as
// wait_like_caller runs op: recv() does the receive. SO_RCVTIMEO (ping waits for its next echo
// with it) on a blocking socket: wait_like_caller's wake-ups (every 20 ms) restart the kernel's
// timer with each retry, so the deadline is kept here and looked at after each wake-up (EAGAIN
// at it, as natively). The wait itself stays the kernel's (not poll: a queued ICMP error,
// IP_RECVERR, keeps POLLERR up and would spin the worker; MSG_ERRQUEUE never waits), and a
// socket with a timeout is never restarted after a signal handler: EINTR (socket(7)).
template <typename Recv>
long recv_like_caller(Call& c, int fd, int flags, Recv recv) {
  timeval tv{};
  socklen_t tvlen = sizeof tv;
  const bool timed = !(flags & MSG_DONTWAIT) && !(::fcntl(fd, F_GETFL) & O_NONBLOCK) &&
                     ::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen) == 0 && (tv.tv_sec || tv.tv_usec);
  auto now_us = [] {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
  };
  const long long deadline = timed ? now_us() + tv.tv_sec * 1000000LL + tv.tv_usec : 0;
  const long got = wait_like_caller(c, [&]() -> long {
    if (timed && deadline - now_us() <= 0) return errno = EAGAIN, -1L;
    return static_cast<long>(recv());
  });
  if (got < 0 && timed && errno == kERestartSys) errno = EINTR;
  return got;
}

}  // namespace vu::pvm
