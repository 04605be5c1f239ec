#include "runtime/pvm_backend.h"

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

#include "base/log.h"
#include "base/strings.h"
#include "pvm/accel_abi.h"
#include "pvm/fuse_client.h"
#include "runtime/exit_codes.h"
#include "runtime/plan.h"

namespace vu {

namespace {

enum class Stage : int32_t { kNone = 0, kListener, kPdeathsig, kFilter, kChdir, kExec };

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
};

[[noreturn]] void child_fail(const Launch& l, Stage stage, int err) {
  Report r{stage, err, -1};
  (void)!::write(l.report_fd, &r, sizeof r);
  ::_exit(kExitSetup);
}

[[noreturn]] void child_main(Launch& l) {
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
std::string accel_library() {
  if (const char* env = std::getenv("VU_PVM_ACCEL_LIB")) return env;
  std::string dir = sys::exe_dir();
  if (dir.empty()) return {};
  for (std::string p : {dir + "/libvu-pvm-accel.so", dir + "/../lib/vu/libvu-pvm-accel.so"})
    if (::access(p.c_str(), R_OK) == 0) return p;
  return {};
}

// libvu-fuse-shim.so (pvm/fuse_shim.c), found like the fast path's library.
std::string fuse_shim_library() {
  if (const char* env = std::getenv("VU_FUSE_SHIM_LIB")) return env;
  std::string dir = sys::exe_dir();
  if (dir.empty()) return {};
  for (std::string p : {dir + "/libvu-fuse-shim.so", dir + "/../lib/vu/libvu-fuse-shim.so"})
    if (::access(p.c_str(), R_OK) == 0) return p;
  return {};
}

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
  const std::string shim = fuse_shim_library();
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
    std::string name = prog;
    if (argv.size() > 2 && argv[1] == "-c" && argv[2].starts_with("exec ")) {
      std::string cmd = argv[2].substr(5);
      name = base_name(cmd.substr(0, cmd.find(' ')));
    }
    auto p = pvm::start_fuse_program(argv, mount_arg, prog == "fuse2fs", shim, m->host, target, timeout_ms, name);
    if (!p) return std::move(p).error().context(f.what);
    cfg.fuse.push_back(p->tree);
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

}  // namespace

Result<pvm::Config> make_pvm_config(const ViewSpec& spec, std::optional<TempDir>* scratch) {
  pvm::Config cfg;
  cfg.uid = ::getuid();
  cfg.gid = ::getgid();
  cfg.root = spec.identity == userns::Identity::kRoot;
  cfg.hostname = spec.hostname;
  cfg.noop = std::getenv("VU_PVM_NOOP") != nullptr;  // bench/pvm.sh: the bare round trip
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
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const bindmount::MountSpec& m = spec.mounts[i];
    const std::string target = pvm::normalize(m.target);
    std::string host;
    if (m.kind == bindmount::Kind::kSymlink) {
      // Made in the host directory that holds it in the view (one of vu's tmpfs directories).
      size_t k = target.rfind('/');
      pvm::Resolved parent = cfg.map.resolve({}, k == 0 ? "/" : target.substr(0, k), true, {});
      if (!parent.exists || ::symlink(m.source.c_str(), (parent.host + target.substr(k)).c_str()) < 0)
        return Error::sys("symlink", parent.exists ? errno : ENOENT, target);
      continue;
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
    VU_TRY_VOID(add_ancestors(target, bindmount::to_string(m)));
    struct stat st;
    add_entry(target, ::stat(host.c_str(), &st) < 0 || S_ISDIR(st.st_mode));
    cfg.map.add({target, host, m.read_only});
  }
  // FUSE mounts the monitor serves (pvm/fuse_client.h): a shadow directory each, filled by
  // start_pvm_view once its program answers.
  for (size_t i = 0; i < spec.fuse.size(); ++i) {
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
  for (const pvm::Mount& m : cfg.map.mounts()) {
    if (m.view == "/") continue;
    size_t k = m.view.rfind('/');
    pvm::Resolved parent = cfg.map.resolve({}, k == 0 ? "/" : m.view.substr(0, k), true, {});
    if (!parent.exists) continue;
    cfg.accel_holders.emplace_back(parent.st.st_dev, parent.st.st_ino);
    if (!S_ISDIR(parent.st.st_mode)) continue;
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
  if (!spec.fuse.empty()) cfg.accel_lib.clear();
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
  pvm::Config cfg = VU_TRY(make_pvm_config(spec, &v.scratch));
  if (auto r = start_fuse(spec, cfg, &v.fuse); !r) {
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
  v.child = std::move(child);
  return v;
}

int stop_pvm_fuse(PvmView& v) {
  int rc = 0;
  for (auto it = v.fuse.rbegin(); it != v.fuse.rend(); ++it) {
    if (pvm::stop_fuse_program(*it, 10000)) {
      VU_LOG_ERROR("the view's changes under " << it->tree->view() << " were not all written back to "
                                                << it->name << (it->tree->client().alive() ? "" : " (it has exited)"));
      rc = kExitSetup;
    }
  }
  v.fuse.clear();
  return rc;
}

}  // namespace vu
