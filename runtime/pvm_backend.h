// runtime/pvm_backend.h — realize a Plan without namespaces: the partial virtual machine.
//
// Theory of operation. The parent turns the ViewSpec into a pvm::Config (the path map: binds
// resolved on the host, tmpfs as private directories under a temporary directory, synthetic
// read-only directories for missing ancestors of mountpoints) and a seccomp program, then forks
// the view's first process, which:
//   1. sets PR_SET_PDEATHSIG(SIGKILL) and waits until the parent has PTRACE_SEIZEd it
//   2. installs the filter with a listener (no_new_privs) and reports the listener's number;
//      the parent takes it with pidfd_getfd, then lets the child go on (the listener is
//      close-on-exec: an exec before that would leave the filter without a listener, ENOSYS)
//   3. chdir()s to the working directory and execs the command — both already virtualized, so
//      the parent answers them from the supervise() loop, which is why exec errors arrive on
//      the report pipe there (SuperviseExtras), not here.
// From then on every process of the view is a tracee of vu and carries the filter (see
// pvm/monitor.h for what is captured and why). A view without mounts needs no ptrace: its first
// process is spawned vfork-style with a shared fd table instead (no page-table copy, no
// handshake): it installs the filter, leaves the listener's number in the Launch, and execs;
// vu resumes when it has, with the listener in its own table.
#pragma once

#include <signal.h>

#include <memory>
#include <optional>
#include <string>

#include "base/child.h"
#include "base/error.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "pvm/fuse_client.h"
#include "pvm/monitor.h"
#include "runtime/command.h"
#include "runtime/net_helper.h"
#include "runtime/plan.h"
#include "runtime/pvm_fuse.h"
#include "runtime/view_spec.h"

namespace vu {

struct PvmView {
  Child child;
  std::unique_ptr<pvm::Monitor> monitor;
  UniqueFd report;                  // the first process's report pipe (read end)
  Command cmd;
  std::optional<TempDir> scratch;   // tmpfs and synthetic directories; removed at the end
  // FUSE filesystems (runtime/pvm_fuse.h): the first process starts their programs, then waits
  // for a byte on `go` (written once they are mounted) before it executes the command.
  std::unique_ptr<PvmFuse> fuse;
  UniqueFd go;
  std::vector<pvm::FuseProgram> served;  // environment A: FUSE programs the monitor serves (pvm/fuse_client.h)
  pid_t vstack = -1;  // a VDE view's vu-vstack (pvm/vstack.h): spared at the end, it sends what it holds
  // Stack mode (runtime/pvm_stack_net.h): vu-net, pumping vu-vstack's frame links. The stack
  // (one VDE network or stack mode) is waited for (pvm::vstack_finish) before vu returns, and
  // ends before vu-net (pvm_stack_finish).
  std::optional<NetHelper> net;
  std::shared_ptr<pvm::VStack> stack;
  // After supervise(): the error the first process reported (chdir or exec), if any.
  std::optional<Error> failure(const std::string& report) const;
};

// The path map and identity of a spec. Creates tmpfs and synthetic directories under *scratch
// (made on first need). With `fuse`: each program's target is bound from a private directory
// (filled in *targets), and cfg.fuse is left for the caller to set.
Result<pvm::Config> make_pvm_config(const ViewSpec& spec, std::optional<TempDir>* scratch,
                                    const std::vector<fusefs::FuseMount>* fuse = nullptr,
                                    std::vector<pvm::FuseTarget>* targets = nullptr,
                                    pvm::PathMap* server_map = nullptr,
                                    std::optional<NetHelper>* net_helper = nullptr);

Result<PvmView> start_pvm_view(const ViewSpec& spec, const sigset_t& child_mask);

// The end of a view with FUSE mounts: the view's changes written back, DESTROY, the programs
// waited for. 0, or kExitSetup when some change could not be written back (logged).
int stop_pvm_fuse(PvmView& v);

}  // namespace vu
