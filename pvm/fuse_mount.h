// pvm/fuse_mount.h — FUSE filesystems in a partial-VM view: the mount hook.
//
// Theory of operation. A FUSE program of the view (`--fuse`, `--mount image:`, vu-cowfs for
// `--cow`) runs inside the view, traced like any of its processes, so it dies with the view
// (PTRACE_O_EXITKILL). Both libfuse2 (fuse2fs) and libfuse3 (squashfuse, vu-cowfs) open
// /dev/fuse and call mount(2) with type "fuse[.SUBTYPE]" and data "fd=N,rootmode=…,user_id=…,
// group_id=…" before they try the setuid fusermount3 (which cannot work in the view: it has
// no_new_privs). The filter sends that mount(2) here (do_fuse_mount): the target must be one of
// the view's planned FUSE mountpoints (FuseTarget), whose host side is a private empty directory
// the path map binds at the target from the start. The hook asks a FuseMounter for a /dev/fuse
// connection mounted on that directory, puts it in place of the caller's descriptor N
// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD: dup2 semantics, the program's own
// /dev/fuse descriptor is closed) and answers 0. The program then serves the connection as if
// its own mount had worked. Any other mount(2) is EPERM, as before.
//
// Mounters (the strategy, chosen by runtime/pvm_fuse.cc from a probe):
//   - environment B (FusermountMounter, here): the kernel's FUSE through the setuid
//     fusermount3, run by vu outside the view (no no_new_privs) with _FUSE_COMMFD (libfuse's
//     protocol: the connection comes back over a socketpair with SCM_RIGHTS). Before it, a
//     watcher (/bin/sh in a session of its own) reads a socket only vu holds: a line (vu
//     unmounted, or nothing was mounted) and it exits; end of file alone (vu is gone) and it
//     runs `fusermount3 -u -z`, once more half a second later if nothing was mounted yet (vu
//     killed while fusermount3 was mounting): the mount goes when vu ends, also by SIGKILL.
//     (fusermount3's auto_unmount does not work for mounts without allow_other: its watcher
//     opens the mountpoint to check it and the kernel refuses the setuid process, EACCES.)
//   - environment A does not come here: the monitor's own FUSE client (pvm/fuse_client.h)
//     starts its programs itself, untraced.
// One mount(2) per target: begin_mount() checks and claims the target in one step.
//
// Servers. The FUSE programs must see the host's side of their own mountpoint (vu-cowfs reads
// the lower layer there; a lookup through its own mount would call itself) and their real ids
// (the kernel's default_permissions checks and the owners they report are host ids: under
// --root a server that believed itself uid 0 would report files the view's processes, uid 1000
// on the host, may not write). So their calls are answered with FuseHook::server (the view's
// Config without the FUSE mountpoints that exist on the host, without --root and without the
// fast path). A server registers itself before it executes the program (claim(): a getgroups
// call with a token only vu's launcher knows); its threads and children are servers too
// (found through /proc: Tgid, PPid; cached per thread until it exits).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "pvm/monitor.h"

