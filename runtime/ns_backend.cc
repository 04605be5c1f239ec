#include "runtime/ns_backend.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/raw_log.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "bindmount/bindmount.h"
#include "fusefs/keeper.h"
#include "runtime/command.h"
#include "runtime/exit_codes.h"
#include "runtime/net_helper.h"
#include "runtime/watchdog.h"
#include "userns/userns.h"
#include "base/temp_dir.h"
#include "vdens/tap.h"

namespace vu {

namespace {

constexpr int kExitSetupChild = kExitSetup;

enum class Stage : int32_t {
  kNone = 0,
  kPdeathsig,
  kSync,
  kMaps,
  kSysfs,
  kMounts,
  kHostname,
  kLoopback,
  kTap,        // index: which tap
  kTapConfig,  // index: which tap
  kRoute,
  kSendTaps,
  kNetReady,  // vu-net's answer follows the report
  kNetTimeout,  // vu-net did not answer
  kChdir,
  kCaps,  // index: the capability
  kKeeper,  // not a failure: index is the keeper's pid; more records may follow
  kFuse,    // the keeper's message follows the report
  kNewRoot,  // entering a copy-on-write root
  kInit,     // --rootfs: forking the command below the pid namespace's init
  kExec,
};

struct ChildReport {
  Stage stage;
  int32_t index;  // kMounts: which mount; kMaps: userns::MapStage
  int32_t sub;    // kMounts: bindmount::Stage
  int32_t err;
};

// Everything the child reads. Built in the parent; the child never allocates.
struct Launch {
  pid_t parent = 0;
  char parent_status[32] = {};  // "/proc/PID/status" of vu: its pending signals, see wait_for_net
  bool own_maps = true;  // false: the parent runs newuidmap/newgidmap
  userns::OwnMaps maps;
  const std::vector<bindmount::MountSpec>* mounts = nullptr;
  std::string hostname;
  bool own_netns = false;  // remount /sys for it
  bool lo_up = false;
  // Network uplinks: taps vde0… created in the view and sent to vu-net on net_socket.
  int net_socket = -1;
  int n_taps = 0;
  char tap_name[16][IFNAMSIZ] = {};
  int tap_mtu[16] = {};
  in_addr tap_addr[16] = {};
  int tap_prefix[16] = {};
  bool tap_slirp6[16] = {};  // slirp: fd00::100/64, default route via fd00::2
  in6_addr slirp6_addr{}, slirp6_gw{};
  uint64_t ambient_caps = 0;
  bool configure_links = true;
  bool lend_mntns = false;  // send the mount namespace to vu-net with the taps
  bool has_gateway = false;
  in_addr gateway{};
  Command cmd;
  const std::vector<fusefs::FuseMount>* fuse = nullptr;
  bool root = false;
  int keeper_control = -1;  // read end, for the keeper
  std::string new_root;     // a copy-on-write root's staging directory, or --rootfs: pivot_root into it
  bool rootfs = false;      // new_root is --rootfs's tree
  bool pid_ns = false;      // CLONE_NEWPID: this process is the view's init (see view_init)
  int status_fd = -1;       // pid_ns: where the init writes the command's wait status
  int report_read_fd = -1;  // pid_ns: vu's end of the report pipe (closed in the fork)
  const sigset_t* mask = nullptr;
  int report_fd = -1;
  int sync_fd = -1;
  int watchdog_fd = -1;
};

[[noreturn]] void child_fail(const Launch& l, Stage stage, int err, int index = 0, int sub = 0) {
  ChildReport r{stage, index, sub, err};
  (void)!::write(l.report_fd, &r, sizeof r);
  ::_exit(kExitSetupChild);
}

// A private network namespace needs its own sysfs, or /sys/class/net shows the host's devices.
// The cgroup mount below /sys is carried over. Returns false with errno set.
bool remount_sysfs() {
  int cg = ::open_tree(AT_FDCWD, "/sys/fs/cgroup", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) {
    int e = errno;
    if (cg >= 0) ::close(cg);
    errno = e;
    return false;
  }
  if (cg >= 0) {
    (void)::move_mount(cg, "", AT_FDCWD, "/sys/fs/cgroup", MOVE_MOUNT_F_EMPTY_PATH);
    ::close(cg);
  }
  return true;
}

void start_keeper(const Launch& l);

// Bounds of the wait for vu-net's answer. vu-net bounds each of its own steps (an uplink that
// accepts and never answers: 3 s) and says which failed; this bound only catches the rest.
constexpr int kNetAnswerMs = 10000;
constexpr int kSignalCheckMs = 50;

// Whether vu has SIGINT, SIGTERM or SIGHUP pending (blocked: it reads them with a signalfd),
// from its /proc/PID/status; returns the signal or 0. No allocation (restricted zone).
int parent_stop_signal(const Launch& l) {
  int fd = ::open(l.parent_status, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  for (const char* key : {"\nSigPnd:\t", "\nShdPnd:\t"}) {
    const char* p = std::strstr(buf, key);
    if (!p) continue;
    p += std::strlen(key);
    unsigned long long mask = 0;
    for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); ++p)
      mask = mask << 4 | static_cast<unsigned>(*p <= '9' ? *p - '0' : *p - 'a' + 10);
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      if (mask & (1ULL << (sig - 1))) return sig;
  }
  return 0;
}

// Waits for vu-net's answer on the control socket, at most kNetAnswerMs. vu is suspended in the
// vfork-style clone until this process execs or exits, so it cannot act on a signal meanwhile:
// every kSignalCheckMs this process looks for one pending in vu and dies of it (vu then exits
// as a command killed by it would: 128+N). Returns 0 (answer there) or ETIMEDOUT.
int wait_for_net(const Launch& l) {
  struct pollfd p = {l.net_socket, POLLIN, 0};
  for (int waited = 0; waited < kNetAnswerMs; waited += kSignalCheckMs) {
    int r = ::poll(&p, 1, kSignalCheckMs);
    if (r != 0 && !(r < 0 && errno == EINTR)) return 0;  // an answer, EOF, or an error for recv
    if (int sig = parent_stop_signal(l)) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(sig, &dfl, nullptr);
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
      ::kill(::getpid(), sig);
      ::_exit(128 + sig);
    }
  }
  return ETIMEDOUT;
}

