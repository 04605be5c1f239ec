// runtime/watchdog.h — the view's processes do not outlive vu, even when vu is killed.
//
//   Watchdog wd = VU_TRY(Watchdog::start());            // before the view exists
//   … the view's first process, before it executes the command:
//         Watchdog::tell_userns(launch.watchdog_fd);     // raw calls only
//   … supervise, kill_leftovers({…, wd.pid()}) …
//   wd.disarm();                                        // (the destructor does it too)
//
// When vu ends normally it kills what the view left (kill_leftovers). When vu is killed with
// SIGKILL it cannot: the command dies with it (PR_SET_PDEATHSIG), but the command's descendants
// would be re-parented to init and live on. The watchdog is a small process, started next to
// the view, that waits on a pipe from vu: a byte (disarm()) makes it exit; end-of-file without
// one means vu is gone, and it kills (SIGKILL) every process of the view — every process whose
// user namespace is the view's or nested in it, found in /proc — pass after pass until a pass
// finds none (zombies excepted: they are init's to reap). The first process tells it which
// namespace before it runs anything, so there is no moment when a killed vu leaves an unwatched
// view; a watchdog told nothing (the view never started) just exits.
//
// Cost: the watchdog is a clone(CLONE_VM) of vu on a stack of its own (no page tables copied,
// ~0.05 ms), so it must never touch vu's memory after the clone: it makes raw system calls only
// (no errno, no allocation, no locks — see watchdog.cc). It leaves vu's process group (a ^C is
// the command's, not its), is named "vu-watchdog" (`pkill vu` spares it), and holds no file of
// vu's but its pipe (`x=$(vu run …)` never waits for it).
//
// The pvm backend does not need one where it traces the view (PTRACE_O_EXITKILL kills every
// tracee with vu).
#pragma once

#include <sys/types.h>

#include <memory>

#include "base/child.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace vu {

class Watchdog {
 public:
  // Starts the watchdog; it waits for the view's user namespace on identity_fd().
  static Result<Watchdog> start();
  // In the view's first process (the restricted zone between clone and execve): tells the
  // watchdog this process's user namespace. Close-on-exec, so the command never holds it.
  static void tell_userns(int identity_fd);

  Watchdog() = default;
  Watchdog(Watchdog&&) = default;
  Watchdog& operator=(Watchdog&&) = default;
  ~Watchdog() { disarm(); }
  int identity_fd() const { return done_.get(); }
  // The view ended and vu cleaned up (or it never started): the watchdog exits by itself.
  void disarm();
  pid_t pid() const { return child_.pid(); }

 private:
  struct Unmap {
    void operator()(void* stack) const;
  };
  Child child_;
  UniqueFd done_;  // the write end of its pipe: the namespace, then "done"
  std::unique_ptr<void, Unmap> stack_;  // unmapped only once the watchdog has exited
};

}  // namespace vu