namespace vu::pvm {

// A FUSE mountpoint the view may mount: where the view sees it, the private host directory.
struct FuseTarget {
  std::string view;
  std::string host;
  std::string what;  // for messages: "fuse2fs disk.img", "copy-on-write layer L (vu-cowfs)"
};

// What a trapped mount(2) of a FUSE filesystem asks for.
struct FuseMountRequest {
  const FuseTarget* target = nullptr;
  std::string source;         // fsname (mount's first argument)
  std::string subtype;        // "fuse.ext4" → "ext4"
  bool read_only = false;     // MS_RDONLY
  std::vector<std::string> options;  // kernel options worth keeping: default_permissions,
                                     // allow_other, max_read=N (never fd/rootmode/user_id/group_id)
};

// Makes a FUSE connection mounted on req.target->host and returns its /dev/fuse descriptor.
// Runs on a monitor worker (after it handed the receiving over); must be bounded in time.
class FuseMounter {
 public:
  virtual ~FuseMounter() = default;
  virtual Result<UniqueFd> mount(const FuseMountRequest& req) = 0;
  // Unmounts what mount() mounted (at the end of the view). Bounded; never throws.
  virtual void unmount_all() = 0;
  // One line for --explain and messages: how mounts are made.
  virtual std::string describe() const = 0;
};

// Environment B: the setuid fusermount3 (path), run outside the view.
class FusermountMounter : public FuseMounter {
 public:
  // allow_other: /etc/fuse.conf has user_allow_other (else the option is dropped: only the
  // view's own uid reaches the files, which is every process of a pvm view).
  FusermountMounter(std::string fusermount, bool allow_other)
      : fusermount_(std::move(fusermount)), allow_other_(allow_other) {}
  ~FusermountMounter() override;
  Result<UniqueFd> mount(const FuseMountRequest& req) override;
  void unmount_all() override;
  std::string describe() const override;
  static constexpr int kTimeoutMs = 10000;  // fusermount3 answers in milliseconds

 private:
  std::string fusermount_;
  bool allow_other_;
  std::mutex mu_;
  struct Mounted {
    std::string host;
    UniqueFd watcher;  // vu's end of the watcher's stdin: a line, it exits; the end alone, it unmounts
  };
  std::vector<Mounted> mounted_;
};

// Shared by the view's Config (Config::fuse) and the runtime that waits for the mounts.
class FuseHook {
 public:
  FuseHook(std::vector<FuseTarget> targets, std::shared_ptr<FuseMounter> mounter);
  const std::vector<FuseTarget>& targets() const { return targets_; }
  FuseMounter& mounter() { return *mounter_; }
  // The servers' configuration (set once, before the view starts).
  void set_server_config(Config cfg) { server_ = std::make_unique<Config>(std::move(cfg)); }
  const Config* server_config() const { return server_.get(); }

  // The launcher's registration call: getgroups(kClaimBase - index, token).
  static constexpr int kClaimBase = -0x7675;
  uint64_t token() const { return token_; }
  // Whether a getgroups call is a registration; registers the caller as server `index`.
  bool claim(pid_t tid, int size, uint64_t list);
  // Whether the thread is (a thread or descendant of) a server.
  bool is_server(pid_t tid);
  void forget(pid_t tid);  // it exited
  // Which server (index) a process is, if it registered itself; -1 otherwise.
  int server_index(pid_t pid);
  std::vector<pid_t> server_pids();  // every live process known to be a server

  // Progress, for the runtime's wait: each planned target mounted (or the first error).
  void mounted(size_t target, pid_t by);
  void failed(size_t target, const std::string& why);
  bool all_mounted();
  std::optional<std::string> failure();
  size_t target_of(const std::string& view) const;  // index, or targets().size()
  bool is_mounted(size_t target);
  // Claims a target for one mount(2) (false: mounted already, or being mounted by another
  // thread): the check and the claim are one step. failed() releases it, mounted() keeps it.
  bool begin_mount(size_t target);
  int event_fd() const { return event_.get(); }  // readable after each mounted()/failed()

 private:
  std::vector<FuseTarget> targets_;
  std::shared_ptr<FuseMounter> mounter_;
  std::unique_ptr<Config> server_;
  uint64_t token_ = 0;
  UniqueFd event_;
  std::mutex mu_;
  std::unordered_map<pid_t, bool> threads_;  // tid → server?
  std::unordered_map<pid_t, int> claimed_;   // pid → server index
  std::set<pid_t> server_tgids_;
  std::vector<bool> done_;
  std::vector<bool> busy_;  // a mount(2) is in progress (begin_mount)
  std::optional<std::string> failure_;
};

// The mount(2) hook (dispatch, SYS_mount, when Config::fuse is set).
Monitor::Answer do_fuse_mount(FuseHook& hook, const Config& cfg, Monitor::Call& c);

}  // namespace vu::pvm