// The last stage: ambient capabilities, the signal mask, execve.
[[noreturn]] void exec_stage(Launch& l) {
  if (l.ambient_caps) {
    int which;
    if (int e = userns::raise_ambient(l.ambient_caps, &which)) child_fail(l, Stage::kCaps, e, which);
  }
  ::sigprocmask(SIG_SETMASK, l.mask, nullptr);
  child_fail(l, Stage::kExec, exec_command(l.cmd));
}

constexpr int kInitForward[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

// The command below the view's init: vfork-style on a stack of its own (the init is a copy of
// vu, not sharing vu's memory, and waits until this execs).
int command_entry(void* launch) {
  Launch& l = *static_cast<Launch*>(launch);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : kInitForward) ::sigaction(sig, &dfl, nullptr);
  ::close(l.status_fd);
  exec_stage(l);
}

// --rootfs views have their own pid namespace (CLONE_NEWPID): the first process is its init.
// It mounts a fresh /proc over the host's (kept when the kernel refuses: a host whose /proc is
// partly hidden, as in a container: with a warning), clones the command (pid 2, vfork-style:
// command_entry) and stays as init: it reaps every orphan, forwards the signals vu forwards — sent
// from outside the namespace; a view's `kill 1` is dropped, as for an init without a handler — (not the
// terminal's: those reach the command's process group directly) and, when the command exits,
// writes its wait status to status_fd and exits with the same code (128+N for a signal: an
// init cannot die of one). Its exit makes the kernel kill what is left in the namespace; if vu
// dies first, PR_SET_PDEATHSIG kills the init, and with it the namespace.
// Restricted zone: no allocation.
[[noreturn]] void view_init(Launch& l) {
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) {
    // Left as bound (the host's, e.g. where a container masks parts of it): the view works,
    // but its /proc lists the host's processes under the host's pids.
    raw::write_str(2, "vu: warning: the kernel refused a new /proc for the view (",
                   errno == EPERM ? "EPERM: the host's /proc has hidden parts?" : "mount failed",
                   "); it shows the host's, whose pids are not the view's\n");
  }
  // An init gets only the signals it has a handler for, or blocks: one that does nothing, the
  // signals staying blocked (vu blocked them before the clone) and read with sigwaitinfo.
  sigset_t wait_set;
  sigemptyset(&wait_set);
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  for (int sig : kInitForward) {
    sigaddset(&wait_set, sig);
    ::sigaction(sig, &sa, nullptr);
  }
  sigaddset(&wait_set, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &wait_set, nullptr);
  ::prctl(PR_SET_NAME, "vu-init", 0, 0, 0);  // before the command can look
  // The command's stack: this process's own memory (a fork of vu), unused by anything else.
  alignas(16) static char stack[64 * 1024];
  const pid_t cmd = ::clone(command_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                            &l);
  if (cmd < 0) child_fail(l, Stage::kInit, errno);
  ::close(l.report_fd);  // the command's copy says whether it was executed
  for (;;) {
    siginfo_t si;
    int sig = ::sigwaitinfo(&wait_set, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      // Only a signal from outside the namespace (vu's: its sender's pid reads 0 here); one a
      // process of the view sends to pid 1 is dropped, as the kernel drops it for an init
      // without a handler: `kill 1` in the view does nothing.
      if (si.si_code != SI_KERNEL && si.si_pid == 0) ::kill(cmd, sig);
      continue;
    }
    int status;
    pid_t p;
    while ((p = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
      if (p != cmd) continue;
      (void)!::write(l.status_fd, &status, sizeof status);
      ::_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
    }
  }
}

