#include "pvm/monitor.h"

#include "pvm/call.h"
#include "pvm/cow.h"
#include "pvm/fs.h"
#include "pvm/host_at.h"
#include "pvm/fuse_mount.h"
#include "pvm/fuse_client.h"
#include "pvm/identity.h"
#include "pvm/net.h"
#include "pvm/uts.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <seccomp.h>
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "pvm/accel_abi.h"
#include "pvm/rootfs_exec.h"

#include "pvm/compat.h"

namespace vu::pvm {

// ---------------------------------------------------------------------------------------------
// The filter.

namespace {
// Calls the monitor answers (user notification).
// open and openat are listed apart: notified, except with O_PATH (kTracedOpen).
constexpr int kNotified[] = {
    SYS_creat, SYS_stat, SYS_lstat, SYS_fstat, SYS_newfstatat, SYS_statx,
    SYS_access, SYS_faccessat, SYS_faccessat2, SYS_readlink, SYS_readlinkat, SYS_getcwd,
    SYS_mkdir, SYS_mkdirat, SYS_mknod, SYS_mknodat, SYS_rmdir, SYS_unlink, SYS_unlinkat,
    SYS_rename, SYS_renameat, SYS_renameat2, SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat,
    SYS_chmod, SYS_fchmod, SYS_fchmodat, SYS_fchmodat2, SYS_chown, SYS_lchown, SYS_fchown,
    SYS_fchownat, SYS_truncate, SYS_utime, SYS_utimes, SYS_futimesat, SYS_utimensat,
    SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr, SYS_listxattr,
    SYS_llistxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr, SYS_statfs,
    SYS_connect, SYS_bind, SYS_getsockname, SYS_getpeername, SYS_uname, SYS_sethostname,
    SYS_getgroups, SYS_setgroups,
    SYS_inotify_add_watch,
};
// Identity calls, only under --root.
constexpr int kNotifiedRoot[] = {
    SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getresuid, SYS_getresgid,
    SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid,
    SYS_setfsuid, SYS_setfsgid,
};
// Without any mount the path map is the identity: only owners (stat), names (uname) and ids
// need the monitor, and nothing needs ptrace.
constexpr int kNotifiedNoMounts[] = {
    SYS_stat, SYS_lstat, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_uname, SYS_sethostname,
    SYS_getgroups, SYS_setgroups,
};
// Calls that change the caller itself: ptrace.
constexpr int kTraced[] = {SYS_execve, SYS_execveat, SYS_chdir};
// open/openat with O_PATH: SECCOMP_IOCTL_NOTIF_ADDFD cannot pass an O_PATH file (EBADF), so
// these are traced and their path argument rewritten; the caller then opens the host path.
// {syscall, index of the flags argument}.
constexpr std::pair<int, unsigned> kOpens[] = {{SYS_open, 1}, {SYS_openat, 2}};
// Ways around the path map: refused as if the kernel did not have them.
constexpr int kNoSys[] = {
    SYS_openat2, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register, SYS_clone3,
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_open_tree, SYS_move_mount,
    SYS_mount_setattr, SYS_name_to_handle_at, SYS_open_by_handle_at,
};
constexpr int kPerm[] = {SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot};

struct CtxGuard {
  scmp_filter_ctx ctx;
  ~CtxGuard() { seccomp_release(ctx); }
};
}  // namespace

Result<Filter> Filter::build(const Config& cfg) {
  CtxGuard g{seccomp_init(SCMP_ACT_ALLOW)};
  if (!g.ctx) return Error::make(ErrorKind::kSetup, "seccomp_init failed");
  // Every system call of the view runs the program: a binary tree of the ~90 numbers with
  // rules (libseccomp >= 2.5) instead of a chain. A libseccomp without it keeps the chain.
  (void)seccomp_attr_set(g.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  auto add = [&](uint32_t action, int nr) -> Result<void> {
    int rc = seccomp_rule_add(g.ctx, action, nr, 0);
    if (rc < 0) return Error::sys("seccomp_rule_add", -rc, "syscall " + std::to_string(nr));
    return Ok{};
  };
  const bool mounts = !cfg.map.empty();
  if (mounts) {
    for (int nr : kNotified) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, nr));
    for (int nr : kTraced) VU_TRY_VOID(add(SCMP_ACT_TRACE(0), nr));
    // Datagrams to a path: sendto with an address (send() passes none), and sendmsg.
    scmp_arg_cmp to = {4, SCMP_CMP_NE, 0, 0};
    if (int rc = seccomp_rule_add_array(g.ctx, SCMP_ACT_NOTIFY, SYS_sendto, 1, &to); rc < 0)
      return Error::sys("seccomp_rule_add", -rc, "sendto");
    VU_TRY_VOID(add(SCMP_ACT_NOTIFY, SYS_sendmsg));
    for (auto [nr, arg] : kOpens) {
      scmp_arg_cmp no_path = {arg, SCMP_CMP_MASKED_EQ, O_PATH, 0};
      scmp_arg_cmp path = {arg, SCMP_CMP_MASKED_EQ, O_PATH, O_PATH};
      if (int rc = seccomp_rule_add_array(g.ctx, SCMP_ACT_NOTIFY, nr, 1, &no_path); rc < 0)
        return Error::sys("seccomp_rule_add", -rc, "open without O_PATH");
      if (int rc = seccomp_rule_add_array(g.ctx, SCMP_ACT_TRACE(0), nr, 1, &path); rc < 0)
        return Error::sys("seccomp_rule_add", -rc, "open with O_PATH");
    }
  } else {
    // The fast path's library carries its environment across execve itself (accel.c).
    for (int nr : kNotifiedNoMounts) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, nr));
  }
  if (cfg.root)
    for (int nr : kNotifiedRoot) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, nr));
  if (cfg.net.kind != NetConfig::kHost) {
    // The view's network (pvm/inet.h): calls with an address, and rtnetlink sockets. Those
    // with mounts are listed above already.
    auto add_if = [&](int nr, unsigned arg, scmp_compare op, uint64_t v, const char* what) -> Result<void> {
      // EQ is on an int argument: its low 32 bits, as the kernel reads it (high bits set by the
      // caller would otherwise slip past the rule: socket(AF_NETLINK | 1 << 32, …)).
      scmp_arg_cmp cmp = op == SCMP_CMP_EQ ? scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, v} : scmp_arg_cmp{arg, op, v, 0};
      if (int rc = seccomp_rule_add_array(g.ctx, SCMP_ACT_NOTIFY, nr, 1, &cmp); rc < 0)
        return Error::sys("seccomp_rule_add", -rc, what);
      return Ok{};
    };
    if (!mounts) {
      for (int nr : {SYS_connect, SYS_bind, SYS_getsockname, SYS_getpeername, SYS_sendmsg})
        VU_TRY_VOID(add(SCMP_ACT_NOTIFY, nr));
      VU_TRY_VOID(add_if(SYS_sendto, 4, SCMP_CMP_NE, 0, "sendto"));
    }
    VU_TRY_VOID(add(SCMP_ACT_NOTIFY, SYS_recvmsg));
    VU_TRY_VOID(add_if(SYS_recvfrom, 4, SCMP_CMP_NE, 0, "recvfrom"));
    VU_TRY_VOID(add_if(SYS_socket, 0, SCMP_CMP_EQ, AF_NETLINK, "socket"));
    if (cfg.net.kind != NetConfig::kVde)  // ICMP echo sockets (pvm/inet_echo.h)
      for (int proto : {int{IPPROTO_ICMP}, int{IPPROTO_ICMPV6}}) VU_TRY_VOID(add_if(SYS_socket, 2, SCMP_CMP_EQ, proto, "socket"));
    VU_TRY_VOID(add_if(SYS_accept, 1, SCMP_CMP_NE, 0, "accept"));
    VU_TRY_VOID(add_if(SYS_accept4, 1, SCMP_CMP_NE, 0, "accept4"));
    if (cfg.net.kind == NetConfig::kVde)  // pvm/vstack.h
      if (int rc = add_vstack_rules(g.ctx); rc < 0) return Error::sys("seccomp_rule_add", -rc, "VDE sockets");
  }
  if (!cfg.listing.empty() || cfg.map.has_cow()) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, SYS_getdents64));
  if (!cfg.fuse_trees.empty())  // the view's changes go back to its FUSE programs (fuse_client.h)
    for (int nr : {SYS_sync, SYS_syncfs, SYS_fsync, SYS_fdatasync, SYS_ftruncate}) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, nr));
  // openat2 with FUSE programs in the view: they may (vu-cowfs resolves beneath its layers with
  // it); the monitor lets theirs run and refuses the others' (dispatch).
  for (int nr : kNoSys)
    VU_TRY_VOID(add(nr == SYS_openat2 && cfg.fuse ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(ENOSYS), nr));
  for (int nr : kPerm) VU_TRY_VOID(add(nr == SYS_mount && cfg.fuse ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EPERM), nr));
  // Export the BPF program through a memfd: the child installs it with a raw seccomp(2).
  UniqueFd mem(static_cast<int>(::syscall(SYS_memfd_create, "vu-pvm-filter", MFD_CLOEXEC)));
  if (!mem) return Error::sys("memfd_create", errno);
  if (int rc = seccomp_export_bpf(g.ctx, mem.get()); rc < 0) return Error::sys("seccomp_export_bpf", -rc);
  off_t len = ::lseek(mem.get(), 0, SEEK_END);
  if (len <= 0 || len % static_cast<off_t>(sizeof(sock_filter)))
    return Error::make(ErrorKind::kSetup, "seccomp_export_bpf: unexpected program size");
  Filter f;
  f.killable_ = killable_wait_supported();
  if (!f.killable_)
    VU_LOG_WARN("pvm: this kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux >= 5.19): a signal "
                "handler in the view may see EINTR from calls that never fail so natively");
  if (!cfg.accel_lib.empty()) {
    // Before libseccomp's program: the calls the fast path (pvm/accel.c) makes from its
    // trampoline run natively. Jumps are relative, so the rest is unchanged.
    constexpr uint64_t ip = VU_ACCEL_TRAMPOLINE_PAGE + VU_ACCEL_SYSCALL_END;
    constexpr uint32_t kArch = offsetof(seccomp_data, arch), kNr = offsetof(seccomp_data, nr),
                       kIp = offsetof(seccomp_data, instruction_pointer);
    // The system calls the fast path makes natively (pvm/accel.c).
    constexpr uint32_t kNative[] = {SYS_fstat,      SYS_statx,      SYS_newfstatat, SYS_openat,
                                    SYS_openat2,    SYS_readlinkat, SYS_faccessat2, SYS_unlinkat,
                                    SYS_mkdirat,    SYS_renameat2,  SYS_utimensat,  SYS_fchmodat,
                                    SYS_getdents64, SYS_fchmod};
    constexpr uint8_t n = std::size(kNative);
    f.prog_ = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 7 + n),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIp),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(ip), 0, 5 + n),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIp + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(ip >> 32), 0, 3 + n),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNr),
    };
    for (uint8_t i = 0; i < n; ++i)  // to the ALLOW below, or on to the next
      f.prog_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNative[i], static_cast<uint8_t>(n - i), 0));
    f.prog_.push_back(BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0));
    f.prog_.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  size_t head = f.prog_.size();
  f.prog_.resize(head + static_cast<size_t>(len) / sizeof(sock_filter));
  if (::pread(mem.get(), f.prog_.data() + head, static_cast<size_t>(len), 0) != len)
    return Error::sys("read", errno, "the exported seccomp program");
  if (f.prog_.size() > BPF_MAXINSNS) return Error::make(ErrorKind::kSetup, "the seccomp program is too long");
  return f;
}

