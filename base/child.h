// base/child.h — a child process owned through a pidfd.
//
//   auto c = VU_TRY(vu::Child::clone(CLONE_NEWUSER | CLONE_NEWNS));
//   if (c.is_child()) { …restricted zone (raw_log.h only)…; execve(…); _exit(127); }
//   ExitStatus st = VU_TRY(c.wait());
//
// clone() has fork semantics (the child runs on a copy of the caller's stack and memory).
// Ownership: a Child that is destroyed before wait() kills its process (SIGKILL) and reaps it, so
// no error path leaves a process behind. release() gives the process up instead.
// Fork-safety: call clone() only from a single-threaded process, or keep the child to
// async-signal-safe calls (CRITICAL: malloc locks held by other threads are copied locked).
#pragma once

#include <sys/types.h>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vu {

struct ExitStatus {
  bool signaled = false;
  int value = 0;  // exit code, or the signal number when signaled
  // The status a shell reports: the code, or 128+N for a command killed by signal N.
  int shell_status() const { return signaled ? 128 + value : value; }
};

class Child {
 public:
  // clone(2) with flags | CLONE_PIDFD, exit signal SIGCHLD. Returns the owner in the parent and a
  // Child with is_child() == true in the child. Errors carry the errno of clone (EPERM, ENOSPC,
  // EINVAL tell why namespaces were refused).
  static Result<Child> clone(unsigned long flags);

  // clone(2) with flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD: fn(arg) runs on a private stack
  // sharing the caller's memory, and the caller resumes when fn has called execve or _exit (as
  // posix_spawn does). No page tables are copied, which makes it the fast way to start a view.
  // CRITICAL: fn must only make syscalls on data prepared beforehand, never return, and never
  // wait for the caller (which is suspended).
  static Result<Child> spawn(int (*fn)(void*), void* arg, unsigned long flags);

  // Owns a process started otherwise (a clone of one's own; pid and its CLONE_PIDFD pidfd).
  static Child adopt(pid_t pid, int pidfd);

  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  bool is_child() const { return in_child_; }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // pidfd_send_signal(2).
  Result<void> signal(int sig) const;
  // Blocks until the process exits and reaps it.
  Result<ExitStatus> wait();
  // Reaps it if it has exited; std::nullopt-like: returns false in *exited when still running.
  Result<ExitStatus> try_wait(bool* exited);
  // Gives up ownership without killing.
  void release();

 private:
  Result<ExitStatus> wait_flags(int flags, bool* exited);
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool in_child_ = false;
};

// Empties every capability set (ambient, permitted, effective, inheritable) of the calling
// process when it runs as an ordinary user: capabilities vu was given (ambient ones from cado,
// e.g. `cado sys_admin -- vu run --net join:NAME`) are vu's, never a view's process's (on ns the
// view is in a user namespace of its own and holds none of them over the host). vu run by root
// keeps root's. 0 or errno. Async-signal-safe: for a child between fork/clone and exec.
int drop_given_caps();

}  // namespace vu
