#include "runtime/pvm_backend.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/child.h"
#include "base/log.h"
#include "base/strings.h"
#include "pvm/accel_abi.h"
#include "pvm/cow.h"
#include "pvm/fuse_client.h"
#include "pvm/vstack.h"
#include "runtime/exit_codes.h"
#include "runtime/plan.h"
#include "runtime/pvm_stack_net.h"
#include "runtime/rootfs_pvm.h"

namespace vu {

namespace {

enum class Stage : int32_t { kNone = 0, kListener, kPdeathsig, kFilter, kChdir, kExec, kCaps };

struct Report {
  Stage stage;
  int32_t err;
  int32_t fd;  // kListener: the listener's number in the child
};

struct Launch {
  pid_t parent = 0;
  const pvm::Filter* filter = nullptr;
  Command* cmd = nullptr;
  const sigset_t* mask = nullptr;
  int report_fd = -1;
  int sync_fd = -1;
  // Without ptrace the child is spawned vfork-style sharing our memory and fd table: it leaves
  // the listener's number here, and the listener stays in our table when it execs.
  bool shared = false;
  int listener = -1;
  // FUSE programs (runtime/pvm_fuse.h), started once the filter is in: argv, output memfd.
  std::vector<std::vector<char*>>* servers = nullptr;
  std::vector<std::vector<char*>>* server_envp = nullptr;  // each: empty for the command's
  std::vector<int> server_out;
  uint64_t token = 0;
};

[[noreturn]] void child_fail(const Launch& l, Stage stage, int err) {
  Report r{stage, err, -1};
  (void)!::write(l.report_fd, &r, sizeof r);
  ::_exit(kExitSetup);
}

// The view's FUSE programs: siblings of the first process (children of vu, CLONE_PARENT, so the
// command never sees them as its own), traced and filtered as it is. Each registers itself with
// the monitor as a FUSE program (pvm/fuse_mount.h) before it executes. Async-signal-safe.
void start_servers(const Launch& l) {
  for (size_t i = 0; i < l.servers->size(); ++i) {
    long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) ::_exit(kExitSetup);
    if (pid > 0) continue;
    const int out = l.server_out[i];
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (::syscall(SYS_getgroups, pvm::FuseHook::kClaimBase - static_cast<int>(i), l.token) != 0) {
      ::dprintf(2, "vu: the monitor did not take this FUSE program\n");
      ::_exit(126);
    }
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 0);
    if (int e = enter_cwd(*l.cmd)) {
      ::dprintf(2, "vu: cannot enter the working directory: %s\n", ::strerror(e));
      ::_exit(126);
    }
    ::sigprocmask(SIG_SETMASK, l.mask, nullptr);
    char** argv = (*l.servers)[i].data();
    const std::vector<char*>& own = (*l.server_envp)[i];
    ::execvpe(argv[0], argv, own.empty() ? l.cmd->envp.data() : const_cast<char**>(own.data()));
    ::dprintf(2, "vu: cannot execute %s: %s\n", argv[0], ::strerror(errno));
    ::_exit(127);
  }
}

