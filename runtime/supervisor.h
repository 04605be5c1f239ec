// runtime/supervisor.h — the process outside the view that waits for it.
//
//   SignalForwarder fwd = VU_TRY(SignalForwarder::install());   // before the clone
//   Child c = VU_TRY(start_ns_view(spec, plan, fwd.child_mask()));
//   ExitStatus st = VU_TRY(supervise(c, fwd));
//
// Signals SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM sent to vu are
// forwarded to the command. Those the terminal generates (^C, ^\, window size, hangup) reach the
// whole foreground process group, the command included, so they are not sent twice. The
// command dies if vu dies (PR_SET_PDEATHSIG in the ns backend).
#pragma once

#include <signal.h>

#include "base/child.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace vu {

class SignalForwarder {
 public:
  // Blocks the forwarded signals and opens a signalfd for them.
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

// Waits for the child to exit, forwarding signals; returns how it ended.
Result<ExitStatus> supervise(Child& child, const SignalForwarder& signals);

}  // namespace vu