bool killable_wait_supported() {
  // Unknown flags are EINVAL before the program is read (NULL: EFAULT).
  errno = 0;
  long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, nullptr);
  return rc < 0 && errno == EFAULT;
}

int Filter::install() const {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
  sock_fprog prog = {static_cast<unsigned short>(prog_.size()), const_cast<sock_filter*>(prog_.data())};
  unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
  if (killable_) flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

// ---------------------------------------------------------------------------------------------

namespace {
// %XX for what would end a field of VU_PVM_ACCEL (":,=%") and for bytes outside 0x21-0x7e.
std::string accel_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch <= 0x20 || ch >= 0x7f || ch == ':' || ch == ',' || ch == '=' || ch == '%') {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", ch);
      out += b;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}
}  // namespace

std::string accel_env(const Config& cfg) {
  // 1:UID:GID:ROOT:PATHS:HOLDERS[:ANCESTORS:MOUNTS] — PATHS "a": no mounts, every path is the
  // host's. MOUNTS: (R|W)VIEW=HOST,… and CVIEW=LOWER=LAYER for a copy-on-write directory (paths
  // escaped), the whole table or nothing. The fast path maps paths lexically (VIEW/rest is
  // HOST/rest) and lets relative lookups run natively: a mount whose lookups the monitor makes
  // otherwise (a FUSE client) must leave the table out altogether (return before MOUNTS), or the
  // fast path would bypass it. Below a C mount the fast path decides nothing by path, except a
  // walk from a directory only the layer has (pvm/accel.c, "Copy-on-write directories").
  std::string e = std::string(VU_ACCEL_ENV) + "=1:" + std::to_string(cfg.uid) + ":" + std::to_string(cfg.gid) +
                  ":" + (cfg.root ? "1." + std::to_string(cfg.shown_uid) + "." + std::to_string(cfg.shown_gid) : "0") + ":" +
                  (cfg.map.empty() ? "a" : "m") + ":";
  auto ids = [&](const std::vector<std::pair<uint64_t, uint64_t>>& v) {
    for (size_t i = 0; i < v.size() && i < VU_ACCEL_MAX_HOLDERS; ++i)
      e += (i ? "," : "") + std::to_string(v[i].first) + "." + std::to_string(v[i].second);
  };
  ids(cfg.accel_holders);
  if (cfg.map.empty() || cfg.map.mounts().size() > VU_ACCEL_MAX_MOUNTS ||
      cfg.accel_ancestors.size() > VU_ACCEL_MAX_HOLDERS)
    return e;
  e += ":";
  ids(cfg.accel_ancestors);
  e += ":";
  bool first = true;
  for (const Mount& m : cfg.map.mounts()) {
    e += (first ? "" : ",") + std::string(m.cow ? "C" : m.read_only ? "R" : "W") + accel_escape(m.view) + "=" +
         accel_escape(m.host);
    if (m.cow) e += "=" + accel_escape(m.cow->upper());
    first = false;
  }
  return e;
}

bool needs_ptrace(const Config& cfg) { return !cfg.map.empty(); }

// ---------------------------------------------------------------------------------------------
// The capture core: worker threads that receive notifications, hand each to dispatch() and
// answer it exactly once.
//
// One worker at a time is the receiver: it waits in poll() on the listener (which is what
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP makes cheap: the caller's CPU runs it), takes the call
// and handles it inline. When the call may wait (wait_like_caller) it first hands the
// receiving over to an idle worker (a new one if none is idle); a call that merely takes long
// (a slow FUSE or NFS lookup) is handed over by the watchdog after 10 ms. A worker that lost
// the receiving goes idle when its call ends.

namespace {
void on_wake(int) {}
constexpr int kIdleKept = 4;  // idle workers beyond this many exit
uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

bool stats_enabled() {
  const char* e = std::getenv("VU_PVM_STATS");
  return e && *e && std::strcmp(e, "0") != 0;
}

struct Monitor::StopPlan {
  pid_t pid = 0;
  uint64_t gen = 0;  // which stop of the tracee (Monitor::pending_)
  uint64_t t0 = 0;   // when it stopped ($VU_PVM_STATS)
  user_regs_struct regs{}, orig{};
  bool set_regs = false;
  int inject = 0;  // the signal to deliver on resuming
  std::vector<std::pair<uint64_t, std::string>> writes;  // below the tracee's stack
};

struct Monitor::Core {
  explicit Core(Config c, UniqueFd l) : cfg(std::move(c)), listener(std::move(l)) {}
  Config cfg;
  UniqueFd listener;
  size_t req_size = 0, resp_size = 0;

  struct Worker {
    pthread_t thread{};
    std::atomic<pid_t> busy{0};       // the caller whose call it is serving
    std::atomic<uint64_t> calls{0};   // calls taken, for the watchdog
    std::atomic<bool> done{false};
    std::condition_variable cv;       // an idle worker waits here to become the receiver
  };
  std::mutex mu;  // guards everything below, and cfg.hostname
  std::list<Worker> workers;
  Worker* receiver = nullptr;
  std::vector<Worker*> idle;
  bool stop = false;
  pthread_t watchdog{};
  bool has_watchdog = false;
  std::condition_variable watch_cv;
  std::atomic<bool> watch_sleeping{false};
  // A directory whose made-up entries (Config::listing) take more than one getdents64 buffer
  // is listed over several calls: where the last one stopped, per open file description (a
  // duplicate of the caller's descriptor, compared with kcmp). A handful at most.
  struct ListingCursor {
    UniqueFd file;
    pid_t tgid;  // with fd: the key where kcmp is not built into the kernel
    int fd;
    size_t next;  // the first made-up entry not listed yet
    std::vector<Config::Entry> names;  // the listing's entries, as they were at its start
    bool whole;   // names are the whole listing (a merged copy-on-write directory)
  };
  std::vector<ListingCursor> cursors;

