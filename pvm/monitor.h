// pvm/monitor.h — the partial virtual machine: a seccomp filter in the view's processes and a
// monitor in the supervisor that answers the system calls the filter sends it.
//
// Why two capture mechanisms, and which call goes where (measured in bench/pvm.sh and
// build/bench/vu_micro_bench): a seccomp user notification (SECCOMP_RET_USER_NOTIF) costs one
// round trip to the monitor, which either lets the kernel run the call unchanged
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE, when the view's lookup equals the host's) or performs it
// itself and returns the result — a file descriptor through SECCOMP_IOCTL_NOTIF_ADDFD for open,
// a struct stat written into the caller's memory for stat. That is everything but the calls
// whose effect lives in the caller and cannot be done from outside: execve (the new image) and
// chdir (the caller's cwd), and open/openat with O_PATH (ADDFD cannot pass an O_PATH file; the
// filter tests the flags argument). Those are SECCOMP_RET_TRACE: the monitor is the ptrace
// tracer of every process in the view and, at the seccomp stop, points the path argument at the
// host path written below the caller's stack (execve of a #! script in a bound directory also
// gets its interpreter resolved in the view). Every other system call runs natively: the filter is a
// libseccomp program of syscall numbers, so read/write/mmap/getdents never leave the kernel.
// A view without mounts needs no path map at all: its filter traps only stat (owners), uname
// and the ids, and nothing is traced (needs_ptrace()), which saves the ptrace stops of every
// fork. The measured costs on the 2-core VM (bench/pvm.sh): native fstat 1.3 us; trapped and
// let through 14 us; trapped and answered 22 us (round trip ~60%, the monitor's work ~40%);
// answered in process by the fast path (pvm/accel.c) 1.5 us. In views with mounts the fast path
// also maps whole paths through the mount table itself (checked by openat2 RESOLVE_NO_SYMLINKS
// from its trampoline), so what still reaches the monitor is mostly ld.so's own calls at exec.
// Below a copy-on-write directory the lookups stay the monitor's (merged layers), except the
// ones it would let the kernel run: opens relative to a directory only the layer has, and
// futimens/fchmod of the layer's own files (pvm/accel.c, "Copy-on-write directories").
// $VU_PVM_STATS=1 prints what trapped (Monitor::report).
//
//   Config cfg{map, getuid(), getgid(), root, hostname};
//   Filter f = VU_TRY(Filter::build(cfg));      // parent, before the fork
//   …child: int fd = f.install();               // no_new_privs + listener (async-signal-safe)
//   …parent: Monitor::seize(pid); Monitor m(cfg, listener);   // starts the workers
//   loop: waitpid(-1, __WALL) → m.on_wait_status(pid, st)     // ptrace stops, on this thread
//         poll(m.fd()) → m.on_ptrace_done()                  // stops worked out elsewhere
//
// The never-block rule. No call of one process may wait on the thread that serves the others.
// Where each call runs:
//   - in the caller, natively: SECCOMP_USER_NOTIF_FLAG_CONTINUE when the view's lookup is
//     provably the host's (Resolved::moved false), and ptrace path rewrites (execve, chdir,
//     O_PATH opens) — blocking there is the caller's own, with its signals;
//   - on a worker thread: every notification. Workers block in NOTIF_RECV; when the last idle
//     one takes a call another starts (at most Monitor::kMaxWorkers), so a FIFO open waiting for
//     its peer, a connect to a full backlog, a send with no room, a slow FUSE or NFS lookup
//     holds up its caller only. A call that may wait for another process runs through
//     wait_like_caller(): interrupted every 20 ms to see whether the caller is gone (nothing to
//     answer) or has a signal to take (answered -ERESTARTSYS: the kernel then restarts it, or
//     returns EINTR, or acts on the signal, as for the native call);
//   - on a ptrace worker: the lookups of a ptrace stop (execve's path and #! interpreter, chdir,
//     an O_PATH open, whether a signalled open may restart), which may block like any lookup
//     (a FUSE server that is itself stopped, NFS); the worker hands back a plan (memory to write
//     below the tracee's stack, registers to set) through fd();
//   - on the supervise thread (the tracer: ptrace requests must come from it): the wait
//     statuses, GETREGS, and applying the plans (process_vm_writev, SETREGS, CONT) — never a
//     lookup, never a wait for another process.
// Every notification is answered exactly once: ADDFD with SEND (the descriptor is the result)
// or NOTIF_SEND; a failed ADDFD (EMFILE in the caller's table) is answered with its errno;
// ENOENT (the caller is gone) needs no answer. Signals: the filter is installed with
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux >= 5.19) so a received call is not interrupted
// after the monitor performed it; a signal that comes before a worker took the call withdraws
// it and the caller returns -ERESTARTSYS, which on_wait_status turns into -ERESTARTNOINTR for
// calls that never fail with EINTR natively (mkdir, getuid…; an open of a FIFO or a device
// keeps it). Older kernels: vu warns that handlers may see EINTR from such calls.
//
// Modules (View-OS's shape: a small capture core hands each call to a module; each module is
// a file of handlers Answer do_X(const Config&, Call&, …) with its own unit tests, which serve
// calls of the test process itself):
//   monitor.cc    capture core: the filter, workers, answers, ptrace stops (execve, chdir,
//                 O_PATH opens, signal restarts), dispatch by system call number, getdents64
//                 of directories holding missing mountpoints and of merged copy-on-write
//                 directories (its cursors are core state)
//   call.{h,cc}   one call: the caller's memory, /proc facts, path arguments resolved in the
//                 view, the caller's descriptors, wait_like_caller()
//   fs.{h,cc}     paths: open/stat/access/readlink/getcwd, names made and removed, attributes,
//                 xattrs, statfs, inotify, the mount table (/proc/PID/mountinfo, mounts)
//   cow.{h,cc}    copy-on-write directories (--cow, no FUSE): merged lookups in the path map,
//                 copy-up, whiteouts, opaque directories, merged listings, in overlayfs's
//                 layer format; fs.cc hands each call below one to it
//   net.{h,cc}    unix sockets: bind/connect/sendto/sendmsg to a path, getsockname/getpeername
//   inet.{h,cc}   the view's network (--net slirp/none, -p): host sockets, addresses translated
//                 on the calls that carry one, an rtnetlink emulation; the data path never traps
//   inet_echo.{h,cc}  ICMP echo (ping) of those networks: UDP stand-ins answered by the monitor
//   identity.{h,cc}  getgroups as in an unmapped user namespace, --root ids (stat owners: call.h)
//   uts.{h,cc}    uname, sethostname
//   fuse_mount.{h,cc}  FUSE filesystems of the view: mount(2) of type fuse from the view's FUSE
//                 programs, answered by a FuseMounter (environment B: the setuid fusermount3);
//                 the programs' calls are answered with their own Config (Config::fuse)
//   rootfs_exec.{h,cc}  --rootfs: a tree's programs run with the tree's own loader (execve via
//                 PT_INTERP resolved in the view, PRoot-style), /proc/PID/exe of such programs
//   fuse_client.{h,cc}, fuse_client_tree.cc  environment A: FUSE programs served by the monitor
//                 (no mount(2) anywhere): the protocol and the program; the shadow tree the
//                 view sees, write-back at sync points, the hooks of open/stat/statfs/sync
//                 (Config::fuse_trees). runtime/pvm_fuse.cc's probe picks A or B per view.
// Next (not here yet): a module table instead of dispatch()'s switch, the filter built from
// the modules' lists, and the ptrace half's path rewrites as an fs handler.
//
// What the view looks like (same as the ns backend): bound paths, read-only binds (EROFS for
// every way of writing, including fd-based fchmod/fchown/xattrs and /proc/self/fd reopens),
// tmpfs (a private host directory), copy-on-write directories (pvm/cow.h: every file opened there
// is the layer's own descriptor; a copy-up of a large file hands the receiving over first and
// never runs on the supervise thread, whose ptrace rewrites only read the merged view),
// uid/gid (own ids, or 0 under --root; other owners appear as
// 65534 in stat, getgroups as in an unmapped user namespace), hostname. Bypasses closed with
// ENOSYS: openat2, io_uring, clone3 (libc falls back to clone), the new mount API,
// name_to_handle_at/open_by_handle_at. mount/umount/chroot/pivot_root: EPERM (but a FUSE mount by
// the view's own FUSE programs, fuse_mount.h; openat2 is theirs too). no_new_privs is
// set, so setuid binaries run without privilege (as under umvu). Mountpoints that do not exist on
// the host lead their parent's listing (getdents64 is trapped only in views that have some);
// the mount table lists the view's mounts; unix socket addresses show view paths. With --rootfs
// the map's / is a tree: absolute lookups are always the monitor's or the fast path's (never the
// kernel's as they are), and execve runs the tree's programs with the tree's own loader
// (pvm/rootfs_exec.h, which lists what differs: /proc/PID/cmdline and AT_EXECFN, fexecve).
// Known gaps: a process of the view cannot ptrace (it is already traced) and shows stopped as
// "t" rather than "T"; x86_64 only (other system call ABIs are killed by the filter).
//
// The same view, not the same isolation (README "pvm: the same view, not the same isolation").
// ns's view is the kernel's; pvm's is the monitor's answers, so it holds for programs that use
// the system as documented, not against code written to get out:
//   - CONTINUE lets the kernel run the call with the caller's memory read again: another thread
//     of the caller may change a path or an address after the monitor checked it (TOCTOU; only
//     calls whose check is "the view's lookup is the host's" are continued, but the check is of
//     what the memory held then);
//   - the fast path's trampoline (pvm/accel.c, kNative in monitor.cc) lets its fourteen calls
//     through from a fixed address that any code in the process can jump to;
//   - the monitor and its helpers run as the view's user and stay dumpable (the tracer forks and
//     seizes its children before they exec): that user's other processes may ptrace or
//     process_vm_writev them (Yama ptrace_scope 0 or absent: any of them; 1: their ancestors).
// So network rules and --cow's untouched lower layer are not enforced against hostile code on
// pvm; on ns the kernel enforces them. What the monitor must never do, whatever the view or
// another user does: write outside the places it was given (every --cow change RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS, a lower object opened so that no write reaches it: pvm/cow.h), overflow
// or over-read on a length the view gave (gather_iov and the rtnetlink parser check before
// they add), or block its supervise thread (the never-block rule above).
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "pvm/inet.h"
#include "pvm/path_map.h"

