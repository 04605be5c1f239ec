// runtime/ns_backend.h — realize a Plan with namespaces and start the command in it.
//
// Theory of operation. Everything the child will need is computed first, in the parent, into a
// Launch (id map texts, mount plan, argv, envp, PATH list, cwd): after clone() the child only
// reads it. The child is created already inside the new namespaces (clone with CLONE_NEWUSER|…;
// with CLONE_VM|CLONE_VFORK on its own stack unless it must wait for newuidmap, which saves
// copying vu's page tables: ~0.5 ms of the start-up here) and then, in this order, each stage
// depending on the one before:
//   1. PR_SET_PDEATHSIG(SIGKILL)      the view dies with the supervisor (checked against a race)
//   2. id maps                         own-id maps written by the child itself; or, with
//                                      --map-users, it waits until the parent has run
//                                      newuidmap/newgidmap (sync pipe)
//   3. mounts                          bindmount::apply, in spec order (needs CAP_SYS_ADMIN in
//                                      the userns, which the child has until execve)
//   4. hostname                        sethostname in the new UTS namespace
//   5. network                         with a network namespace: own /sys, lo up, then taps
//                                      vde0… created, configured (MTU, IPv4, default route)
//                                      and sent to vu-net (SCM_RIGHTS) before the mounts, which
//                                      include /etc/resolv.conf when DNS servers are known
//   6. working directory               the requested one, else the caller's (seen through the
//                                      view's mounts), else / with a warning
//   7. FUSE filesystems                with --fuse/--mount or a FUSE copy-on-write layer: the
//                                      keeper (fusefs/keeper.h) is cloned as vu's child, its
//                                      pid reported (a kKeeper record; the parent keeps
//                                      reading), and the child waits until every filesystem
//                                      is mounted or one failed
//   8. --rootfs: pid namespace init    a fresh /proc, then the command cloned as pid 2 (vfork-style) while
//                                      this process stays as the namespace's init (view_init
//                                      in ns_backend.cc; the clone is then a fork, not spawn)
//   9. signal mask restored, execve    PATH searched without allocating
// A failure at any stage is sent to the parent as a fixed-size ChildReport on a CLOEXEC pipe,
// and the child exits: the command never runs in a half-built view. EOF on that pipe without
// a report means execve succeeded.
// CRITICAL: the code between clone() and execve() allocates nothing and logs only through
// base/raw_log.h.
#pragma once

#include <signal.h>

#include "base/child.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "fusefs/fusefs.h"
#include "runtime/plan.h"
#include "runtime/view_spec.h"

namespace vu {

// A started view: the command, and what must outlive it.
struct NsView {
  Child child;                                    // the command (exec'ed)
  pid_t keeper = -1;                              // the FUSE keeper, a child of vu; -1: none
  UniqueFd keeper_control;                        // close to make the keeper unmount and exit
  std::vector<fusefs::CowMount> cows;             // kernel layers' work directories
  UniqueFd init_status;                           // --rootfs (pid namespace): the init's report
  // How the command ended, given how the view's first process did: with a pid namespace that
  // process is the init, which reports the command's own wait status (it cannot die of a signal).
  ExitStatus command_status(ExitStatus first) const;
  // After the command and the view's other processes are gone: unmount the FUSE filesystems
  // and wait until their programs have finished (flushed) and exited.
  void stop_keeper();
};

// Starts the view's first process. child_mask is the signal mask the command must start with;
// net_socket is where the taps go (NetHelper::view_socket()), -1 without uplinks; watchdog_fd
// is Watchdog::identity_fd() (-1: none), told the view's user namespace before anything runs.
// On success the command has been exec'ed.
Result<NsView> start_ns_view(const ViewSpec& spec, const Plan& plan, const sigset_t& child_mask,
                             int net_socket, int watchdog_fd = -1);

}  // namespace vu