[[noreturn]] void child_main(Launch& l) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(l, Stage::kPdeathsig, errno);
  if (l.pid_ns) {
    // getppid() is 0 for a namespace's init: vu is gone when the report pipe has no reader.
    ::close(l.report_read_fd);
    struct pollfd p = {l.report_fd, 0, 0};
    if (::poll(&p, 1, 0) != 0) ::_exit(kExitSetupChild);
  } else if (::getppid() != l.parent) {
    ::_exit(kExitSetupChild);  // the supervisor is already gone
  }
  Watchdog::tell_userns(l.watchdog_fd);  // before anything of the view can run

  if (l.own_maps) {
    userns::MapStage st;
    if (int err = userns::write_own_maps(l.maps, &st))
      child_fail(l, Stage::kMaps, err, static_cast<int>(st));
  } else {
    char go;
    ssize_t n;
    while ((n = ::read(l.sync_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(kExitSetupChild);  // the parent failed and reports it
  }

  if (l.own_netns && !remount_sysfs()) child_fail(l, Stage::kSysfs, errno);
  if (l.lo_up) {
    if (int e = vdens::bring_up("lo")) child_fail(l, Stage::kLoopback, e);
  }
  if (l.n_taps) {
    int fds[vdens::kMaxPassedFds];
    for (int i = 0; i < l.n_taps; ++i) {
      if (int e = vdens::open_tap(l.tap_name[i], &fds[i])) child_fail(l, Stage::kTap, e, i);
      if (!l.configure_links) continue;
      if (l.tap_slirp6[i]) {
        if (int e = vdens::ipv6_static(l.tap_name[i])) child_fail(l, Stage::kTapConfig, e, i);
      }
      if (int e = vdens::configure_if(l.tap_name[i], l.tap_mtu[i], &l.tap_addr[i], l.tap_prefix[i]))
        child_fail(l, Stage::kTapConfig, e, i);
      if (l.tap_slirp6[i]) {
        if (int e = vdens::configure_ipv6(l.tap_name[i], l.slirp6_addr, 64, &l.slirp6_gw))
          child_fail(l, Stage::kTapConfig, e, i);
      }
    }
    if (l.has_gateway) {
      if (int e = vdens::add_default_route(l.gateway)) child_fail(l, Stage::kRoute, e);
    }
    int nfds = l.n_taps;
    if (l.lend_mntns) {  // vu-net holds it: see vu_net_main.cc
      int ns = ::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
      if (ns >= 0) fds[nfds++] = ns;
    }
    int send_err = vdens::send_fds(l.net_socket, fds, nfds);
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    // Wait for vu-net: "R" when every uplink is open, "E<error>" otherwise (relayed as is).
    char answer[4096];
    if (wait_for_net(l)) child_fail(l, Stage::kNetTimeout, ETIMEDOUT);
    ssize_t n = NetHelper::read_answer(l.net_socket, answer, sizeof answer);
    if (n != 1 || answer[0] != 'R') {
      if (send_err && n <= 0) child_fail(l, Stage::kSendTaps, send_err);
      ChildReport r{Stage::kNetReady, 0, 0, 0};
      (void)!::write(l.report_fd, &r, sizeof r);
      if (n > 0) (void)!::write(l.report_fd, answer, static_cast<size_t>(n));
      ::_exit(kExitSetupChild);
    }
    if (send_err) child_fail(l, Stage::kSendTaps, send_err);
  }

  bindmount::Failure f;
  if (!bindmount::apply(l.mounts->data(), l.mounts->size(), &f))
    child_fail(l, Stage::kMounts, f.err, f.index, static_cast<int>(f.stage));

  if (!l.hostname.empty() && ::sethostname(l.hostname.data(), l.hostname.size()) < 0)
    child_fail(l, Stage::kHostname, errno);

  // With --rootfs the working directory is looked up in the tree, after the pivot.
  if (!l.rootfs) {
    if (int e = enter_cwd(l.cmd)) child_fail(l, Stage::kChdir, e);
  }
  if (!l.fuse->empty()) start_keeper(l);
  if (!l.new_root.empty()) {
    // pivot_root(".", "."): the staging mount becomes the root and the old root, stacked on it,
    // is detached. Every other mount was bound into the stage by the keeper.
    if (::chdir(l.new_root.c_str()) < 0 || ::syscall(SYS_pivot_root, ".", ".") < 0 ||
        ::umount2(".", MNT_DETACH) < 0 || ::chdir("/") < 0)
      child_fail(l, Stage::kNewRoot, errno);
    if (int e = enter_cwd(l.cmd)) child_fail(l, Stage::kChdir, e);
  }
  if (l.pid_ns) view_init(l);  // never returns: the command runs exec_stage below it
  exec_stage(l);
}

// Clones the keeper as a sibling (CLONE_PARENT: vu's child) and waits for its answer. The
// keeper is a copy of this process (a fork, not sharing memory), so it may allocate.
void start_keeper(const Launch& l) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) < 0) child_fail(l, Stage::kFuse, errno);
  long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) child_fail(l, Stage::kFuse, errno);
  if (pid == 0) {
    ::close(ready[0]);
    if (l.watchdog_fd >= 0) ::close(l.watchdog_fd);  // the watchdog hears vu's death, not ours
    fusefs::KeeperArgs a;
    a.mounts = l.fuse;
    a.ambient_sys_admin = !l.root;
    a.ready_fd = ready[1];
    a.control_fd = l.keeper_control;
    fusefs::keeper_main(a);
  }
  ::close(ready[1]);
  ChildReport r{Stage::kKeeper, static_cast<int32_t>(pid), 0, 0};
  (void)!::write(l.report_fd, &r, sizeof r);
  char answer[4096];
  ssize_t n;
  while ((n = ::read(ready[0], answer, sizeof answer)) < 0 && errno == EINTR) {
  }
  ::close(ready[0]);
  if (n == 1 && answer[0] == 'R') return;
  r = ChildReport{Stage::kFuse, 0, 0, 0};
  (void)!::write(l.report_fd, &r, sizeof r);
  if (n > 1) (void)!::write(l.report_fd, answer + 1, static_cast<size_t>(n - 1));
  ::_exit(kExitSetupChild);
}