struct seccomp_notif;
struct seccomp_notif_resp;
struct user_regs_struct;

namespace vu::pvm {

class FuseHook;  // pvm/fuse_mount.h
class FuseTree;  // pvm/fuse_client.h
class ExeTable;  // pvm/rootfs_exec.h

inline constexpr uid_t kOverflowId = 65534;  // what an unmapped owner looks like in a userns

struct Config {
  PathMap map;
  uid_t uid = 0;  // the caller's real ids
  gid_t gid = 0;
  bool root = false;                   // --root: the command sees uid/gid shown_uid/shown_gid (0)
  uid_t shown_uid = 0;                 // with root: what the caller's ids look like in the view
  gid_t shown_gid = 0;                 // (0, or an image's User: runtime/rootfs.h)
  std::optional<std::string> hostname; // --hostname
  // The in-process fast path (pvm/accel.c): the library preloaded into every execve, and the
  // (st_dev, st_ino) of each directory that holds a mountpoint. Empty path: no fast path.
  std::string accel_lib;
  // Names a directory listing must show although the host directory lacks them: mountpoints
  // on missing targets, keyed by the host directory's (st_dev, st_ino). Non-empty: getdents64
  // is trapped and these entries lead the listing (trapped too when the map has a cow).
  struct Entry {
    std::string name;
    unsigned char type;  // DT_DIR, DT_REG
    uint64_t ino;
  };
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, Entry>> listing;
  bool noop = false;  // measurement only ($VU_PVM_NOOP): every trapped call runs unchanged
  std::vector<std::pair<uint64_t, uint64_t>> accel_holders;
  // The (st_dev, st_ino) of every directory with a mountpoint anywhere below it in the view
  // (the holders among them): the fast path decides whole relative paths from other
  // directories itself, and absolute ones from the mount table (pvm/accel.c).
  std::vector<std::pair<uint64_t, uint64_t>> accel_ancestors;
  // FUSE filesystems the view mounts (pvm/fuse_mount.h): mount(2) of type fuse is trapped and
  // answered by the hook; calls of the FUSE programs are answered with its server Config.
  std::shared_ptr<FuseHook> fuse;
  NetConfig net;  // the view's network (pvm/inet.h); kHost: the host's, nothing trapped for it
  // FUSE mounts the monitor serves itself (pvm/fuse_client.h): their shadow trees, each also a
  // mount of the path map. Non-empty: sync, syncfs, fsync and fdatasync are trapped.
  std::vector<std::shared_ptr<FuseTree>> fuse_trees;
  // --rootfs (the map's / is a tree): execve runs dynamically linked programs with the tree's
  // own loader, and readlink of /proc/PID/exe names the program (pvm/rootfs_exec.h).
  bool rootfs = false;
  std::shared_ptr<ExeTable> exe;
};

// "VU_PVM_ACCEL=…": the fast path's configuration (pvm/accel.c), for the environment.
std::string accel_env(const Config& cfg);
// Whether the view needs the ptrace half (execve and chdir into the path map): with mounts.
bool needs_ptrace(const Config& cfg);

class Filter {
 public:
  static Result<Filter> build(const Config& cfg);
  // In the child, before execve: PR_SET_NO_NEW_PRIVS and the filter with a listener. Returns
  // the listener fd (close-on-exec), or -errno. Async-signal-safe.
  int install() const;
  size_t size() const { return prog_.size(); }

