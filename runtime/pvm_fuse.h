// runtime/pvm_fuse.h — --fuse, --mount image: and --cow on the partial-VM backend.
//
// Which environment (issue 16), probed only when a spec has FUSE mounts:
//   B  the kernel's FUSE through the setuid fusermount3: /dev/fuse opens read-write,
//      fusermount3 is setuid root, and vu itself is not under no_new_privs (which would strip
//      the setuid bit). A desktop with user namespaces blocked from mounting (Ubuntu's AppArmor
//      rule) or denied (a seccomp profile applied without no_new_privs).
//   A  anything else (a container: mount(2) denied to everyone, setuid helpers too): the
//      monitor's own FUSE client serves the programs (pvm/fuse_client.h; not here).
// B's FUSE programs are started by the view's first process (pvm_backend.cc), traced like the
// rest of the view; their mount(2) is answered by pvm/fuse_mount.h's hook; their targets are
// placed in the path map after the --cow directories (the monitor's, pvm/cow.h), as the ns
// backend mounts them. The command starts only once every filesystem is mounted and each
// program has answered the kernel's INIT (a bounded wait: a program that never answers would
// hang every call on its mount). At the end: the view's other processes are killed, the
// filesystems unmounted (fusermount3 -u -z), the programs waited for (fuse2fs writes its image
// back then), bounded. The killed processes are reaped in the loop that serves the monitor: a
// process killed with a FUSE file open waits for its program's answer to FLUSH, and the
// program may be in a ptrace stop only vu's supervising thread resumes (kill_children, not
// kill_leftovers' blocking wait: runtime/supervisor.h).
//
// If vu is killed, the programs die with the view (PTRACE_O_EXITKILL) and vu's watchers
// (pvm/fuse_mount.h: a shell per mount, in a session of its own) unmount. If the watchers are
// killed too — `pkill -9 -u USER`, a session's cgroup killed, the OOM killer — nothing runs
// to unmount at that moment, and nothing can: an unprivileged user's processes can all be
// killed at once, and every kernel way to tie a mount's life to a process needs privilege or
// does not apply here:
//   - fusermount3's auto_unmount (its watcher is setuid root, which `pkill -u` would spare)
//     unmounts only when opening the mountpoint says ENOTCONN; without allow_other the kernel
//     refuses the setuid process (EACCES) first, so it never unmounts (fuse3 3.14, tried), and
//     allow_other needs user_allow_other in /etc/fuse.conf and would open the files to others;
//   - a mount detached at once (umount -l) and reached through a descriptor would go with
//     vu's last descriptor, but the view's paths, getcwd and /proc/PID/cwd then name paths
//     relative to the detached mount that the path map cannot tell from the host's.
// So the next vu cleans up: the B probe (every pvm view with --fuse/--mount, `vu probe`)
// first unmounts this user's FUSE mounts on the directories of a vu that is gone
// (unmount_stale: PREFIX.PID.* of TempDir::make_owned, PID dead, its lock free), and the
// directories go with the sweep that follows. The mount of a killed view is dead (its
// program died with it: ENOTCONN), never a way into the image.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "fusefs/fusefs.h"
#include "pvm/fuse_mount.h"
#include "runtime/view_spec.h"

namespace vu {

struct PvmFuseEnv {
  bool b = false;          // environment B (else A)
  std::string why;         // the reasons, for --explain, vu probe and the refusal
  std::string fusermount;  // B: its path
  bool allow_other = false;  // /etc/fuse.conf: user_allow_other
};
PvmFuseEnv probe_pvm_fuse();
// Unmounts the FUSE mounts a vu killed together with its watchers left (above); how many.
int unmount_stale(const std::string& fusermount);

bool has_fuse_mounts(const ViewSpec& spec);

// The FUSE programs of a spec under pvm (environment B): --fuse and --mount, in order.
Result<std::vector<fusefs::FuseMount>> pvm_fuse_programs(const ViewSpec& spec);

// The view's FUSE state: the hook (shared with the monitor's Config), the programs' output.
class PvmFuse {
 public:
  PvmFuse(std::shared_ptr<pvm::FuseHook> hook, std::vector<fusefs::FuseMount> programs);
  ~PvmFuse();
  pvm::FuseHook& hook() { return *hook_; }
  const std::vector<fusefs::FuseMount>& programs() const { return programs_; }
  std::vector<int> outputs() const;  // one memfd per program: its stdout and stderr

  // Serves the ptrace stops (monitor) and waits until every program has mounted its
  // filesystem and answered the kernel's INIT ($VU_FUSE_INIT_TIMEOUT s, 10 by default; then the
  // programs are killed), one has failed or exited, the first process died, a signal came, or 30 s.
  Result<void> wait_mounted(pvm::Monitor& monitor, pid_t first, int signal_fd);
  // Told of every other child's exit while the view runs: a program that dies is named.
  void on_exit(pid_t pid, int status);
  // After the command: kill the view's other processes, unmount, wait for the programs.
  void teardown(pvm::Monitor* monitor, int signal_fd);

  static constexpr int kMountTimeoutMs = 30000;
  static constexpr int kTermGraceMs = 1000;  // then an idle program gets SIGTERM (teardown)
  static constexpr int kFlushNoticeMs = 2000;
  static constexpr int kFlushDeadlineMs = 60000;

 private:
  std::string output_of(size_t i) const;
  struct InitChecks;
  void start_init_checks();
  std::optional<Result<void>> init_outcome(long now, long deadline);
  std::shared_ptr<pvm::FuseHook> hook_;
  std::vector<fusefs::FuseMount> programs_;
  std::vector<UniqueFd> out_;
  bool torn_down_ = false;
  std::shared_ptr<InitChecks> init_;  // after every mount: has each program answered INIT?
  long init_deadline_ = 0;
};

}  // namespace vu