[[noreturn]] void child_main(Launch& l) {
  // First (a change of credentials may reset what follows): vu's capabilities are not the
  // view's; every set emptied before the filter and no_new_privs go in.
  if (int e = drop_given_caps()) child_fail(l, Stage::kCaps, e);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(l, Stage::kPdeathsig, errno);
  if (::getppid() != l.parent) ::_exit(kExitSetup);
  char go;
  ssize_t n;
  if (!l.shared) {
    while ((n = ::read(l.sync_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(kExitSetup);  // the parent could not trace us, and says why
  }
  int fd = l.filter->install();
  if (fd < 0) child_fail(l, Stage::kFilter, -fd);
  if (l.shared) {
    l.listener = fd;
  } else {
    Report r{Stage::kListener, 0, fd};
    if (::write(l.report_fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ::_exit(kExitSetup);
    // The listener is close-on-exec: wait until the parent holds its own copy.
    while ((n = ::read(l.sync_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(kExitSetup);
  }
  if (l.servers) {
    start_servers(l);
    // The command runs once every filesystem is mounted (vu writes a byte); end of file: it failed.
    while ((n = ::read(l.sync_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(kExitSetup);
  }
  // From here on, chdir and execve are answered by the monitor (they see the view).
  if (int e = enter_cwd(*l.cmd)) child_fail(l, Stage::kChdir, e);
  ::sigprocmask(SIG_SETMASK, l.mask, nullptr);
  child_fail(l, Stage::kExec, exec_command(*l.cmd));
}

int child_entry(void* launch) { child_main(*static_cast<Launch*>(launch)); }

mode_t tmpfs_mode(const std::string& data) {
  size_t k = data.find("mode=");
  if (k == std::string::npos) return 0755;
  return static_cast<mode_t>(std::strtoul(data.c_str() + k + 5, nullptr, 8));
}

Result<std::string> scratch_dir(std::optional<TempDir>* scratch, const std::string& name, mode_t mode) {
  // In RAM like the ns backend's tmpfs (/dev/shm), else $TMPDIR; a killed vu's is removed by
  // the next view that makes one.
  if (!*scratch) {
    auto shm = TempDir::make_owned("/dev/shm", "vu-pvm");
    scratch->emplace(shm ? std::move(shm).value() : VU_TRY(TempDir::make_owned("vu-pvm")));
  }
  std::string dir = (*scratch)->path() + "/" + name;
  if (::mkdir(dir.c_str(), 0700) < 0) return Error::sys("mkdir", errno, dir);
  if (::chmod(dir.c_str(), mode) < 0) return Error::sys("chmod", errno, dir);
  return dir;
}

// libvu-pvm-accel.so: $VU_PVM_ACCEL_LIB (empty: none), else next to vu, else ../lib/vu/.
std::string accel_library() { return sys::vu_library("VU_PVM_ACCEL_LIB", "libvu-pvm-accel.so"); }

std::string base_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }
// A mount the view cannot write: squashfs, or an image mounted with :ro (EROFS from the path map).
bool fuse_read_only(const fusefs::FuseMount& f) {
  if (f.argv.empty()) return false;
  if (base_name(f.argv[0]) == "squashfuse") return true;
  for (size_t i = 1; i + 1 < f.argv.size(); ++i)
    if (f.argv[i] == "-o" && (f.argv[i + 1] == "ro" || f.argv[i + 1].starts_with("ro,"))) return true;
  return false;
}

// Starts the view's FUSE programs and fills their shadow trees (before the command runs).
Result<void> start_fuse(const ViewSpec& spec, pvm::Config& cfg, std::vector<pvm::FuseProgram>* out) {
  int timeout_ms = 10000;
  if (const char* e = std::getenv("VU_FUSE_INIT_TIMEOUT")) timeout_ms = std::max(1, std::atoi(e)) * 1000;
  const std::string shim = fusefs::fuse_shim_library();
  for (size_t i = 0; i < spec.fuse.size(); ++i) {
    const fusefs::FuseMount& f = spec.fuse[i];
    const std::string target = pvm::normalize(f.target);
    const pvm::Mount* m = cfg.map.mountpoint(target);
    if (!m) return Error::make(ErrorKind::kSetup, "FUSE: no shadow for " + target);
    std::vector<std::string> argv = f.argv;
    const std::string prog = base_name(argv[0]);
    const bool known = prog == "squashfuse" || prog == "fuse2fs";
    if (known) argv.insert(argv.begin() + 1, "-f");  // in the foreground: vu waits for it at the end
    size_t mount_arg = argv.size();
    for (size_t k = argv.size(); k-- > 1;)
      if (argv[k] == f.target) {
        mount_arg = k;
        break;
      }
    // The name in messages and the mount table: the program, also when --fuse runs it through
    // sh -c 'exec CMD "$1"' (fusefs::parse_fuse).
    const std::string name = fusefs::program_of(f);
    // libfuse2 is the program's, not sh's: `--fuse 'fuse2fs IMG' DIR` needs the shim as
    // `--mount image:` does (else it is told to mount /dev/fd/3, which libfuse2 cannot).
    const bool libfuse2 = name == "fuse2fs";
    // -o …default_permissions…: the kernel's checks against the program's owners and modes, as
    // the view's identity is seen (0 under --root: the ids the program reports are the view's).
    std::optional<pvm::FuseTree::Access> access;
    for (size_t k = 1; k + 1 < argv.size(); ++k)
      if (argv[k] == "-o")
        for (const std::string& o : str::split(argv[k + 1], ','))
          if (o == "default_permissions") access = pvm::FuseTree::Access{cfg.root ? cfg.shown_uid : cfg.uid, cfg.root ? cfg.shown_gid : cfg.gid};
    auto p = pvm::start_fuse_program(argv, mount_arg, libfuse2, shim, m->host, target, timeout_ms, name, access);
    if (!p) return std::move(p).error().context(f.what);
    cfg.fuse_trees.push_back(p->tree);
    out->push_back(std::move(*p));
  }
  return Ok{};
}

constexpr const char* kPtraceHint =
    "the pvm backend needs ptrace of one's own children (kernel.yama.ptrace_scope <= 1, and no "
    "seccomp profile that forbids ptrace)";

// The first process is seized once it has executed the command (vfork-style, vu could not do
// it before); a fork that came first would escape the trace. Those children are seized too.
void seize_early_children(pid_t pid) {
  auto kids = sys::read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  if (!kids) return;
  for (const std::string& k : str::split(*kids, ' '))
    if (long c = std::atol(k.c_str()); c > 0) (void)pvm::Monitor::seize(static_cast<pid_t>(c));
}

// The view's network (pvm/inet.h): slirp's addresses, or lo only; the forwarded host ports
// are taken now (a port in use is an error before the command runs, as on ns); the view's
// /etc/resolv.conf names the view's nameserver (unless the user binds one of their own).
Result<void> pvm_network(const ViewSpec& spec, pvm::Config& cfg, std::optional<TempDir>* scratch,
                         std::optional<NetHelper>* helper) {
  const vdens::NetSpec& net = spec.net;
  pvm::NetConfig& n = cfg.net;
  if (net.kind == vdens::NetKind::kNone) n.kind = pvm::NetConfig::kNone;
  if (pvm_stack_mode(net)) {  // several networks, or --net-stats on slirp (runtime/pvm_stack_net.h)
    if (!helper) return Error::make(ErrorKind::kSetup, "stack mode: no place for vu-net");
    VU_TRY_VOID(pvm_stack_network(net, n, helper));
  } else if (net.kind == vdens::NetKind::kUplinks && !net.uplinks[0].slirp) {  // one VDE network (pvm/vstack.h)
    n.kind = pvm::NetConfig::kVde;
    n.configure = net.configure_links;
    if (!net.ip.empty()) n.addr = net.ip[0].addr, n.prefix = net.ip[0].prefix;
    if (!net.gateway.empty()) n.gateway = net.gateway[0];
    n.mtu = net.mtu ? net.mtu : vdens::kVdeMtu;
    n.vstack = VU_TRY(pvm::vstack_start(net.uplinks[0].vnl, net.stats));
  } else if (net.kind == vdens::NetKind::kUplinks) {  // one slirp uplink (make_pvm_plan refuses others)
    n.kind = pvm::NetConfig::kSlirp;
    n.allow_host_loopback = net.uplinks[0].allow_host_loopback;
    if (!net.ip.empty()) n.addr = net.ip[0].addr, n.prefix = net.ip[0].prefix;
    if (!net.gateway.empty()) n.gateway = net.gateway[0];
    ::inet_pton(AF_INET, vdens::kSlirpDns, &n.dns);
    if (!net.dns.empty()) (void)::inet_pton(AF_INET, net.dns[0].c_str(), &n.dns);
    ::inet_pton(AF_INET6, vdens::kSlirpAddress6, &n.addr6);
    ::inet_pton(AF_INET6, vdens::kSlirpGateway6, &n.gateway6);
    ::inet_pton(AF_INET6, vdens::kSlirpDns6, &n.dns6);
    n.mtu = net.mtu ? net.mtu : vdens::kSlirpMtu;
    for (const vdens::PortForward& f : net.forwards)
      n.forwards.push_back({f.udp, f.v6, f.host_addr, f.host_addr6, f.host_port, f.view_port, -1});
  }
  if ((n.kind == pvm::NetConfig::kSlirp || n.kind == pvm::NetConfig::kVde) && n.gateway.s_addr && n.links.empty()) {
    const uint32_t mask = n.prefix ? ~uint32_t{0} << (32 - n.prefix) : 0;
    if ((ntohl(n.gateway.s_addr) & mask) != (ntohl(n.addr.s_addr) & mask))
      return Error::make(ErrorKind::kSetup, "add default route via " + vdens::to_string(n.gateway) +
                                                ": Network is unreachable")
          .hint("the gateway must be inside a subnet given with --ip");
  }
  int failed = -1;
  if (std::string e = pvm::net_setup(n, &failed); !e.empty()) {
    std::string what = failed >= 0 ? "-p " + net.forwards[static_cast<size_t>(failed)].text + ": " : "";
    if (!n.links.empty() && e.starts_with("add default route"))
      return Error::make(ErrorKind::kSetup, e).hint("the gateway must be inside a subnet given with --ip");
    if (n.kind == pvm::NetConfig::kVde)
      return Error::make(ErrorKind::kSetup, (n.links.empty() ? "--net " + net.uplinks[0].vnl : std::string("--net")) + ": " + e)
          .hint("the VDE stack helper (vu-vstack) refused the interface's configuration");
    return Error::make(ErrorKind::kSetup, what + e)
        .hint("the host port is in use (ss -ltnup shows by what); choose another");
  }
  const bool user_resolv = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                                       [](const auto& m) { return m.target == "/etc/resolv.conf"; });
  if (net.dns.empty() || user_resolv || n.kind == pvm::NetConfig::kHost) return Ok{};
  std::string text;
  for (const std::string& d : net.dns) text += "nameserver " + d + "\n";
  std::string path = VU_TRY(scratch_dir(scratch, "net", 0755)) + "/resolv.conf";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return Error::sys("create", errno, path);
  VU_TRY_VOID(sys::write_all(fd.get(), text, path));
  cfg.map.add({"/etc/resolv.conf", path, false});
  return Ok{};
}

}  // namespace

Result<pvm::Config> make_pvm_config(const ViewSpec& spec, std::optional<TempDir>* scratch,
                                    const std::vector<fusefs::FuseMount>* fuse,
                                    std::vector<pvm::FuseTarget>* targets, pvm::PathMap* server_map,
                                    std::optional<NetHelper>* net_helper) {
  pvm::Config cfg;
  cfg.uid = ::getuid();
  cfg.gid = ::getgid();
  cfg.root = spec.identity == userns::Identity::kRoot || spec.view_ids;
  if (spec.view_ids) cfg.shown_uid = spec.view_ids->first, cfg.shown_gid = spec.view_ids->second;  // an image's User
  cfg.hostname = spec.hostname;
  cfg.noop = std::getenv("VU_PVM_NOOP") != nullptr;  // bench/pvm.sh: the bare round trip
  VU_TRY_VOID(pvm_network(spec, cfg, scratch, net_helper));
  int n_dirs = 0;
  // Synthetic directories (view path → host directory): each gets an entry for what is mounted
  // below it, so a listing shows the path as the ns backend's mirror does.
  std::vector<std::pair<std::string, std::string>> synthetic;
  auto add_entry = [&](const std::string& view, bool dir) {
    size_t k = view.rfind('/');
    std::string parent = k == 0 ? "/" : view.substr(0, k);
    for (const auto& [v, h] : synthetic) {
      if (v != parent) continue;
      std::string e = h + "/" + view.substr(k + 1);
      if (dir) (void)::mkdir(e.c_str(), 0755);
      else ::close(::open(e.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    }
  };
  // Ancestors of a target that the view does not have: empty read-only directories, as the
  // ns backend's tmpfs mirror shows them.
  auto add_ancestors = [&](const std::string& target, const std::string& what) -> Result<void> {
    std::string prefix;
    for (const std::string& comp : str::split(target.substr(1), '/')) {
      if (comp.empty()) continue;
      std::string next = prefix + "/" + comp;
      if (next == target) break;
      prefix = next;
      pvm::Resolved r = cfg.map.resolve({}, prefix, true, {});
      if (r.exists && !S_ISDIR(r.st.st_mode)) return Error::usage(what + ": " + prefix + " is not a directory");
      if (r.exists) continue;
      std::string dir = VU_TRY(scratch_dir(scratch, "dir" + std::to_string(n_dirs++), 0755));
      add_entry(prefix, true);
      synthetic.emplace_back(prefix, dir);
      cfg.map.add({prefix, dir, true});
    }
    return Ok{};
  };
  // FUSE filesystems come after the binds, tmpfs and copy-on-write directories, as in the ns
  // backend (a FUSE target inside a --cow directory covers that part of it): each is a private
  // directory (empty until its program mounts there) bound at its target.
  std::vector<bindmount::MountSpec> mounts = spec.mounts;
  std::vector<std::string> host_visible;  // FUSE targets the view has before their mount
  pvm::PathMap pre_fuse;                  // the map before them
  const size_t n_binds = mounts.size();
  for (size_t i = 0; fuse && i < fuse->size(); ++i) {
    bindmount::MountSpec b;
    b.source = VU_TRY(scratch_dir(scratch, "fuse" + std::to_string(i), 0755));
    b.target = (*fuse)[i].target;
    b.host_source = true;
    mounts.push_back(b);
    if (targets) targets->push_back({pvm::normalize(b.target), b.source, (*fuse)[i].what});
  }
  auto place = [&](size_t i) -> Result<void> {
    const bindmount::MountSpec& m = mounts[i];
    const std::string target = pvm::normalize(m.target);
    if (i == n_binds) pre_fuse = cfg.map;
    if (i >= n_binds && cfg.map.resolve({}, target, true, {}).exists) host_visible.push_back(target);
    std::string host;
    if (m.kind == bindmount::Kind::kSymlink) {
      // Made in the host directory that holds it in the view (one of vu's tmpfs directories).
      size_t k = target.rfind('/');
      pvm::Resolved parent = cfg.map.resolve({}, k == 0 ? "/" : target.substr(0, k), true, {});
      if (!parent.exists || ::symlink(m.source.c_str(), (parent.host + target.substr(k)).c_str()) < 0)
        return Error::sys("symlink", parent.exists ? errno : ENOENT, target);
      return Ok{};
    }
    if (m.kind == bindmount::Kind::kTmpfs) {
      host = VU_TRY(scratch_dir(scratch, "tmpfs" + std::to_string(i), tmpfs_mode(m.data)));
      if (pvm_ignores_size(m))
        VU_LOG_WARN("--tmpfs " << m.target << ": size= is not enforced by the pvm backend (its tmpfs "
                    "is a directory in " << (*scratch)->path() << ")");
    } else {
      // The source as the view sees it so far (a later bind may take its source from an
      // earlier one), symlinks resolved; a host path as it is (host_source: --rootfs).
      pvm::Resolved r = (m.host_source ? pvm::PathMap() : cfg.map).resolve({}, m.source, true, {});
      if (r.err || !r.exists)
        return Error::sys("bind source", r.err ? r.err : ENOENT, m.source, ErrorKind::kUsage)
            .context(bindmount::to_string(m));
      host = r.host;
    }
    if (i == 0 && target == "/" && spec.rootfs_layer) {  // --rootfs TREE --cow LAYER:/ (runtime/rootfs_pvm.h)
      VU_TRY_VOID(rootfs_pvm_cow_root(spec, host, cfg));
      return Ok{};
    }
    VU_TRY_VOID(add_ancestors(target, bindmount::to_string(m)));
    struct stat st;
    add_entry(target, ::stat(host.c_str(), &st) < 0 || S_ISDIR(st.st_mode));
    cfg.map.add({target, host, m.read_only});
    return Ok{};
  };
  for (size_t i = 0; i < n_binds; ++i) VU_TRY_VOID(place(i));
  // Copy-on-write directories (--cow): the monitor's own (pvm/cow.h), after the binds as on
  // the ns backend; DIR's host directory as the view sees it so far is the lower layer.
  for (const fusefs::CowSpec& c : spec.cows) {
    const std::string target = pvm::normalize(c.target);
    pvm::Resolved r = cfg.map.resolve({}, target, true, {});
    if (r.err || !r.exists || !S_ISDIR(r.st.st_mode))
      return Error::usage("--cow: target " + target + " is not a directory in the view").hint("the target must exist");
    if (r.cow) return Error::usage("--cow " + c.layer + ":" + target + ": inside another copy-on-write directory")
                   .hint("give one layer for the outer directory");
    VU_TRY_VOID(pvm::Cow::prepare_layer(c.layer, r.host));
    cfg.map.add({target, r.host, false, VU_TRY(pvm::Cow::open(c.layer, r.host, cfg.uid, cfg.gid))});
  }
  // Environment B's FUSE targets, after the copy-on-write directories (ns order).
  for (size_t i = n_binds; i < mounts.size(); ++i) VU_TRY_VOID(place(i));
  // FUSE mounts the monitor serves (environment A, pvm/fuse_client.h; no `fuse` programs for the
  // kernel): a shadow directory each, filled by start_pvm_view once its program answers.
  for (size_t i = 0; !fuse && i < spec.fuse.size(); ++i) {
    const fusefs::FuseMount& f = spec.fuse[i];
    const std::string target = pvm::normalize(f.target);
    std::string shadow = VU_TRY(scratch_dir(scratch, "fuse" + std::to_string(i), 0700));
    VU_TRY_VOID(add_ancestors(target, f.what));
    add_entry(target, true);
    cfg.map.add({target, shadow, fuse_read_only(f)});
  }
  // For each mountpoint, the directory that holds it: the fast path must not answer lookups
  // in it (pvm/accel.c), and when the host's directory lacks the name, the monitor lists it
  // (getdents64).
  cfg.accel_lib = accel_library();
  std::vector<std::string> fuse_views;  // FUSE targets (B's and A's), as the view names them
  for (size_t i = n_binds; i < mounts.size(); ++i) fuse_views.push_back(pvm::normalize(mounts[i].target));
  for (size_t i = 0; !fuse && i < spec.fuse.size(); ++i) fuse_views.push_back(pvm::normalize(spec.fuse[i].target));
  for (const pvm::Mount& m : cfg.map.mounts()) {
    if (m.view == "/") continue;
    size_t k = m.view.rfind('/');
    pvm::Resolved parent = cfg.map.resolve({}, k == 0 ? "/" : m.view.substr(0, k), true, {});
    // Every directory above the mountpoint: lookups below them may meet it.
    for (size_t a = 0; a != std::string::npos && a <= k; a = m.view.find('/', a + 1)) {
      pvm::Resolved anc = cfg.map.resolve({}, a == 0 ? "/" : m.view.substr(0, a), true, {});
      std::pair<uint64_t, uint64_t> id{anc.st.st_dev, anc.st.st_ino};
      if (anc.exists && std::find(cfg.accel_ancestors.begin(), cfg.accel_ancestors.end(), id) == cfg.accel_ancestors.end())
        cfg.accel_ancestors.push_back(id);
    }
    if (!parent.exists) continue;
    cfg.accel_holders.emplace_back(parent.st.st_dev, parent.st.st_ino);
    // A copy-on-write directory lists its own names (Cow::listing): a FUSE target inside one
    // is listed when a layer has it (the ns backend mounts on what the merged directory has).
    // Other mountpoints the layers lack are listed, as ns lists them (--rootfs TREE --cow
    // LAYER:/ shows /etc/hosts, /home…).
    const bool fuse_target = std::find(fuse_views.begin(), fuse_views.end(), m.view) != fuse_views.end();
    if (!S_ISDIR(parent.st.st_mode) || (parent.cow && fuse_target)) continue;
    std::string name = m.view.substr(k + 1);
    struct stat there, src;
    if (::lstat((parent.host + "/" + name).c_str(), &there) == 0) continue;
    if (::stat(m.host.c_str(), &src) < 0) continue;
    cfg.listing.push_back({{parent.st.st_dev, parent.st.st_ino},
                           {name, static_cast<unsigned char>(S_ISDIR(src.st_mode) ? DT_DIR : DT_REG),
                            static_cast<uint64_t>(src.st_ino)}});
  }
  if (cfg.accel_holders.size() > VU_ACCEL_MAX_HOLDERS) cfg.accel_lib.clear();
  // Its native openat would read a shadow file not filled yet (fuse_client.h).
  if (!fuse && !spec.fuse.empty()) cfg.accel_lib.clear();
  // Below a copy-on-write directory the fast path must know the layers (the mount table in its
  // environment, pvm/accel.c): without the table (too large) no fast path at all.
  if (cfg.map.has_cow() && (cfg.map.mounts().size() > VU_ACCEL_MAX_MOUNTS || cfg.accel_ancestors.size() > VU_ACCEL_MAX_HOLDERS))
    cfg.accel_lib.clear();
  VU_TRY_VOID(rootfs_pvm_config(spec, cfg));  // --rootfs: the tree's loader (runtime/rootfs_pvm.h)
  if (server_map) {
    // The FUSE programs see what was at their target before their own mount (vu-cowfs reads its
    // lower layer there; a lookup through its own mount would call itself).
    *server_map = pre_fuse;
    for (const pvm::Mount& m : cfg.map.mounts()) {
      bool old = false;
      for (const pvm::Mount& p : pre_fuse.mounts()) old = old || (p.view == m.view && p.host == m.host);
      if (!old && std::find(host_visible.begin(), host_visible.end(), m.view) == host_visible.end()) server_map->add(m);
    }
  }
  return cfg;
}

namespace {
// The error a report of the first process stands for.
Error report_error(const Command& cmd, const Report& r) {
  switch (r.stage) {
    case Stage::kFilter:
      return Error::sys("install the seccomp filter", r.err)
          .hint("the pvm backend needs seccomp user notification (Linux >= 5.0); 'vu probe' checks it");
    case Stage::kPdeathsig: return Error::sys("prctl(PR_SET_PDEATHSIG)", r.err);
    case Stage::kCaps: return Error::sys("drop vu's capabilities in the view", r.err);
    case Stage::kChdir: return chdir_error(cmd, r.err);
    case Stage::kExec: return exec_error(cmd, r.err);
    case Stage::kNone:
    case Stage::kListener: break;
  }
  return Error::make(ErrorKind::kSetup, "the view's first process failed to start");
}
}  // namespace

std::optional<Error> PvmView::failure(const std::string& text) const {
  if (text.size() < sizeof(Report)) return std::nullopt;
  Report r;
  std::memcpy(&r, text.data(), sizeof r);
  return report_error(cmd, r);
}

Result<PvmView> start_pvm_view(const ViewSpec& spec, const sigset_t& child_mask) {
  PvmView v;
  std::vector<fusefs::FuseMount> programs;
  std::vector<pvm::FuseTarget> targets;
  pvm::PathMap server_map;
  std::optional<PvmFuseEnv> env;
  if (has_fuse_mounts(spec) && !pvm_serves_fuse()) {
    // Environment B: the kernel's FUSE through the setuid fusermount3. Otherwise (A) the
    // monitor serves the programs itself (pvm/fuse_client.h).
    env = probe_pvm_fuse();
    if (env->b) programs = VU_TRY(pvm_fuse_programs(spec));
    else env.reset();
  }
  pvm::Config cfg = VU_TRY(make_pvm_config(spec, &v.scratch, env ? &programs : nullptr, &targets, &server_map, &v.net));
  if (cfg.net.vstack) {
    v.stack = cfg.net.vstack;
    v.vstack = pvm::vstack_pid(*cfg.net.vstack);
  }
  std::vector<std::vector<char*>> server_argv;
  if (env) {
    auto hook = std::make_shared<pvm::FuseHook>(targets, std::make_shared<pvm::FusermountMounter>(env->fusermount, env->allow_other));
    pvm::Config server = cfg;
    server.map = server_map;
    server.root = false;  // real ids: what they report is checked by the kernel against host ids
    server.accel_lib.clear();
    server.accel_holders.clear();
    hook->set_server_config(std::move(server));
    cfg.fuse = hook;
    v.fuse = std::make_unique<PvmFuse>(hook, programs);
    for (const fusefs::FuseMount& m : v.fuse->programs()) {
      std::vector<char*> a;
      for (const std::string& s : m.argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      server_argv.push_back(std::move(a));
    }
  } else if (auto r = start_fuse(spec, cfg, &v.served); !r) {
    (void)stop_pvm_fuse(v);
    return std::move(r).error();
  }
  pvm::Filter filter = VU_TRY(pvm::Filter::build(cfg));
  v.cmd = prepare_command(spec);
  if (!cfg.accel_lib.empty() && !pvm::needs_ptrace(cfg)) {
    // Nothing traces execve to add the fast path's library: the first command gets it here and
    // the library passes it on (unless the user preloads something of their own).
    bool own_preload = false;
    for (const std::string& e : v.cmd.env) own_preload |= e.compare(0, 11, "LD_PRELOAD=") == 0;
    if (!own_preload) {
      v.cmd.env.push_back("LD_PRELOAD=" + cfg.accel_lib);
      v.cmd.env.push_back(pvm::accel_env(cfg));
      v.cmd.envp.clear();
      for (std::string& e : v.cmd.env) v.cmd.envp.push_back(e.data());
      v.cmd.envp.push_back(nullptr);
    }
  }
  Launch l;
  l.parent = ::getpid();
  l.filter = &filter;
  l.cmd = &v.cmd;
  l.mask = &child_mask;
  auto report = VU_TRY(sys::pipe());
  l.report_fd = report.second.get();
  // A program's environment: the command's, with the shim first in LD_PRELOAD where it goes
  // (fusefs::fuse_program_env).
  std::vector<std::vector<std::string>> server_env;
  std::vector<std::vector<char*>> server_envp;
  if (v.fuse) {
    server_env.reserve(v.fuse->programs().size());  // (the pointers below stay valid)
    server_envp.reserve(v.fuse->programs().size());
    for (const fusefs::FuseMount& m : v.fuse->programs()) {
      server_env.push_back(fusefs::fuse_program_env(m, v.cmd.env));
      server_envp.emplace_back();
      if (server_env.back().empty()) continue;
      for (std::string& e : server_env.back()) server_envp.back().push_back(e.data());
      server_envp.back().push_back(nullptr);
    }
    l.server_envp = &server_envp;
    l.servers = &server_argv;
    l.server_out = v.fuse->outputs();
    l.token = v.fuse->hook().token();
  }

  if (!pvm::needs_ptrace(cfg)) {
    // Nothing to trace: spawn vfork-style (no copy of our page tables, ~1.5 ms less start-up
    // here), sharing the fd table so the listener is ours the moment the child installs it.
    l.shared = true;
    Child child = VU_TRY(Child::spawn(child_entry, &l, CLONE_FILES));
    // Traced only for its lifetime: PTRACE_O_EXITKILL and the fork options make every
    // descendant a tracee that dies with vu, even when vu is killed with SIGKILL (no
    // seccomp stops: the filter has no SECCOMP_RET_TRACE rule without mounts).
    auto traced = pvm::Monitor::seize(child.pid());
    if (traced) seize_early_children(child.pid());
    report.second.reset();  // the child's copy went with its exec (close-on-exec)
    UniqueFd listener(l.listener);
    Report r{};
    ssize_t n;
    while ((n = ::read(report.first.get(), &r, sizeof r)) < 0 && errno == EINTR) {
    }
    if (n == static_cast<ssize_t>(sizeof r)) {
      (void)child.wait();
      return report_error(v.cmd, r);
    }
    if (n != 0 || !listener) return Error::make(ErrorKind::kSetup, "the view's first process died during set-up");
    if (!traced) return std::move(traced).error().context("tracing the view's first process").hint(kPtraceHint);
    v.monitor = std::make_unique<pvm::Monitor>(std::move(cfg), std::move(listener));
    v.child = std::move(child);
    return v;
  }

  auto sync = VU_TRY(sys::pipe());
  l.sync_fd = sync.first.get();
  Child child = VU_TRY(Child::clone(0));
  if (child.is_child()) child_main(l);
  report.second.reset();
  sync.first.reset();
  if (pvm::needs_ptrace(cfg)) {
    if (auto r = pvm::Monitor::seize(child.pid()); !r)
      return std::move(r).error().context("tracing the view's first process").hint(kPtraceHint);
  }
  char go = 1;
  VU_TRY_VOID(sys::write_all(sync.second.get(), {&go, 1}, "sync pipe"));
  Report r{};
  ssize_t n;
  while ((n = ::read(report.first.get(), &r, sizeof r)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof r) || r.stage != Stage::kListener) {
    // Before the listener exists the child's calls are native: it cannot be stuck on us.
    if (n == static_cast<ssize_t>(sizeof r)) return report_error(v.cmd, r);
    return Error::make(ErrorKind::kSetup, "the view's first process died during set-up");
  }
  UniqueFd listener(static_cast<int>(::syscall(SYS_pidfd_getfd, child.pidfd(), r.fd, 0)));
  if (!listener) return Error::sys("pidfd_getfd", errno, "the seccomp listener");
  VU_TRY_VOID(sys::write_all(sync.second.get(), {&go, 1}, "sync pipe"));
  v.monitor = std::make_unique<pvm::Monitor>(std::move(cfg), std::move(listener));
  v.report = std::move(report.first);
  if (v.fuse) v.go = std::move(sync.second);
  v.child = std::move(child);
  return v;
}

int stop_pvm_fuse(PvmView& v) {
  int rc = 0;
  for (auto it = v.served.rbegin(); it != v.served.rend(); ++it) {
    if (pvm::stop_fuse_program(*it, 10000)) {
      VU_LOG_ERROR("the view's changes under " << it->tree->view() << " were not all written back to "
                                                << it->name << (it->tree->client().alive() ? "" : " (it has exited)"));
      rc = kExitSetup;
    }
  }
  v.served.clear();
  return rc;
}

}  // namespace vu