 private:
  std::vector<sock_filter> prog_;
  bool killable_ = false;  // install with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
};

struct Stats {
  uint64_t notifications = 0, continued = 0, performed = 0, traced = 0;
};

// $VU_PVM_STATS: vu prints Monitor::report() when the view ends — per system call, how often
// it was trapped, answered CONTINUE or by the monitor, and the monitor's own time on it (from
// NOTIF_RECV to the answer: the round trip is the rest, bench/pvm.sh measures it); per kind of
// ptrace stop, how many and the supervise thread's time on them.
bool stats_enabled();

// Whether this kernel has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux >= 5.19): once the
// monitor has received a call, only SIGKILL interrupts the caller's wait, so a signal never
// turns an emulated call into EINTR after the monitor performed it. Without it a signal handler
// can see EINTR from a call that cannot fail so natively (vu warns).
bool killable_wait_supported();

class Monitor {
 public:
  Monitor(Config cfg, UniqueFd listener);
  // Stops the workers (a signal interrupts their wait or blocking call); one stuck in an
  // uninterruptible call is left behind with the state it shares, not waited for.
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // PTRACE_SEIZE with the options that make every descendant a tracee (fork, vfork, clone),
  // the seccomp stops, and EXITKILL (the view dies with the supervisor).
  static Result<void> seize(pid_t pid);

