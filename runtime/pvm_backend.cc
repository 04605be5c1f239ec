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
    // Ancestors of the target that the view does not have: empty read-only directories, as the
    // ns backend's tmpfs mirror shows them.
    std::string prefix;
    for (const std::string& comp : str::split(target.substr(1), '/')) {
      if (comp.empty()) continue;
      std::string next = prefix + "/" + comp;
      if (next == target) break;
      prefix = next;
      pvm::Resolved r = cfg.map.resolve({}, prefix, true, {});
      if (r.exists && !S_ISDIR(r.st.st_mode))
        return Error::usage(bindmount::to_string(m) + ": " + prefix + " is not a directory");
      if (r.exists) continue;
      std::string dir = VU_TRY(scratch_dir(scratch, "dir" + std::to_string(n_dirs++), 0755));
      add_entry(prefix, true);
      synthetic.emplace_back(prefix, dir);
      cfg.map.add({prefix, dir, true});
    }
    struct stat st;
    add_entry(target, ::stat(host.c_str(), &st) < 0 || S_ISDIR(st.st_mode));
    cfg.map.add({target, host, m.read_only});
  }
  // For each mountpoint, the directory that holds it: the fast path must not answer lookups
  // in it (pvm/accel.c), and when the host's directory lacks the name, the monitor lists it
  // (getdents64).
  cfg.accel_lib = accel_library();
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

}  // namespace vu