  std::atomic<uint64_t> notifications{0}, continued{0}, performed{0}, traced{0};
  // $VU_PVM_STATS: per system call number (notifications), and the ptrace stops by kind (the
  // supervise thread's alone). Timed only when asked for.
  const bool timing = stats_enabled();
  static constexpr int kNrs = 512;
  struct PerCall {
    std::atomic<uint64_t> n{0}, cont{0}, ns{0};
  };
  PerCall per_call[kNrs];
  enum StopKind { kSeccompStop, kForkStop, kExecStop, kGroupStop, kSignalStop, kOtherStop, kExitWait, kStopKinds };
  uint64_t stops[kStopKinds] = {}, stop_ns[kStopKinds] = {};
  uint64_t traced_n[kNrs] = {}, traced_ns[kNrs] = {};
  std::weak_ptr<Core> weak_self;  // what a new worker holds on to

  // The ptrace workers (see post()): jobs, and the plans they hand back to the tracer thread.
  std::mutex jmu;
  std::condition_variable jcv;
  std::deque<std::function<void()>> jobs;
  int jidle = 0, jthreads = 0;
  bool jstop = false;
  std::vector<StopPlan> done;
  UniqueFd done_fd;  // eventfd: plans are waiting in `done`
  void post(std::function<void()> job);
  void run_jobs();
  void finish(StopPlan&& p);
  void plan_seccomp_stop(StopPlan& p);
  static bool inject_env(pid_t pid, uint64_t envp_addr, std::vector<uint64_t>* out);
  int restartable_now(const user_regs_struct& regs) const;
  bool restartable_open(pid_t pid, const user_regs_struct& regs);
  std::string accel_env;  // VU_PVM_ACCEL=…

  Answer dispatch(Call& c);
  Answer do_getdents(Call& c);
  void answer(const Call& c, Answer& a, seccomp_notif_resp* resp);
  Worker* spawn_locked();
  void handoff_locked(Worker* from);
  void serve(Worker* w);
  void watch();
};

namespace {
struct WorkerStart {
  std::shared_ptr<Monitor::Core> core;
  Monitor::Core::Worker* w;
  bool jobs = false;  // a ptrace worker (Core::run_jobs)
};
void* worker_main(void* arg) {
  std::unique_ptr<WorkerStart> start(static_cast<WorkerStart*>(arg));
  if (start->jobs) start->core->run_jobs();
  else if (start->w) start->core->serve(start->w);
  else start->core->watch();
  return nullptr;
}
bool start_thread(pthread_t* t, WorkerStart* start) {
  // Every signal blocked from the start (serve() then lets the wake-up in).
  const int rc = start_masked_thread(t, worker_main, start, 1024 * 1024);
  if (rc != 0) delete start;
  return rc == 0;
}
void set_worker_mask() {
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, wake_signal());
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
}
}  // namespace

Monitor::Core::Worker* Monitor::Core::spawn_locked() {
  // Workers that exited (idle beyond kIdleKept) set `done` under the lock on their way out.
  for (auto it = workers.begin(); it != workers.end();) {
    if (it->done) {
      ::pthread_join(it->thread, nullptr);
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
  if (workers.size() >= static_cast<size_t>(kMaxWorkers)) return nullptr;
  Worker& w = workers.emplace_back();
  if (!start_thread(&w.thread, new WorkerStart{weak_self.lock(), &w})) {
    workers.pop_back();
    return nullptr;
  }
  return &w;
}

// `from` (the receiver) is about to wait, or has been busy too long: another worker receives.
void Monitor::Core::handoff_locked(Worker* from) {
  if (receiver != from || stop) return;
  Worker* next = nullptr;
  if (!idle.empty()) {
    next = idle.back();
    idle.pop_back();
  } else {
    next = spawn_locked();
  }
  if (!next) return;  // kMaxWorkers busy: the next call waits for one of them
  receiver = next;
  next->cv.notify_one();
}

void Monitor::Core::serve(Worker* w) {
  set_worker_mask();
  std::vector<uint64_t> req_buf((req_size + 7) / 8), resp_buf((resp_size + 7) / 8);
  auto* req = reinterpret_cast<seccomp_notif*>(req_buf.data());
  auto* resp = reinterpret_cast<seccomp_notif_resp*>(resp_buf.data());
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      while (receiver != w && !stop) {
        if (std::find(idle.begin(), idle.end(), w) == idle.end()) {
          if (static_cast<int>(idle.size()) >= kIdleKept) break;
          idle.push_back(w);
        }
        w->cv.wait(lock);
      }
      if (stop || receiver != w) {
        std::erase(idle, w);
        w->done = true;
        return;
      }
    }
    pollfd pfd = {listener.get(), POLLIN, 0};
    int n = ::poll(&pfd, 1, -1);
    if (n < 0) continue;  // EINTR: a wake-up (the end, or a late one)
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
      // No process of the view is left to send a call: wait for the end.
      std::unique_lock<std::mutex> lock(mu);
      while (!stop) w->cv.wait(lock);
      continue;
    }
    std::memset(req, 0, req_size);
    if (::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_RECV, req) < 0) continue;  // ENOENT: caller gone
    ++notifications;
    ++w->calls;
    if (watch_sleeping.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(mu);
      watch_cv.notify_one();
    }
    Call c{req->id, static_cast<pid_t>(req->pid), req->data.nr, {}};
    for (int i = 0; i < 6; ++i) c.a[i] = req->data.args[i];
    c.listener = listener.get();
    c.before_wait = [this, w] {
      std::lock_guard<std::mutex> lock(mu);
      handoff_locked(w);
    };
    w->busy = c.tid;
    const uint64_t t0 = timing ? now_ns() : 0;
    Answer a = cfg.noop ? Answer::cont() : dispatch(c);
    const bool cont = a.kind == Answer::kContinue;
    answer(c, a, resp);
    w->busy = 0;
    if (c.nr >= 0 && c.nr < kNrs) {
      PerCall& pc = per_call[c.nr];
      pc.n.fetch_add(1, std::memory_order_relaxed);
      if (cont) pc.cont.fetch_add(1, std::memory_order_relaxed);
      if (timing) pc.ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
    }
  }
}

// Every 10 ms while calls come: a receiver still busy with the call it had 10 ms ago hands
// over. After a second without calls it sleeps until the next one.
void Monitor::Core::watch() {
  set_worker_mask();
  Worker* last = nullptr;
  uint64_t last_calls = 0, last_total = 0;
  int quiet = 0;
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    if (quiet >= 100) {
      watch_sleeping = true;
      while (!stop && notifications.load() == last_total) watch_cv.wait_for(lock, std::chrono::seconds(10));
      watch_sleeping = false;
      quiet = 0;
    } else {
      watch_cv.wait_for(lock, std::chrono::milliseconds(10));
    }
    if (stop) break;
    uint64_t total = notifications.load();
    quiet = total == last_total ? quiet + 1 : 0;
    last_total = total;
    Worker* r = receiver;
    if (r && r == last && r->busy && r->calls == last_calls) handoff_locked(r);
    last = r;
    last_calls = r ? r->calls.load() : 0;
  }
}

// Every notification is answered once: by ADDFD with SEND (the descriptor is the call's result),
// else by NOTIF_SEND — also when ADDFD fails (EMFILE: the caller's table is full). ENOENT means
// the caller is no longer waiting (killed, or its call was withdrawn): nothing to answer.
void Monitor::Core::answer(const Call& c, Answer& a, seccomp_notif_resp* resp) {
  if (a.kind == Answer::kFd) {
    ++performed;
    seccomp_notif_addfd add{};
    add.id = c.id;
    add.flags = SECCOMP_ADDFD_FLAG_SEND;
    add.srcfd = static_cast<uint32_t>(a.fd.get());
    add.newfd_flags = a.cloexec ? O_CLOEXEC : 0;
    int rc;
    while ((rc = ::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_ADDFD, &add)) < 0 && errno == EINTR) {
    }
    if (rc >= 0 || errno == ENOENT) return;
    a = Answer::error(errno);
  } else if (a.kind == Answer::kContinue) {
    ++continued;
  } else {
    ++performed;
  }
  std::memset(resp, 0, resp_size);
  resp->id = c.id;
  if (a.kind == Answer::kContinue) {
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  } else {
    resp->val = a.val;
    resp->error = -a.err;
  }
  if (::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT)
    VU_LOG_WARN("pvm: SECCOMP_IOCTL_NOTIF_SEND (syscall " << c.nr << "): " << std::strerror(errno));
}

