// runtime/supervisor.h — the process outside the view that waits for it.
//
//   SignalForwarder fwd = VU_TRY(SignalForwarder::install());   // before the clone
//   Child c = VU_TRY(start_ns_view(spec, plan, fwd.child_mask()));
//   ExitStatus st = VU_TRY(supervise(c, fwd));
//
// Signals SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM sent to vu are
// forwarded to the command. Those the terminal generates (^C, ^\, window size, hangup) reach the
// whole foreground process group, the command included, so they are not sent twice.
//
// Lifetime of the view's processes (the semantics of a pid namespace, without its cost):
// install() makes vu a child subreaper, so processes the command leaves behind are re-parented
// to vu instead of init. They are reaped while the view runs, and when the command exits the
// remaining ones are killed (SIGKILL) and reaped before vu returns. The command itself dies if
// vu dies (PR_SET_PDEATHSIG in the ns backend).
#pragma once

#include <functional>

#include <signal.h>

#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "pvm/monitor.h"

namespace vu {

class SignalForwarder {
 public:
  // Blocks the forwarded signals and SIGCHLD, opens a signalfd for them, becomes a subreaper.
  static Result<SignalForwarder> install();
  SignalForwarder(SignalForwarder&&) = default;
  ~SignalForwarder();
  // The mask the command must start with (the one vu had before install()).
  const sigset_t& child_mask() const { return old_; }
  int fd() const { return fd_.get(); }

 private:
  SignalForwarder() = default;
  sigset_t old_{};
  UniqueFd fd_;
};

// What the pvm backend adds to the loop: its monitor answers seccomp notifications and ptrace
// stops; bytes arriving on report_fd (the first process's set-up report) are kept in *report.
struct SuperviseExtras {
  pvm::Monitor* monitor = nullptr;
  int report_fd = -1;
  std::string* report = nullptr;
  // Told of every other child reaped meanwhile (pid, wait status): vu-net's death, for one.
  std::function<void(pid_t, int)> on_other_exit;
};

// Waits for the child to exit, forwarding signals and reaping orphans. Returns how the command
// ended. The caller then stops vu-net, if any, and calls kill_leftovers().
Result<ExitStatus> supervise(Child& child, const SignalForwarder& signals, SuperviseExtras extras = {});

// Kills (SIGKILL) and reaps every remaining child of this process, including orphans that keep
// arriving while it does so, except `spare` (vu-net tearing down its taps, the FUSE keeper). Returns how many.
// It waits for each killed child without serving a pvm monitor: not while a traced process
// the killed ones may wait for (a FUSE program answering their last FLUSH) can be in a ptrace
// stop — PvmFuse::teardown uses kill_children() in its own loop instead.
int kill_leftovers(std::vector<pid_t> spare = {});
// One round of that, without waiting: SIGKILL to every child but `spare`. Returns how many.
int kill_children(const std::vector<pid_t>& spare);

}  // namespace vu