int child_entry(void* launch) { child_main(*static_cast<Launch*>(launch)); }

Error report_to_error(const ChildReport& r, const ViewSpec& spec, const Launch& l) {
  switch (r.stage) {
    case Stage::kPdeathsig: return Error::sys("prctl(PR_SET_PDEATHSIG)", r.err);
    case Stage::kSync: return Error::sys("waiting for the id maps", r.err);
    case Stage::kMaps: {
      static const char* const kFile[] = {"", "/proc/self/setgroups", "/proc/self/uid_map",
                                          "/proc/self/gid_map"};
      int i = r.index >= 0 && r.index < 4 ? r.index : 0;
      return Error::sys("write", r.err, kFile[i])
          .context("setting up the user namespace's id maps")
          .hint("the kernel refused the caller's own id map; a security module may restrict "
                "user namespaces (run 'vu probe')");
    }
    case Stage::kMounts: {
      if (r.index < 0 || static_cast<size_t>(r.index) >= l.mounts->size())
        return Error::sys("mount", r.err);
      bindmount::Failure f{r.index, static_cast<bindmount::Stage>(r.sub), r.err};
      return bindmount::describe((*l.mounts)[static_cast<size_t>(r.index)], f);
    }
    case Stage::kSysfs:
      return Error::sys("mount sysfs on", r.err, "/sys")
          .context("giving the view's network namespace its own /sys");
    case Stage::kHostname: return Error::sys("sethostname", r.err, *spec.hostname);
    case Stage::kLoopback: return Error::sys("bring up", r.err, "lo");
    case Stage::kTap: {
      Error e = Error::sys("create tap", r.err, l.tap_name[r.index & 15]);
      if (r.err == EACCES || r.err == EPERM || r.err == ENOENT)
        return std::move(e).hint("/dev/net/tun must exist and be mode 0666 (Debian's default; "
                                 "as root: chmod 0666 /dev/net/tun); 'vu probe' checks it. "
                                 "Without it, --net none (no network) or --net host work");
      return e;
    }
    case Stage::kTapConfig:
      return Error::sys("configure", r.err, std::string(l.tap_name[r.index & 15]) + " (mtu, address, up)");
    case Stage::kRoute:
      return Error::sys("add default route via", r.err, vdens::to_string(l.gateway))
          .hint("the gateway must be inside a subnet given with --ip");
    case Stage::kCaps:
      return Error::sys("raise ambient capability", r.err, "#" + std::to_string(r.index));
    case Stage::kSendTaps: return Error::sys("hand the taps to vu-net", r.err);
    case Stage::kNetReady: return NetHelper::error_from({});  // handled by the caller
    case Stage::kNetTimeout:
      return Error::sys("waiting for vu-net", r.err)
          .hint("its uplinks did not open within " + std::to_string(kNetAnswerMs / 1000) + " s");
    case Stage::kKeeper: break;  // not a failure
    case Stage::kFuse: return Error::sys("start the FUSE keeper", r.err);
    case Stage::kNewRoot:
      return Error::sys(l.rootfs ? "enter the root tree" : "enter the copy-on-write root", r.err, l.new_root);
    case Stage::kChdir:
      return chdir_error(l.cmd, r.err);
    case Stage::kInit: return Error::sys("fork the command below the view's init", r.err);
    case Stage::kExec: return exec_error(l.cmd, r.err);
    case Stage::kNone: break;
  }
  return Error::make(ErrorKind::kSetup, "the view's first process failed to start");
}

}  // namespace