Monitor::Monitor(Config cfg, UniqueFd listener)
    : core_(std::make_shared<Core>(std::move(cfg), std::move(listener))), cfg_(core_->cfg) {
  core_->weak_self = core_;
  seccomp_notif_sizes sizes{};
  if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) {
    sizes.seccomp_notif = sizeof(seccomp_notif);
    sizes.seccomp_notif_resp = sizeof(seccomp_notif_resp);
  }
  core_->req_size = std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif));
  core_->resp_size = std::max<size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp));
  // Linux >= 6.6: wake the monitor and the caller synchronously (the caller's CPU runs the
  // monitor), which is what makes a round trip cheap; older kernels ignore it (EINVAL).
  (void)::ioctl(core_->listener.get(), SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
  if (!cfg_.accel_lib.empty()) core_->accel_env = accel_env(cfg_);
  core_->done_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  killable_ = killable_wait_supported();
  ::umask(0);  // modes of files made for the view carry the caller's umask (umask_of)
  struct sigaction sa {};
  sa.sa_handler = on_wake;
  sigemptyset(&sa.sa_mask);
  ::sigaction(wake_signal(), &sa, nullptr);
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->receiver = core_->spawn_locked();
  core_->has_watchdog = start_thread(&core_->watchdog, new WorkerStart{core_, nullptr});
}

Monitor::~Monitor() {
  std::vector<Core::Worker*> ws;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->stop = true;
    for (Core::Worker& w : core_->workers) {
      ws.push_back(&w);
      w.cv.notify_all();
    }
    core_->watch_cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(core_->jmu);  // ptrace workers: detached, they end by themselves
    core_->jstop = true;
    core_->jcv.notify_all();
  }
  if (core_->has_watchdog) ::pthread_join(core_->watchdog, nullptr);
  // A worker in poll() or a blocking call is interrupted (again, if the signal came just
  // before it entered the call); one stuck for 2 s (a dead NFS server) is left detached, with
  // the state it shares.
  for (Core::Worker* w : ws) {
    for (int i = 0; i < 2000 && !w->done; ++i) {
      ::pthread_kill(w->thread, wake_signal());
      ::usleep(i < 10 ? 100 : 1000);
    }
    if (w->done) ::pthread_join(w->thread, nullptr);
    else ::pthread_detach(w->thread);
  }
}

Result<void> Monitor::seize(pid_t pid) {
  long opts = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
              PTRACE_O_EXITKILL;
  if (::ptrace(PTRACE_SEIZE, pid, 0, opts) < 0) return Error::sys("ptrace(PTRACE_SEIZE)", errno);
  return Ok{};
}

Stats Monitor::stats() const {
  return {core_->notifications, core_->continued, core_->performed, core_->traced};
}

std::string Monitor::report() const {
  const Core& k = *core_;
  char line[256];
  std::string out;
  uint64_t total_ns = 0;
  for (const Core::PerCall& pc : k.per_call) total_ns += pc.ns.load();
  std::snprintf(line, sizeof line,
                "vu: pvm: %llu notifications (%llu continued, %llu answered by the monitor), monitor work %.3f s; "
                "%llu ptrace stops\n",
                static_cast<unsigned long long>(k.notifications.load()),
                static_cast<unsigned long long>(k.continued.load()),
                static_cast<unsigned long long>(k.performed.load()), static_cast<double>(total_ns) / 1e9,
                static_cast<unsigned long long>(k.traced.load()));
  out += line;
  // The busiest calls first.
  std::vector<int> nrs;
  for (int nr = 0; nr < Core::kNrs; ++nr)
    if (k.per_call[nr].n.load()) nrs.push_back(nr);
  std::sort(nrs.begin(), nrs.end(), [&](int a, int b) { return k.per_call[a].n.load() > k.per_call[b].n.load(); });
  for (int nr : nrs) {
    const Core::PerCall& pc = k.per_call[nr];
    const char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
    std::snprintf(line, sizeof line, "vu: pvm:   notified %-16s %9llu  continued %9llu  work %8.3f s  %6.1f us/call\n",
                  name ? name : "?", static_cast<unsigned long long>(pc.n.load()),
                  static_cast<unsigned long long>(pc.cont.load()), static_cast<double>(pc.ns.load()) / 1e9,
                  static_cast<double>(pc.ns.load()) / 1e3 / static_cast<double>(pc.n.load()));
    if (name) ::free(const_cast<char*>(name));
    out += line;
  }
  for (int nr = 0; nr < Core::kNrs; ++nr) {
    if (!k.traced_n[nr]) continue;
    const char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
    std::snprintf(line, sizeof line, "vu: pvm:   traced   %-16s %9llu  work %8.3f s  %6.1f us/stop\n", name ? name : "?",
                  static_cast<unsigned long long>(k.traced_n[nr]), static_cast<double>(k.traced_ns[nr]) / 1e9,
                  static_cast<double>(k.traced_ns[nr]) / 1e3 / static_cast<double>(k.traced_n[nr]));
    if (name) ::free(const_cast<char*>(name));
    out += line;
  }
  static const char* const kKinds[] = {"seccomp stops", "fork/clone events", "exec events", "group stops",
                                       "signal stops", "other stops", "exits"};
  for (int i = 0; i < Core::kStopKinds; ++i) {
    if (!k.stops[i]) continue;
    std::snprintf(line, sizeof line, "vu: pvm:   ptrace   %-16s %9llu  work %8.3f s\n", kKinds[i],
                  static_cast<unsigned long long>(k.stops[i]), static_cast<double>(k.stop_ns[i]) / 1e9);
    out += line;
  }
  return out;
}