  // The never-block rule. Notifications are received and answered on the monitor's own worker
  // threads, each blocked in SECCOMP_IOCTL_NOTIF_RECV; when the last idle worker takes a call,
  // another is started (up to kMaxWorkers), so a call that blocks (a FIFO open waiting for its
  // peer, a connect to a full backlog, a slow filesystem) holds up its caller only; the
  // supervise loop has nothing of the monitor's to poll.
  // ptrace stops are answered by the thread that seized the view (the supervise loop), which
  // only reads and writes registers and memory: the lookups they need run on ptrace workers
  // (detached threads started as needed, up to kMaxWorkers, waiting for jobs when idle).
  static constexpr int kMaxWorkers = 64;
  // Handles a wait status of a tracee. Returns true when it was a ptrace stop (answered and
  // resumed), false when the process has exited (the caller reaps and records it).
  bool on_wait_status(pid_t pid, int status);
  // Readable when ptrace stops worked out on the ptrace workers are ready to be resumed: the
  // tracer thread (the one that calls on_wait_status) then calls on_ptrace_done().
  int fd() const;
  void on_ptrace_done();
  Stats stats() const;
  std::string report() const;  // the $VU_PVM_STATS summary (lines starting "vu: pvm")

  struct Call;    // one intercepted call (monitor.cc)
  struct Answer;  // how it is answered (monitor.cc)
  struct Core;    // what the workers share: config, listener, listing cursors (monitor.cc)
  struct StopPlan;  // a ptrace stop's answer, worked out on a ptrace worker (monitor.cc)

 private:
  std::shared_ptr<Core> core_;
  const Config& cfg_;
  bool killable_ = false;  // the filter was installed with WAIT_KILLABLE_RECV
  // The tracer thread's own: tracees whose stop is being worked out, and the plan expected.
  std::map<pid_t, uint64_t> pending_;
  uint64_t gen_ = 0;
};

}  // namespace vu::pvm