Result<NsView> start_ns_view(const ViewSpec& spec, const Plan& plan, const sigset_t& child_mask,
                            int net_socket, int watchdog_fd) {
  Launch l;
  l.watchdog_fd = watchdog_fd;
  l.parent = ::getpid();
  std::snprintf(l.parent_status, sizeof l.parent_status, "/proc/%d/status", static_cast<int>(l.parent));
  const unsigned long uid = ::getuid(), gid = ::getgid();
  // The caller's ids in the view: root, its own, or an image's User.
  const bool as_root = spec.identity == userns::Identity::kRoot;
  const unsigned long in_uid = spec.view_ids ? spec.view_ids->first : as_root ? 0 : uid;
  const unsigned long in_gid = spec.view_ids ? spec.view_ids->second : as_root ? 0 : gid;
  std::optional<userns::IdMap> sub_uid, sub_gid;
  if (spec.map_users) {
    std::string user = userns::current_user_name();
    auto su = sys::read_file("/etc/subuid");
    auto sg = sys::read_file("/etc/subgid");
    auto ru = su ? userns::find_subid(*su, user, uid) : std::nullopt;
    auto rg = sg ? userns::find_subid(*sg, user, uid) : std::nullopt;
    if (!ru || !rg)
      return Error::usage("--map-users: no subordinate " + std::string(!ru ? "uid" : "gid") +
                          " range for " + user + " in /etc/sub" + (!ru ? "uid" : "gid"))
          .hint("as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 " + user);
    sub_uid = userns::subid_map_as(in_uid, uid, *ru);
    sub_gid = userns::subid_map_as(in_gid, gid, *rg);
    l.own_maps = false;
  } else {
    l.maps.uid_map = userns::own_map_as(in_uid, uid).to_proc();
    l.maps.gid_map = userns::own_map_as(in_gid, gid).to_proc();
  }
  // The network: taps, addresses, and /etc/resolv.conf (bound from a file that is unlinked as
  // soon as the view has started: the mount keeps it, the host keeps nothing).
  const vdens::NetSpec& net = spec.net;
  std::vector<bindmount::MountSpec> mounts;
  std::optional<TempDir> resolv_dir;
  if (net.kind == vdens::NetKind::kUplinks) {
    l.net_socket = net_socket;
    l.n_taps = static_cast<int>(net.uplinks.size());
    l.configure_links = net.configure_links;
    // Not with copy-on-write layers or FUSE: their mounts must be gone when vu cleans up after
    // them (work directories, the keeper's programs).
    l.lend_mntns = spec.cows.empty() && spec.fuse.empty();
    ::inet_pton(AF_INET6, vdens::kSlirpAddress6, &l.slirp6_addr);
    ::inet_pton(AF_INET6, vdens::kSlirpGateway6, &l.slirp6_gw);
    for (int i = 0; i < l.n_taps; ++i) {
      std::snprintf(l.tap_name[i], IFNAMSIZ, "%.*s%d", IFNAMSIZ - 4, net.iface_prefix.c_str(), i);
      const bool slirp = net.uplinks[static_cast<size_t>(i)].slirp;
      l.tap_mtu[i] = net.mtu ? net.mtu : slirp ? vdens::kSlirpMtu : vdens::kVdeMtu;
      l.tap_slirp6[i] = slirp && i == 0;  // one IPv6 default route: the first slirp interface
      if (static_cast<size_t>(i) < net.ip.size()) {
        l.tap_addr[i] = net.ip[static_cast<size_t>(i)].addr;
        l.tap_prefix[i] = net.ip[static_cast<size_t>(i)].prefix;
      }
    }
    if (!net.gateway.empty()) {
      l.has_gateway = true;
      l.gateway = net.gateway[0];
    }
  }
  const bool user_resolv = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                                       [](const auto& m) { return m.target == "/etc/resolv.conf"; });
  // The user's own --bind …:/etc/resolv.conf replaces ours rather than stacking on it: the file
  // behind ours is unlinked once the view runs, and unlinking a file detaches every mount
  // stacked on it (Linux >= 3.18), which would silently drop the user's bind.
  if (!net.dns.empty() && !user_resolv) {
    // On tmpfs when there is one: the file is freed when the view's mount namespace goes,
    // and on a disk filesystem (ext4 with discard) that costs a synchronous discard.
    // /dev/shm is writable by every local user, who can fill it: then $TMPDIR or /tmp.
    std::string text;
    for (const std::string& d : net.dns) text += "nameserver " + d + "\n";
    auto write_resolv = [&text](const TempDir& dir) -> Result<void> {
      std::string path = dir.path() + "/resolv.conf";
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!fd) return Error::sys("create", errno, path);
      VU_TRY_VOID(sys::write_all(fd.get(), text, path));
      ::chmod(dir.path().c_str(), 0755);
      return Ok{};
    };
    // Named after vu's pid: one left by a vu killed during start-up is removed by the next.
    if (auto shm = TempDir::make_owned("/dev/shm", "vu-resolv"); shm && write_resolv(*shm))
      resolv_dir.emplace(std::move(shm).value());
    if (!resolv_dir) {
      resolv_dir.emplace(VU_TRY(TempDir::make_owned("vu-resolv")));
      VU_TRY_VOID(write_resolv(*resolv_dir));
    }
    std::string path = resolv_dir->path() + "/resolv.conf";
    bindmount::MountSpec m;
    m.source = path;
    m.target = "/etc/resolv.conf";
    mounts.push_back(m);
  }
  mounts.insert(mounts.end(), spec.mounts.begin(), spec.mounts.end());
  NsView view;
  if (spec.rootfs) {
    // --rootfs R: R is bound onto itself first (the root bind, read-only and not recursive),
    // every other mount goes below it, then the first process pivots into it.
    const std::string& root = *spec.rootfs;
    std::stable_partition(mounts.begin(), mounts.end(),
                          [](const bindmount::MountSpec& m) { return m.target == "/"; });
    for (bindmount::MountSpec& m : mounts) m.target = m.target == "/" ? root : root + m.target;
    if (spec.rootfs_layer) {  // writable: overlayfs over the tree instead of its read-only bind
      view.cows.push_back(VU_TRY(fusefs::prepare_cow(*spec.rootfs_layer)));
      mounts.front() = view.cows.back().mount;
    }
    l.new_root = root;
    l.rootfs = true;
  }
  std::vector<fusefs::FuseMount> fuse;
  for (const fusefs::CowSpec& c : spec.cows) {
    view.cows.push_back(VU_TRY(fusefs::prepare_cow(c)));
    if (view.cows.back().kernel) mounts.push_back(view.cows.back().mount);
    else fuse.push_back(view.cows.back().fuse);
  }
  fuse.insert(fuse.end(), spec.fuse.begin(), spec.fuse.end());
  for (const fusefs::FuseMount& f : fuse) {
    if (f.new_root) l.new_root = f.target;
    bindmount::MountSpec m;
    m.kind = bindmount::Kind::kMountpoint;
    m.target = f.target;
    mounts.push_back(m);
  }
  std::pair<UniqueFd, UniqueFd> control;
  if (!fuse.empty()) {
    control = VU_TRY(sys::pipe());
    l.keeper_control = control.first.get();
  }
  l.fuse = &fuse;
  l.root = spec.identity == userns::Identity::kRoot;
  l.mounts = &mounts;
  l.ambient_caps = spec.ambient_caps;
  l.hostname = spec.hostname.value_or("");
  l.own_netns = plan.clone_flags & CLONE_NEWNET;
  l.lo_up = l.own_netns && spec.net.configure_links;
  l.cmd = prepare_command(spec);
  l.mask = &child_mask;

  auto report = VU_TRY(sys::pipe());
  std::pair<UniqueFd, UniqueFd> status;
  // A pid namespace: the first process stays as the view's init, so it must not share vu's
  // memory (spawn suspends vu until it execs): a fork, as with subordinate maps.
  l.pid_ns = plan.clone_flags & CLONE_NEWPID;
  if (l.pid_ns) {
    status = VU_TRY(sys::pipe());
    l.status_fd = status.second.get();
    l.report_read_fd = report.first.get();
  }
  std::pair<UniqueFd, UniqueFd> sync;
  if (!l.own_maps) sync = VU_TRY(sys::pipe());
  l.report_fd = report.second.get();
  l.sync_fd = sync.first.get();

  // Own maps: the child needs nothing from us after the clone, so share our memory and skip
  // copying page tables (vfork-style). Subordinate maps: the child waits for newuidmap, so fork.
  auto cloned = l.own_maps && !l.pid_ns ? Child::spawn(child_entry, &l, plan.clone_flags)
                           : Child::clone(plan.clone_flags);
  if (!cloned) {
    int err = cloned.error().err();
    if (err == EPERM || err == ENOSPC || err == EUSERS || err == ENOSYS || err == EINVAL)
      return userns_denied(std::string("clone(CLONE_NEWUSER): ") + errno_name(err) + " — " +
                               explain_userns_errno(err),
                           spec.backend);
    return std::move(cloned).error();
  }
  Child child = std::move(cloned).value();
  if (child.is_child()) child_main(l);

  report.second.reset();
  status.second.reset();
  view.init_status = std::move(status.first);
  if (!l.own_maps) {
    sync.first.reset();
    VU_TRY_VOID(userns::run_newidmap("newuidmap", child.pid(), *sub_uid));
    VU_TRY_VOID(userns::run_newidmap("newgidmap", child.pid(), *sub_gid));
    char go = 1;
    VU_TRY_VOID(sys::write_all(sync.second.get(), {&go, 1}, "sync pipe"));
    sync.second.reset();
  }
  ChildReport r{};
  ssize_t n;
  for (;;) {
    while ((n = ::read(report.first.get(), &r, sizeof r)) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof r) || r.stage != Stage::kKeeper) break;
    view.keeper = r.index;  // our child (CLONE_PARENT): its pid cannot be reused until reaped
  }
  control.first.reset();  // the keeper has its copy
  view.keeper_control = std::move(control.second);
  if (n == static_cast<ssize_t>(sizeof r)) {
    if (r.stage == Stage::kFuse && r.err == 0) {
      std::string text;
      char buf[4096];
      ssize_t k;
      while ((k = ::read(report.first.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(k));
      (void)child.wait();
      view.stop_keeper();
      return Error::make(ErrorKind::kSetup, text.empty() ? "a FUSE filesystem failed to mount" : text)
          .hint("the command was not run, and nothing is left mounted");
    }
    if (r.stage == Stage::kNetReady) {
      std::string answer;
      char buf[4096];
      ssize_t k;
      while ((k = ::read(report.first.get(), buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(k));
      (void)child.wait();
      return NetHelper::error_from(answer);
    }
    (void)child.wait();
    view.stop_keeper();
    return report_to_error(r, spec, l);
  }
  if (n != 0) {
    view.stop_keeper();
    return Error::make(ErrorKind::kSetup, "the view's first process died during set-up");
  }
  view.child = std::move(child);
  return view;
}

ExitStatus NsView::command_status(ExitStatus init) const {
  int status;
  if (!init_status || ::read(init_status.get(), &status, sizeof status) != static_cast<ssize_t>(sizeof status))
    return init;  // no init, or it was killed (SIGKILL: vu's own signal, or the OOM killer)
  ExitStatus st;
  st.signaled = WIFSIGNALED(status);
  st.value = st.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
  return st;
}

void NsView::stop_keeper() {
  keeper_control.reset();
  if (keeper <= 0) return;
  while (::waitpid(keeper, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  keeper = -1;
}

}  // namespace vu