namespace {
// The system call's handler; `cfg` is the view's, or the FUSE programs' (pvm/fuse_mount.h).
Monitor::Answer dispatch_in(Monitor::Core& core, const Config& cfg, Call& c) {
  if (cfg.net.kind != NetConfig::kHost) {
    Answer a;
    if (cfg.net.kind == NetConfig::kVde && do_vstack(cfg, c, &a)) return a;
    if (do_inet(cfg, c, &a)) return a;
  }
  switch (c.nr) {
    case SYS_open: return do_open(cfg, c, AT_FDCWD, c.a[0], c.arg_int(1), static_cast<mode_t>(c.a[2]));
    case SYS_creat: return do_open(cfg, c, AT_FDCWD, c.a[0], O_CREAT | O_WRONLY | O_TRUNC, static_cast<mode_t>(c.a[1]));
    case SYS_openat: return do_open(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), static_cast<mode_t>(c.a[3]));
    case SYS_stat: return do_stat(cfg, c, AT_FDCWD, c.a[0], c.a[1], 0);
    case SYS_lstat: return do_stat(cfg, c, AT_FDCWD, c.a[0], c.a[1], AT_SYMLINK_NOFOLLOW);
    case SYS_fstat: return do_fstat(cfg, c, c.arg_int(0), c.a[1]);
    case SYS_newfstatat: return do_stat(cfg, c, c.arg_int(0), c.a[1], c.a[2], c.arg_int(3));
    case SYS_statx: return do_statx(cfg, c);
    case SYS_access: return do_access(cfg, c, AT_FDCWD, c.a[0], c.arg_int(1), 0);
    case SYS_faccessat: return do_access(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), 0);
    case SYS_faccessat2: return do_access(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), c.arg_int(3));
    case SYS_readlink: return do_readlink(cfg, c, AT_FDCWD, c.a[0], c.a[1], c.a[2]);
    case SYS_readlinkat: return do_readlink(cfg, c, c.arg_int(0), c.a[1], c.a[2], c.a[3]);
    case SYS_getcwd: return do_getcwd(cfg, c);
    case SYS_mkdir: return do_mkdir(cfg, c, AT_FDCWD, c.a[0], static_cast<mode_t>(c.a[1]));
    case SYS_mkdirat: return do_mkdir(cfg, c, c.arg_int(0), c.a[1], static_cast<mode_t>(c.a[2]));
    case SYS_mknod: return do_mknod(cfg, c, AT_FDCWD, c.a[0], static_cast<mode_t>(c.a[1]), c.a[2]);
    case SYS_mknodat: return do_mknod(cfg, c, c.arg_int(0), c.a[1], static_cast<mode_t>(c.a[2]), c.a[3]);
    case SYS_symlink: return do_symlink(cfg, c, c.a[0], AT_FDCWD, c.a[1]);
    case SYS_symlinkat: return do_symlink(cfg, c, c.a[0], c.arg_int(1), c.a[2]);
    case SYS_rmdir: return do_remove(cfg, c, AT_FDCWD, c.a[0], true);
    case SYS_unlink: return do_remove(cfg, c, AT_FDCWD, c.a[0], false);
    case SYS_unlinkat: return do_remove(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2) & AT_REMOVEDIR);
    case SYS_rename: return do_rename(cfg, c, AT_FDCWD, c.a[0], AT_FDCWD, c.a[1], 0);
    case SYS_renameat: return do_rename(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), c.a[3], 0);
    case SYS_renameat2:
      return do_rename(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), c.a[3], static_cast<unsigned>(c.a[4]));
    case SYS_link: return do_link(cfg, c, AT_FDCWD, c.a[0], AT_FDCWD, c.a[1], 0);
    case SYS_linkat: return do_link(cfg, c, c.arg_int(0), c.a[1], c.arg_int(2), c.a[3], c.arg_int(4));
    case SYS_chmod: return do_chmod(cfg, c, AT_FDCWD, c.a[0], static_cast<mode_t>(c.a[1]), 0);
    case SYS_fchmodat: return do_chmod(cfg, c, c.arg_int(0), c.a[1], static_cast<mode_t>(c.a[2]), 0);
    case SYS_fchmodat2: return do_chmod(cfg, c, c.arg_int(0), c.a[1], static_cast<mode_t>(c.a[2]), c.arg_int(3));
    case SYS_fchmod:
    case SYS_fsetxattr:
    case SYS_fremovexattr:
      return do_fd_change(cfg, c);
    case SYS_chown: return do_chown(cfg, c, AT_FDCWD, c.a[0], c.a[1], c.a[2], 0);
    case SYS_lchown: return do_chown(cfg, c, AT_FDCWD, c.a[0], c.a[1], c.a[2], AT_SYMLINK_NOFOLLOW);
    case SYS_fchownat: return do_chown(cfg, c, c.arg_int(0), c.a[1], c.a[2], c.a[3], c.arg_int(4));
    case SYS_fchown: return do_fchown(cfg, c);
    case SYS_truncate: return do_truncate(cfg, c);
    case SYS_utime:
    case SYS_utimes:
    case SYS_futimesat:
    case SYS_utimensat:
      return do_utimes(cfg, c);
    case SYS_setxattr:
    case SYS_lsetxattr:
    case SYS_getxattr:
    case SYS_lgetxattr:
    case SYS_listxattr:
    case SYS_llistxattr:
    case SYS_removexattr:
    case SYS_lremovexattr:
      return do_xattr(cfg, c);
    case SYS_statfs: return do_statfs(cfg, c);
    case SYS_connect:
    case SYS_bind:
      return do_sockaddr(cfg, c);
    case SYS_getsockname:
    case SYS_getpeername:
      return do_sockname(cfg, c);
    case SYS_sendto:
    case SYS_sendmsg:
      return do_send(cfg, c);
    case SYS_uname: {
      std::lock_guard<std::mutex> lock(core.mu);
      return do_uname(cfg, c);
    }
    case SYS_sethostname: {
      std::lock_guard<std::mutex> lock(core.mu);
      return do_sethostname(core.cfg, c);  // the view's name, whoever sets it
    }
    case SYS_getgroups:
      if (core.cfg.fuse && core.cfg.fuse->claim(c.tid, c.arg_int(0), c.a[1])) return Answer::value(0);
      return do_getgroups(cfg, c);
    case SYS_openat2: return &cfg != &core.cfg ? Answer::cont() : Answer::error(ENOSYS);  // the FUSE programs'
    case SYS_mount: return core.cfg.fuse ? do_fuse_mount(*core.cfg.fuse, cfg, c) : Answer::error(EPERM);
    case SYS_setgroups: return Answer::error(EPERM);  // as in a user namespace with setgroups denied
    case SYS_inotify_add_watch: return do_inotify_add_watch(cfg, c);
    case SYS_getdents64: return core.do_getdents(c);
    case SYS_sync:
    case SYS_syncfs:
    case SYS_fsync:
    case SYS_fdatasync:
      return do_fuse_sync(cfg, c);
    case SYS_ftruncate: return do_fuse_ftruncate(cfg, c);  // trapped with FUSE trees only
    default:
      if (cfg.root) return do_root_ids(cfg, c);
      return Answer::cont();
  }
}
}  // namespace

Monitor::Answer Monitor::Core::dispatch(Call& c) {
  if (!cfg.fuse) return dispatch_in(*this, cfg, c);
  // The FUSE programs of the view see the host side of their mountpoints and their real ids.
  if (cfg.fuse->is_server(c.tid)) return dispatch_in(*this, *cfg.fuse->server_config(), c);
  // A call of the view that the monitor performs may land in one of the view's FUSE
  // filesystems, whose program's own calls then need a worker: another one receives from now
  // on (else they would wait for the watchdog's hand-over, 10 ms each).
  if (c.before_wait) c.before_wait();
  return dispatch_in(*this, cfg, c);
}

// ---------------------------------------------------------------------------------------------
// ptrace: execve and chdir.

namespace {

// Places strings and pointer arrays below the tracee's stack (past the red zone) and hands out
// their addresses; the tracer thread writes them when it applies the plan (the tracee is
// stopped, so nothing else uses that memory).
class StackWriter {
 public:
  StackWriter(Monitor::StopPlan& p, uint64_t sp) : p_(p), top_(sp - 128) {}
  uint64_t put(const void* data, size_t len) {
    top_ = (top_ - len) & ~uint64_t{15};
    p_.writes.emplace_back(top_, std::string(static_cast<const char*>(data), len));
    return top_;
  }
  uint64_t put(const std::string& s) { return put(s.c_str(), s.size() + 1); }
  bool ok() const { return true; }  // a failed write is found when the plan is applied

 private:
  Monitor::StopPlan& p_;
  uint64_t top_;
};

// "#!INTERP [ARG]" of a script, as the kernel parses it (binfmt_script).
bool read_shebang(const std::string& host, std::string* interp, std::string* arg) {
  int fd = ::open(host.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n < 3 || buf[0] != '#' || buf[1] != '!') return false;
  buf[n] = 0;
  std::string line(buf + 2, strcspn(buf + 2, "\n"));
  size_t b = line.find_first_not_of(" \t");
  if (b == std::string::npos) return false;
  size_t e = line.find_first_of(" \t", b);
  *interp = line.substr(b, e == std::string::npos ? std::string::npos : e - b);
  arg->clear();
  if (e != std::string::npos) {
    size_t ab = line.find_first_not_of(" \t", e);
    if (ab != std::string::npos) {
      size_t ae = line.find_last_not_of(" \t");
      *arg = line.substr(ab, ae - ab + 1);
    }
  }
  return true;
}

}  // namespace

// A seccomp stop (execve, chdir, an O_PATH open), worked out on a ptrace worker: what to write
// below the tracee's stack and which registers to set. Reads the tracee's memory and looks paths
// up (which may block: a FUSE or NFS lookup, a script's first line), never ptraces.
void Monitor::Core::plan_seccomp_stop(StopPlan& p) {
  const pid_t pid = p.pid;
  // A FUSE program of the view: its own Config (pvm/fuse_mount.h).
  const Config& scfg = cfg.fuse && cfg.fuse->is_server(pid) ? *cfg.fuse->server_config() : cfg;
  user_regs_struct& regs = p.regs;
  Call c{0, pid, static_cast<int>(regs.orig_rax), {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9}};
  auto fail = [&](int err) {
    p.writes.clear();
    regs = p.orig;
    regs.orig_rax = static_cast<uint64_t>(-1);  // skip the call; rax is its result
    regs.rax = static_cast<uint64_t>(-static_cast<int64_t>(err));
    p.set_regs = true;
  };
  auto setregs = [&] { p.set_regs = true; };
  if (c.nr == SYS_chdir) {
    Resolved r = resolve_arg(scfg, c, AT_FDCWD, c.a[0], true);
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
    if (!r.moved) return;
    StackWriter w(p, regs.rsp);
    regs.rdi = w.put(r.host.size() < 4096 ? r.host : host_for_caller(r.host, read_link(proc_path(pid, "cwd"))));
    if (!w.ok()) return fail(EFAULT);
    setregs();
    return;
  }
  if (c.nr == SYS_open || c.nr == SYS_openat) {  // with O_PATH (the filter sends no other)
    const bool at = c.nr == SYS_openat;
    const int dirfd = at ? c.arg_int(0) : AT_FDCWD, flags = c.arg_int(at ? 2 : 1);
    const uint64_t path_addr = c.a[at ? 1 : 0];
    Resolved r = resolve_arg(scfg, c, dirfd, path_addr, !(flags & O_NOFOLLOW));
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
    if (!r.moved) return;  // the kernel's lookup is the view's
    StackWriter w(p, regs.rsp);
    if (r.host.size() >= 4096 && at) regs.rdi = static_cast<uint64_t>(AT_FDCWD);  // relative to the cwd, then
    (at ? regs.rsi : regs.rdi) = w.put(r.host.size() < 4096 ? r.host : host_for_caller(r.host, read_link(proc_path(pid, "cwd"))));
    if (!w.ok()) return fail(EFAULT);
    setregs();
    return;
  }
  if (c.nr != SYS_execve && c.nr != SYS_execveat) return;
  const bool at = c.nr == SYS_execveat;
  const int dirfd = at ? c.arg_int(0) : AT_FDCWD;
  const uint64_t path_addr = at ? c.a[1] : c.a[0];
  const uint64_t argv_addr = at ? c.a[2] : c.a[1];
  const uint64_t envp_addr = at ? c.a[3] : c.a[2];
  const int flags = at ? c.arg_int(4) : 0;
  std::string raw;
  if (at && names_dirfd(pid, path_addr, flags)) return;
  Resolved r;
  if (scfg.map.empty()) {
    // No mounts: the kernel's lookup is the view's; the stop is only for the environment, and
    // an execve that will fail (a PATH search trying directories) is left to fail untouched.
    if (read_string(pid, path_addr, &raw) != 0) return;
    if (!raw.empty() && raw[0] == '/' && ::access(raw.c_str(), F_OK) < 0) return;
    r.exists = true;
  } else {
    r = resolve_arg(scfg, c, dirfd, path_addr, !(flags & AT_SYMLINK_NOFOLLOW), &raw);
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
  }
  std::string interp, iarg;
  Resolved ir;
  bool script = !scfg.map.empty() && S_ISREG(r.st.st_mode) && read_shebang(r.host, &interp, &iarg);
  if (script) {
    // The kernel would look the interpreter up on the host; the view's may be elsewhere.
    Start s;
    if (interp[0] != '/' && start_of(scfg, c, AT_FDCWD, &s)) return fail(ENOENT);
    ir = scfg.map.resolve(s, interp, true, {});
    if (!r.moved && (ir.err || !ir.exists || !ir.moved)) script = false;  // the host's lookup is right
    else if (ir.err) return fail(ir.err);
    else if (!ir.exists) return fail(ENOENT);
  }
  // --rootfs: a dynamically linked program (or script interpreter) runs with the tree's own
  // loader, which the kernel would look up on the host (pvm/rootfs_exec.h).
  std::string pt_interp;
  Resolved lr;
  const Resolved& bin = script ? ir : r;
  if (scfg.rootfs && S_ISREG(bin.st.st_mode)) {  // (anything else: the kernel's EACCES)
    int e = elf_interp(bin.host, &pt_interp);
    if (e && e != ENOEXEC) return fail(e);
    if (!e && !pt_interp.empty()) {
      if (::access(bin.host.c_str(), X_OK) < 0 || (script && ::access(r.host.c_str(), X_OK) < 0)) return fail(EACCES);
      Start s;
      if (pt_interp[0] != '/' && start_of(scfg, c, AT_FDCWD, &s)) return fail(ENOENT);
      lr = scfg.map.resolve(s, pt_interp, true, {});
      if (lr.err) return fail(lr.err);
      if (!lr.exists) return fail(ENOENT);
    } else {
      pt_interp.clear();
    }
  }
  const bool via_loader = !pt_interp.empty();
  if (scfg.exe) scfg.exe->planned(pid, via_loader ? bin.view : std::string(), lr.host);
  std::vector<uint64_t> envp;
  const bool accel = !scfg.accel_lib.empty() && inject_env(pid, envp_addr, &envp);
  if (!r.moved && !script && !accel && !via_loader) return;
  StackWriter w(p, regs.rsp);
  // The caller's argv[1…] after ARGV's new head, written with it: argv for the rewritten call.
  auto put_argv = [&](std::vector<uint64_t>& argv) {
    for (uint64_t i = 1;; ++i) {
      uint64_t ptr = 0;
      if (!argv_addr || !read_mem(pid, argv_addr + 8 * i, &ptr, 8) || !ptr) break;
      argv.push_back(ptr);
      if (argv.size() > 1u << 20) return false;
    }
    argv.push_back(0);
    regs.rsi = w.put(argv.data(), argv.size() * 8);
    return true;
  };
  if (via_loader) {
    // LOADER [--argv0 ARGV0] PROGRAM [ARG] [SCRIPT] argv[1…], PROGRAM a view path the loader
    // opens through the path map; ARGV0 the caller's argv[0] (a script's: its interpreter).
    std::vector<uint64_t> argv;
    argv.push_back(w.put(pt_interp));
    if (loader_knows_argv0(lr.host)) {
      argv.push_back(w.put("--argv0"));
      uint64_t a0 = 0;
      if (script) a0 = w.put(interp);
      else if (!argv_addr || !read_mem(pid, argv_addr, &a0, 8) || !a0) a0 = w.put(raw);
      argv.push_back(a0);
    }
    argv.push_back(w.put(bin.view));
    if (script) {
      if (!iarg.empty()) argv.push_back(w.put(iarg));
      argv.push_back(w.put(raw));
    }
    if (!put_argv(argv)) return fail(E2BIG);
    regs.rdi = w.put(lr.host);
  } else if (script) {
    // argv becomes: INTERP [ARG] PATH-as-given argv[1…] — what binfmt_script builds.
    std::vector<uint64_t> argv;
    argv.push_back(w.put(interp));
    if (!iarg.empty()) argv.push_back(w.put(iarg));
    argv.push_back(w.put(raw));
    if (!put_argv(argv)) return fail(E2BIG);
    regs.rdi = w.put(ir.host);
  } else {
    regs.rdi = r.moved ? w.put(r.host) : path_addr;
    regs.rsi = argv_addr;
  }
  regs.rdx = envp_addr;
  if (accel) {
    // LD_PRELOAD and the fast path's configuration first, then the caller's environment.
    envp[0] = w.put("LD_PRELOAD=" + scfg.accel_lib);
    envp[1] = w.put(accel_env);
    regs.rdx = w.put(envp.data(), envp.size() * 8);
  }
  if (at && !r.moved && !script && !via_loader) {
    // execveat with the caller's own dirfd and path: keep the call, change only its envp.
    regs.rdi = c.a[0];
    regs.rsi = path_addr;
    regs.rdx = argv_addr;
    regs.r10 = w.put(envp.data(), envp.size() * 8);
  } else {
    regs.orig_rax = SYS_execve;
  }
  if (!w.ok()) return fail(EFAULT);
  setregs();
}

// The caller's envp with two free slots in front, unless it already has LD_PRELOAD (the user's
// own; the fast path then stays off) or the fast path's variable. False: leave envp alone.
bool Monitor::Core::inject_env(pid_t pid, uint64_t envp_addr, std::vector<uint64_t>* out) {
  out->assign(2, 0);
  if (!envp_addr) return out->push_back(0), true;
  // The pointers, 128 at a time (one at a time near the end of a mapping).
  bool done = false;
  uint64_t chunk[128];
  for (uint64_t base = envp_addr; !done; base += sizeof chunk) {
    size_t n = sizeof chunk / 8;
    if (!read_mem(pid, base, chunk, sizeof chunk)) {
      n = 0;
      while (n < 128 && read_mem(pid, base + 8 * n, &chunk[n], 8) && chunk[n]) ++n;
      if (n == 128 || chunk[n]) return false;  // unreadable before its end
      chunk[n++] = 0;
    }
    for (size_t i = 0; i < n && !done; ++i) {
      if (!chunk[i]) done = true;
      else out->push_back(chunk[i]);
    }
    if (out->size() > 65536) return false;
  }
  // The first bytes of every string in one process_vm_readv (a string near the end of its
  // mapping may stop it short: the rest are then read one by one).
  constexpr size_t kHead = 16, kBatch = 512;
  for (size_t first = 2; first < out->size(); first += kBatch) {
    size_t n = std::min(kBatch, out->size() - first);
    std::vector<char> heads(n * kHead, 0);
    std::vector<iovec> local(n), remote(n);
    for (size_t i = 0; i < n; ++i) {
      local[i] = {heads.data() + i * kHead, kHead};
      remote[i] = {reinterpret_cast<void*>((*out)[first + i]), kHead};
    }
    ssize_t got = ::process_vm_readv(pid, local.data(), n, remote.data(), n, 0);
    size_t whole = got > 0 ? static_cast<size_t>(got) / kHead : 0;
    for (size_t i = 0; i < n; ++i) {
      const char* h = heads.data() + i * kHead;
      std::string s;
      if (i >= whole) {
        if (read_string(pid, (*out)[first + i], &s, kHead) != 0 && s.empty()) continue;
        h = s.c_str();
      }
      if (std::strncmp(h, "LD_PRELOAD=", 11) == 0 || std::strncmp(h, VU_ACCEL_ENV "=", 13) == 0) return false;
    }
  }
  out->push_back(0);
  return true;
}

// getdents64 on a directory that holds mountpoints missing on the host: at the start of a
// listing (offset 0, also after rewinddir), those names come first, then the host's entries.
// When they do not fit in one buffer (thousands of them), the listing goes on where it stopped
// at the next call (cursors_), and the host's entries start only once all of them are out: the
// call that gives the last made-up entries also reads the host's first ones, so the directory's
// offset leaves 0 and the next call runs natively. (A rewinddir in the middle of the made-up
// entries goes on from where they were, not from the first.)
// A directory of a copy-on-write layer that both layers show (or that holds whiteouts) is
// listed whole by the monitor (Cow::listing(): the union, whiteouts and duplicates left out),
// kept in the cursor from its first call; the host directory is then read to its end, so the
// next call runs natively and says "no more". Its d_off are 0 (seekdir into it restarts).
Monitor::Answer Monitor::Core::do_getdents(Call& c) {
  struct stat st;
  const std::string link = fd_path(c.tid, c.arg_int(0));
  if (::stat(link.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return Answer::cont();
  bool listed = false;
  for (const auto& [key, e] : cfg.listing) listed = listed || (key.first == st.st_dev && key.second == st.st_ino);
  // A merged copy-on-write directory (pvm/cow.h): the monitor gives its whole listing.
  Cow* cow = nullptr;
  std::string rel;
  const std::string host = cfg.map.has_cow() ? read_link(link) : std::string();
  const bool merged_dir = cfg.map.has_cow() && cow_of_host(cfg.map, host, &cow, &rel) == 1;
  if (!listed && !merged_dir) return Answer::cont();
  int err = 0;
  UniqueFd dir = take_fd(c, c.arg_int(0), &err);
  if (!dir || ::lseek(dir.get(), 0, SEEK_CUR) != 0) return Answer::cont();
  // The cursor of this open file description, if its listing is under way.
  const pid_t self = ::getpid();
  auto same = [&](const ListingCursor& k) {
    long r = ::syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, k.file.get(), dir.get());
    return r == 0 || (r < 0 && errno == ENOSYS && k.tgid == c.tgid() && k.fd == c.arg_int(0));
  };
  c.tgid();  // before the lock (reads /proc)
  std::unique_lock<std::mutex> lock(mu);  // the cursors are shared by the workers
  auto cur = std::find_if(cursors.begin(), cursors.end(), same);
  size_t next = 0;
  std::vector<Config::Entry> names;
  bool whole = false;
  if (cur != cursors.end()) {
    next = cur->next;
    names = std::move(cur->names);
    whole = cur->whole;
  } else if (merged_dir) {
    lock.unlock();
    auto merged = cow->listing(host);
    if (!merged) return Answer::cont();  // the layer's own directory, as it is
    for (Cow::Entry& e : *merged) names.push_back({std::move(e.name), e.type, e.ino});
    // Mountpoints the tree lacks (a copy-on-write root, --rootfs TREE --cow LAYER:/): keyed by
    // the lower directory's id, which was the view's when the map was made.
    struct stat lower;
    if (!cfg.listing.empty() && ::stat(cow->host_of(rel, 2).c_str(), &lower) == 0)
      for (const auto& [key, e] : cfg.listing)
        if (((key.first == lower.st_dev && key.second == lower.st_ino) || (key.first == st.st_dev && key.second == st.st_ino)) &&
            std::none_of(names.begin(), names.end(), [&](const Config::Entry& n) { return n.name == e.name; }))
          names.push_back(e);
    whole = true;
    lock.lock();
    cur = std::find_if(cursors.begin(), cursors.end(), same);  // none, unless a twin call raced us
    if (cur != cursors.end()) cursors.erase(cur);
    cur = cursors.end();
  } else {
    for (const auto& [key, e] : cfg.listing)
      if (key.first == st.st_dev && key.second == st.st_ino) names.push_back(e);
  }
  // Room for at least one host entry (a 255-byte name takes 280) in the call that ends them.
  constexpr size_t kHostRoom = 512;
  // The kernel's count is an unsigned int it keeps in an int: above INT_MAX it is EINVAL.
  const uint32_t ucount = static_cast<uint32_t>(c.a[2]);
  if (ucount > INT32_MAX) {
    if (cur != cursors.end()) cur->names = std::move(names);
    return Answer::error(EINVAL);
  }
  const size_t count = std::min<size_t>(ucount, 1 << 20);
  if (count < kHostRoom + 32) {
    if (cur != cursors.end()) cur->names = std::move(names);
    return whole ? Answer::error(EINVAL) : Answer::cont();  // the kernel says EINVAL if it must
  }
  std::vector<char> buf(count, 0);
  size_t used = 0;
  const size_t room = whole ? count : count - kHostRoom;
  for (; next < names.size(); ++next) {
    const Config::Entry& e = names[next];
    size_t reclen = (offsetof(struct dirent64, d_name) + e.name.size() + 1 + 7) & ~size_t{7};
    if (used + reclen > room) break;
    auto* d = reinterpret_cast<struct dirent64*>(buf.data() + used);
    d->d_ino = e.ino;
    d->d_off = 0;  // telldir() of a made-up entry: back to the start
    d->d_reclen = static_cast<unsigned short>(reclen);
    d->d_type = e.type;
    std::memcpy(d->d_name, e.name.c_str(), e.name.size() + 1);
    used += reclen;
  }
  if (next < names.size()) {  // more to come: remember where
    if (cur == cursors.end()) {
      if (cursors.size() >= 16) cursors.erase(cursors.begin());  // abandoned listings
      cursors.push_back({std::move(dir), c.tgid(), c.arg_int(0), next, std::move(names), whole});
    } else {
      cur->next = next;
      cur->names = std::move(names);
    }
    lock.unlock();
    if (!write_mem(c.tid, c.a[1], buf.data(), used)) return Answer::error(EFAULT);
    return Answer::value(static_cast<int64_t>(used));
  }
  if (cur != cursors.end()) cursors.erase(cur);
  lock.unlock();
  size_t total = used;
  if (whole) {
    // Written before the host directory moves on: a buffer the caller cannot take (EFAULT)
    // leaves the listing where it was, to be given again (it was lost: an empty directory).
    if (used && !write_mem(c.tid, c.a[1], buf.data(), used)) return Answer::error(EFAULT);
    // The listing is out: the host directory is read to its end, so its offset leaves 0 and
    // the next call runs natively (and says: no more).
    std::vector<char> scratch(32768);
    while (::syscall(SYS_getdents64, dir.get(), scratch.data(), scratch.size()) > 0) {
    }
  } else {
    long n = ::syscall(SYS_getdents64, dir.get(), buf.data() + used, count - used);
    if (n < 0) return Answer::error(errno);
    total += static_cast<size_t>(n);
    if (total && !write_mem(c.tid, c.a[1], buf.data(), total)) return Answer::error(EFAULT);
  }
  return Answer::value(static_cast<int64_t>(total));
}

namespace {
// Trapped calls the kernel never ends with EINTR (open and connect may, natively, block).
bool never_eintr(long nr) {
  if (nr == SYS_open || nr == SYS_openat || nr == SYS_creat || nr == SYS_connect) return false;
  if (nr == SYS_execve || nr == SYS_execveat || nr == SYS_chdir) return false;
  for (int n : kNotified)
    if (n == nr) return true;
  for (int n : kNotifiedRoot)
    if (n == nr) return true;
  return nr == SYS_getdents64 || nr == SYS_sync || nr == SYS_syncfs || nr == SYS_fsync || nr == SYS_fdatasync;
}
constexpr long kERestartNoIntr = 513;
}  // namespace

// Whether a trapped call that ended with -ERESTARTSYS must be restarted whatever the handler:
// a call that cannot be interrupted natively. An open can when it waits (a FIFO, a tty): it is
// restarted unless it names such a file, which the kernel may have been opening natively (let
// through), where a handler without SA_RESTART gets EINTR as it would without vu.
// Decided without a lookup: 1 restart, 0 leave, -1 a lookup is needed (restartable_open).
int Monitor::Core::restartable_now(const user_regs_struct& regs) const {
  const long nr = static_cast<long>(regs.orig_rax);
  if (never_eintr(nr)) return 1;
  if (nr != SYS_open && nr != SYS_openat && nr != SYS_creat) return 0;
  if (cfg.map.empty()) return 0;  // not trapped
  return -1;
}

// An open: on a ptrace worker (the lookup may block).
bool Monitor::Core::restartable_open(pid_t pid, const user_regs_struct& regs) {
  const long nr = static_cast<long>(regs.orig_rax);
  Call c{0, pid, static_cast<int>(nr), {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9}};
  const bool at = nr == SYS_openat;
  const int flags = nr == SYS_creat ? O_CREAT : c.arg_int(at ? 2 : 1);
  Resolved r = resolve_arg(cfg, c, at ? c.arg_int(0) : AT_FDCWD, c.a[at ? 1 : 0], !(flags & O_NOFOLLOW));
  return !r.exists || !(S_ISFIFO(r.st.st_mode) || S_ISCHR(r.st.st_mode));
}

bool Monitor::on_wait_status(pid_t pid, int status) {
  struct Count {  // $VU_PVM_STATS
    Core& k;
    uint64_t t0;
    int kind = Core::kOtherStop;
    ~Count() {
      ++k.stops[kind];
      if (k.timing) k.stop_ns[kind] += now_ns() - t0;
    }
  } count{*core_, core_->timing ? now_ns() : 0};
  if (!WIFSTOPPED(status)) {
    count.kind = Core::kExitWait;
    pending_.erase(pid);  // a plan still being worked out for it is dropped
    // A caller that dies while a worker performs its call: a blocking call (FIFO open, connect)
    // is interrupted, the worker finds the notification gone and answers nothing.
    if (cfg_.fuse) cfg_.fuse->forget(pid);
    if (cfg_.exe) cfg_.exe->exited(pid);
    std::lock_guard<std::mutex> lock(core_->mu);
    for (Core::Worker& w : core_->workers)
      if (w.busy == pid && !w.done) ::pthread_kill(w.thread, wake_signal());
    return false;
  }
  const int sig = WSTOPSIG(status);
  const int event = status >> 16;
  int inject = 0;
  switch (event) {
    case PTRACE_EVENT_SECCOMP: {
      // Worked out on a ptrace worker; resumed by on_ptrace_done() (the never-block rule).
      count.kind = Core::kSeccompStop;
      ++core_->traced;
      StopPlan p;
      p.pid = pid;
      if (::ptrace(PTRACE_GETREGS, pid, 0, &p.regs) < 0) break;
      p.orig = p.regs;
      p.gen = ++gen_;
      p.t0 = core_->timing ? now_ns() : 0;
      pending_[pid] = p.gen;
      core_->post([core = core_.get(), p = std::move(p)]() mutable {
        core->plan_seccomp_stop(p);
        core->finish(std::move(p));
      });
      return true;
    }
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
      count.kind = Core::kForkStop;
      if (unsigned long child = 0; cfg_.exe && ::ptrace(PTRACE_GETEVENTMSG, pid, 0, &child) == 0)
        cfg_.exe->forked(pid, static_cast<pid_t>(child));
      break;
    case PTRACE_EVENT_EXEC:
      count.kind = Core::kExecStop;
      break;
    case PTRACE_EVENT_EXIT:
      break;
    case PTRACE_EVENT_STOP:
      count.kind = Core::kGroupStop;  // also the first stop of a new tracee
      if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
        (void)::ptrace(PTRACE_LISTEN, pid, 0, 0);  // a group stop: stay stopped until SIGCONT
        return true;
      }
      break;
    default:
      count.kind = Core::kSignalStop;
      inject = sig;  // a signal on its way to the tracee: deliver it
      if (killable_) {
        // A signal that came while a trapped call waited for a worker to take it: the call
        // was withdrawn before anything was done (the wait is killable only once received),
        // and ends with -ERESTARTSYS, which a handler without SA_RESTART turns into EINTR —
        // an error mkdir or getuid never return natively. Restart it after the handler.
        user_regs_struct regs;
        if (::ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0 && static_cast<int64_t>(regs.rax) == -kERestartSys) {
          int now = core_->restartable_now(regs);
          if (now < 0) {  // an open: is it of a FIFO or a device? A lookup, on a worker.
            StopPlan p;
            p.pid = pid;
            p.regs = p.orig = regs;
            p.inject = inject;
            p.gen = ++gen_;
            pending_[pid] = p.gen;
            core_->post([core = core_.get(), p = std::move(p)]() mutable {
              if (core->restartable_open(p.pid, p.regs)) {
                p.regs.rax = static_cast<uint64_t>(-kERestartNoIntr);
                p.set_regs = true;
              }
              core->finish(std::move(p));
            });
            return true;
          }
          if (now) {
            regs.rax = static_cast<uint64_t>(-kERestartNoIntr);
            (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
          }
        }
      }
  }
  (void)::ptrace(PTRACE_CONT, pid, 0, inject);
  return true;
}

// ---------------------------------------------------------------------------------------------
// The ptrace workers: stops whose answer needs a lookup are worked out there (plan_seccomp_stop,
// restartable_open) and handed back to the tracer thread through an eventfd (fd()), which
// writes the tracee's memory, sets its registers and resumes it (on_ptrace_done). A lookup that
// blocks (a FUSE server that is itself stopped, a dead NFS server) holds up its own process only.

void Monitor::Core::post(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(jmu);
  jobs.push_back(std::move(job));
  if (static_cast<int>(jobs.size()) > jidle && jthreads < kMaxWorkers) {
    pthread_t t;
    if (start_thread(&t, new WorkerStart{weak_self.lock(), nullptr, true})) {
      ::pthread_detach(t);
      ++jthreads;
      return;
    }
  }
  jcv.notify_one();
}

void Monitor::Core::run_jobs() {
  set_worker_mask();
  std::unique_lock<std::mutex> lock(jmu);
  for (;;) {
    ++jidle;
    while (jobs.empty() && !jstop) jcv.wait(lock);
    --jidle;
    if (jstop) break;
    std::function<void()> job = std::move(jobs.front());
    jobs.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
  --jthreads;
}

void Monitor::Core::finish(StopPlan&& p) {
  {
    std::lock_guard<std::mutex> lock(jmu);
    done.push_back(std::move(p));
  }
  uint64_t one = 1;
  (void)!::write(done_fd.get(), &one, sizeof one);
}

int Monitor::fd() const { return core_->done_fd.get(); }

void Monitor::on_ptrace_done() {
  uint64_t n;
  (void)!::read(core_->done_fd.get(), &n, sizeof n);
  std::vector<StopPlan> plans;
  {
    std::lock_guard<std::mutex> lock(core_->jmu);
    plans.swap(core_->done);
  }
  for (StopPlan& p : plans) {
    auto it = pending_.find(p.pid);
    if (it == pending_.end() || it->second != p.gen) continue;  // it died meanwhile
    pending_.erase(it);
    bool ok = true;
    for (const auto& [addr, bytes] : p.writes) ok = ok && write_mem(p.pid, addr, bytes.data(), bytes.size());
    if (!ok) {  // the stack below the red zone is not writable: EFAULT, as before
      p.regs = p.orig;
      p.regs.orig_rax = static_cast<uint64_t>(-1);
      p.regs.rax = static_cast<uint64_t>(-EFAULT);
      p.set_regs = true;
    }
    if (p.set_regs) (void)::ptrace(PTRACE_SETREGS, p.pid, 0, &p.regs);
    (void)::ptrace(PTRACE_CONT, p.pid, 0, p.inject);
    const uint64_t nr = p.orig.orig_rax;
    if (p.t0 && nr < static_cast<uint64_t>(Core::kNrs)) core_->traced_ns[nr] += now_ns() - p.t0;
    if (nr < static_cast<uint64_t>(Core::kNrs) && !p.inject) ++core_->traced_n[nr];
  }
}

}  // namespace vu::pvm
