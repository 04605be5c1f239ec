#include "runtime/pvm_fuse.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/log.h"
#include "base/strings.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "fusefs/keeper.h"
#include "runtime/supervisor.h"

namespace vu {

namespace {

long now_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  return "stopped";
}

const std::string& program_name(const fusefs::FuseMount& m) { return m.argv[0] == "/bin/sh" ? m.what : m.argv[0]; }

// True when every thread of PID waits: one at least for a request on /dev/fuse, the others on
// a futex (libfuse's main thread waiting for its workers). Nothing is in progress then: the
// program can be asked to end (see teardown) without cutting a request or its write-back.
bool idle_on_fuse(pid_t pid) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(task.c_str());
  if (!d) return false;
  bool reader = false, busy = false;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto w = sys::read_file(task + "/" + e->d_name + "/wchan", 64);
    if (!w) { busy = true; break; }
    while (!w->empty() && (w->back() == '\n' || w->back() == ' ')) w->pop_back();
    if (*w == "fuse_dev_do_read") reader = true;
    else if (w->rfind("futex", 0) != 0) busy = true;
  }
  ::closedir(d);
  return reader && !busy;
}

// The directory PREFIX.PID.XXXXXX (TempDir::make_owned) that `mnt` lies in, if any, for
// prefixes vu mounts in; its PID in *pid.
std::string owned_dir_of(const std::string& mnt, long* pid) {
  for (const char* prefix : {"/vu-pvm.", "/vu-fuse-probe."}) {
    size_t k = mnt.find(prefix);
    if (k == std::string::npos) continue;
    const char* digits = mnt.c_str() + k + std::strlen(prefix);
    char* end;
    *pid = std::strtol(digits, &end, 10);
    if (*pid <= 0 || end == digits || *end != '.') continue;
    size_t slash = mnt.find('/', static_cast<size_t>(end - mnt.c_str()));
    return mnt.substr(0, slash);
  }
  return {};
}

}  // namespace

int unmount_stale(const std::string& fusermount) {
  auto info = sys::read_file("/proc/self/mountinfo", 1 << 22);
  if (!info || fusermount.empty()) return 0;
  const std::string mine = "user_id=" + std::to_string(::getuid());
  int n = 0;
  for (const std::string& line : str::split(*info, '\n')) {
    // Fields: 4 the mount point; after " - ": type, source, the superblock's options.
    std::vector<std::string> f = str::split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 4 || !str::starts_with(dash[1], "fuse")) continue;
    const std::vector<std::string> opts = str::split(dash[3], ',');
    if (std::find(opts.begin(), opts.end(), mine) == opts.end()) continue;
    const std::string mnt = fusefs::unescape_mountinfo(f[4]);
    long pid = 0;
    const std::string dir = owned_dir_of(mnt, &pid);
    if (dir.empty() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    // The owner's lock (TempDir::make_owned): a live vu in another pid namespace holds it. Not
    // for the probe's trial mount, which is the directory itself: opening it is ENOTCONN when
    // its vu is gone, and would wait for ever for a live one's (a trial mount never answers
    // INIT); such a mount lives a few milliseconds in a live vu.
    UniqueFd lock;
    if (dir != mnt) {
      lock.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      struct stat st;
      if (!lock || ::fstat(lock.get(), &st) < 0 || st.st_uid != ::getuid() || ::flock(lock.get(), LOCK_EX | LOCK_NB) < 0)
        continue;
    }
    pid_t child = ::fork();
    if (child == 0) {
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(fusermount.c_str(), fusermount.c_str(), "-u", "-q", "-z", "--", mnt.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    while (child > 0 && ::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      VU_LOG_INFO("unmounted " << mnt << ", left by a vu that was killed with its watcher");
      ++n;
    }
  }
  return n;
}

namespace {

std::string find_fusermount() {
  for (const char* p : {"/usr/bin/fusermount3", "/bin/fusermount3", "/usr/local/bin/fusermount3"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

}  // namespace

// The answer to INIT, for each mounted target (environment B). The kernel sends INIT at mount
// time and holds every later call on the mount until the program answers it — uninterruptibly
// but for SIGKILL — so a program that mounts and never answers would hang the command at its
// first look there. A thread per mount asks for its statfs (the first call that needs INIT's
// answer, and one more answer); wait_mounted() waits for them, bounded. The threads are
// detached: one still waiting when the programs are killed gets ENOTCONN then (the connection
// ends with the program's descriptor), and the state is shared with them.
struct PvmFuse::InitChecks {
  std::mutex mu;
  std::vector<int> result;  // -1: waiting; 0 or an errno
  UniqueFd event{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
};

namespace {

int init_timeout_ms() {
  if (const char* e = std::getenv("VU_FUSE_INIT_TIMEOUT")) return std::max(1, std::atoi(e)) * 1000;
  return 10000;
}

}  // namespace

void PvmFuse::start_init_checks() {
  init_ = std::make_shared<InitChecks>();
  init_->result.assign(hook_->targets().size(), -1);
  for (size_t i = 0; i < hook_->targets().size(); ++i) {
    std::thread([c = init_, i, host = hook_->targets()[i].host] {
      struct statfs s;
      int rc = ::statfs(host.c_str(), &s) == 0 ? 0 : errno;
      std::lock_guard<std::mutex> lock(c->mu);
      c->result[i] = rc;
      uint64_t one = 1;
      (void)!::write(c->event.get(), &one, sizeof one);
    }).detach();
  }
}

// Ok once every mount answered; an error when one failed or the deadline passed; nullopt: wait.
std::optional<Result<void>> PvmFuse::init_outcome(long now, long deadline) {
  std::lock_guard<std::mutex> lock(init_->mu);
  bool waiting = false;
  for (size_t i = 0; i < init_->result.size(); ++i) {
    const int r = init_->result[i];
    const std::string who = program_name(programs_[i]) + " mounted " + programs_[i].target;
    if (r > 0)
      return Result<void>(Error::make(ErrorKind::kSetup, who + " but its filesystem fails: " + std::strerror(r) + output_of(i)));
    if (r < 0 && now >= deadline)
      return Result<void>(Error::make(ErrorKind::kSetup, who + " but did not answer the kernel's INIT within " +
                                                           std::to_string(init_timeout_ms() / 1000) + " s" + output_of(i) +
                                                           "\n  ($VU_FUSE_INIT_TIMEOUT sets the bound in seconds)"));
    waiting |= r < 0;
  }
  if (waiting) return std::nullopt;
  return Result<void>(Ok{});
}

PvmFuseEnv probe_pvm_fuse() {
  PvmFuseEnv e;
  std::vector<std::string> no;
  e.fusermount = find_fusermount();
  struct stat st;
  if (e.fusermount.empty()) no.push_back("fusermount3 is not installed (apt-get install fuse3)");
  else if (::stat(e.fusermount.c_str(), &st) < 0 || !(st.st_mode & S_ISUID) || st.st_uid != 0)
    no.push_back(e.fusermount + " is not setuid root");
  if (int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC); fd >= 0) ::close(fd);
  else no.push_back(std::string("/dev/fuse: ") + std::strerror(errno));
  if (auto s = sys::read_file("/proc/self/status")) {
    size_t k = s->find("NoNewPrivs:");
    if (k != std::string::npos && std::atoi(s->c_str() + k + 11) == 1)
      no.push_back("vu runs under no_new_privs (a setuid fusermount3 would run without privilege)");
  }
  if (no.empty()) {
    unmount_stale(e.fusermount);  // what a vu killed together with its watchers left (pvm_fuse.h)
    // A trial: fusermount3 mounts an empty directory (no program behind it) and unmounts it.
    // A container's filter refuses mount(2) to setuid helpers too, which only this shows.
    auto dir = TempDir::make_owned("vu-fuse-probe");  // owned: a vu killed meanwhile leaves it to the next
    if (!dir) {
      no.push_back("a directory for the trial mount: " + dir.error().to_string());
    } else {
      pvm::FuseTarget t{"/", dir->path(), "probe"};
      pvm::FuseMountRequest req;
      req.target = &t;
      req.source = "vu-probe";
      pvm::FusermountMounter m(e.fusermount, false);
      auto fd = m.mount(req);
      m.unmount_all();
      if (!fd) no.push_back("a trial mount failed: " + fd.error().message());
    }
  }
  if (no.empty()) {
    e.b = true;
    e.why = "environment B: /dev/fuse opens, " + e.fusermount + " is setuid root and vu is not under no_new_privs";
  } else {
    e.why = "environment A: " + str::join(no, "; ");
  }
  if (auto conf = sys::read_file("/etc/fuse.conf", 65536))
    for (const std::string& line : str::split(*conf, '\n'))
      if (str::trim(line) == "user_allow_other") e.allow_other = true;
  return e;
}

bool has_fuse_mounts(const ViewSpec& spec) { return !spec.fuse.empty(); }

Result<std::vector<fusefs::FuseMount>> pvm_fuse_programs(const ViewSpec& spec) {
  std::vector<fusefs::FuseMount> out;
  const bool root = spec.identity == userns::Identity::kRoot;
  for (fusefs::FuseMount m : spec.fuse) {
    if (m.argv[0] == "fuse2fs" || m.argv[0] == "squashfuse") {
      // In the foreground: vu waits for the very process it started when it unmounts.
      m.argv.push_back("-f");
      // fuse2fs's fakeroot lets every caller do anything; under --root that is the view's
      // root (the kernel's default_permissions would check the host uid against the image's
      // owners, which the ns backend maps to the view's root).
      if (root && m.argv[0] == "fuse2fs")
        for (std::string& a : m.argv)
          if (size_t k = a.find(",default_permissions"); k != std::string::npos) a.erase(k, 20);
    }
    out.push_back(std::move(m));
  }
  return out;
}

PvmFuse::PvmFuse(std::shared_ptr<pvm::FuseHook> hook, std::vector<fusefs::FuseMount> programs)
    : hook_(std::move(hook)), programs_(std::move(programs)) {
  for (size_t i = 0; i < programs_.size(); ++i) out_.emplace_back(::memfd_create("vu-fuse-output", MFD_CLOEXEC));
}

PvmFuse::~PvmFuse() {
  // Whatever happened: nothing stays mounted (the programs die with vu's view).
  if (!torn_down_) hook_->mounter().unmount_all();
}

std::vector<int> PvmFuse::outputs() const {
  std::vector<int> v;
  for (const UniqueFd& f : out_) v.push_back(f.get());
  return v;
}

std::string PvmFuse::output_of(size_t i) const {
  std::string out;
  if (i < out_.size() && out_[i]) {
    char buf[4096];
    ssize_t n;
    while (out.size() < 1 << 16 && (n = ::pread(out_[i].get(), buf, sizeof buf, static_cast<off_t>(out.size()))) > 0)
      out.append(buf, static_cast<size_t>(n));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  if (out.size() > 2000) out = "…" + out.substr(out.size() - 2000);
  return out.empty() ? " (it printed nothing)" : ", saying:\n  " + out;
}

Result<void> PvmFuse::wait_mounted(pvm::Monitor& monitor, pid_t first, int signal_fd) {
  const long deadline = now_ms() + kMountTimeoutMs;
  for (;;) {
    if (auto f = hook_->failure()) return Error::make(ErrorKind::kSetup, *f);
    if (hook_->all_mounted()) {
      // Mounted; then each program must answer the kernel's INIT (see InitChecks).
      if (!init_) {
        start_init_checks();
        init_deadline_ = now_ms() + init_timeout_ms();
      }
      if (auto r = init_outcome(now_ms(), init_deadline_)) {
        if (!*r)  // the programs go now: teardown's wait would wait for a program that never reads
          for (pid_t p : hook_->server_pids()) ::kill(p, SIGKILL);
        return std::move(*r);
      }
    }
    // Exits and ptrace stops (the programs' execve and chdir are answered here).
    int status;
    for (pid_t p; (p = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0;) {
      if (monitor.on_wait_status(p, status)) continue;
      if (p == first) return Error::make(ErrorKind::kSetup, "the view's first process " + describe_status(status) + " while its filesystems were mounted");
      int i = hook_->server_index(p);
      if (i < 0 || hook_->is_mounted(static_cast<size_t>(i))) continue;  // e.g. a program that daemonized
      const fusefs::FuseMount& m = programs_[static_cast<size_t>(i)];
      if (hook_->failure()) break;
      return Error::make(ErrorKind::kSetup, program_name(m) + " " + describe_status(status) + " without mounting " +
                                                m.target + output_of(static_cast<size_t>(i)));
    }
    long left = (init_ ? init_deadline_ : deadline) - now_ms();
    if (left <= 0 && !init_) {
      std::vector<std::string> names;
      for (size_t i = 0; i < programs_.size(); ++i)
        if (!hook_->is_mounted(i)) names.push_back(program_name(programs_[i]) + " (" + programs_[i].target + ")" + output_of(i));
      return Error::make(ErrorKind::kSetup, "no FUSE mount within " + std::to_string(kMountTimeoutMs / 1000) +
                                                " s from " + str::join(names, ", ") + "; the view was ended");
    }
    // monitor.fd(): ptrace stops worked out on the monitor's workers, applied here (the first
    // process's chdir into a FUSE target waits for that).
    struct pollfd p[4] = {{signal_fd, POLLIN, 0}, {hook_->event_fd(), POLLIN, 0}, {monitor.fd(), POLLIN, 0},
                          {init_ ? init_->event.get() : -1, POLLIN, 0}};
    if (::poll(p, 4, static_cast<int>(std::clamp<long>(left, 0, 1000))) < 0 && errno != EINTR) return Error::sys("poll", errno);
    if (p[3].revents & POLLIN) {
      uint64_t v;
      (void)!::read(init_->event.get(), &v, sizeof v);
    }
    if (p[2].revents & POLLIN) monitor.on_ptrace_done();
    if (p[1].revents & POLLIN) {
      uint64_t v;
      (void)!::read(hook_->event_fd(), &v, sizeof v);
    }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(signal_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGCHLD) continue;
        return Error::make(ErrorKind::kSetup, std::string("interrupted by ") + ::strsignal(static_cast<int>(si.ssi_signo)) +
                                                  " while the view's filesystems were mounted");
      }
    }
  }
}

void PvmFuse::on_exit(pid_t pid, int status) {
  int i = hook_->server_index(pid);
  if (i < 0 || torn_down_) return;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;  // daemonized, or unmounted
  const fusefs::FuseMount& m = programs_[static_cast<size_t>(i)];
  std::string msg = "vu: " + m.what + " " + describe_status(status) + " while the view ran: " + m.target +
                    " is unreachable now (ENOTCONN)\n";
  (void)!::write(2, msg.data(), msg.size());
}

void PvmFuse::teardown(pvm::Monitor* monitor, int signal_fd) {
  if (torn_down_) return;
  torn_down_ = true;
  // 1. Unmount (lazily): the view's paths no longer lead there.
  hook_->mounter().unmount_all();
  // 2. The view's other processes, whose open files keep the filesystems alive; then each
  //    program reads the end of its connection, writes back and exits. They are killed here
  //    and reaped in the loop below, which serves the monitor: a killed process closing a
  //    file of a mount waits (uninterruptibly) for its program's answer to FLUSH, and that
  //    program may be in a ptrace stop only this thread resumes — e.g. libfuse starting a
  //    worker thread for the request (PTRACE_EVENT_CLONE). kill_leftovers' blocking wait for
  //    the killed ones would wait for ever there (and each round below kills the orphans the
  //    killed ones leave).
  // 3. Wait for the programs, serving their ptrace stops; bounded.
  const long start = now_ms();
  bool told = false, termed = false;
  for (;;) {
    const bool others_gone = kill_children(hook_->server_pids()) == 0;  // none left, reaped below
    int status;
    for (pid_t p; (p = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0;) {
      if (monitor) (void)monitor->on_wait_status(p, status);
      // Reaped: its pid may be anyone's soon, never to be signalled below.
      if (WIFEXITED(status) || WIFSIGNALED(status)) hook_->forget(p);
    }
    std::vector<pid_t> left;
    for (pid_t p : hook_->server_pids())
      if (::kill(p, 0) == 0) left.push_back(p);
    if (left.empty()) return;
    long waited = now_ms() - start;
    // The kernel ends each connection (the program reads ENODEV, writes back, exits) when the
    // last reference to its detached mount goes. A mount namespace made meanwhile by any
    // process of the machine (a browser's sandbox, a container, `unshare -m`) holds a copy of
    // the mount for as long as it lives — seconds or for ever, and the deadline's SIGKILL
    // would then lose what the program had not written back. The view's processes are gone
    // and their files closed (close flushes a FUSE file's dirty pages): a program that sits
    // idle on /dev/fuse past the grace is asked to end as `kill` asks any FUSE daemon, with
    // SIGTERM, which libfuse turns into its ordinary end (destroy: the program writes back).
    if (waited > kTermGraceMs && !termed && others_gone) {
      for (pid_t p : left)
        if (idle_on_fuse(p)) {
          ::kill(p, SIGTERM);
          termed = true;
        }
    }
    if (waited > kFlushNoticeMs && !told) {
      std::vector<std::string> names;
      for (const fusefs::FuseMount& m : programs_) names.push_back(program_name(m));
      std::string msg = "vu: waiting for " + str::join(names, ", ") + " to finish writing…\n";
      (void)!::write(2, msg.data(), msg.size());
      told = true;
    }
    if (waited > kFlushDeadlineMs) {
      for (pid_t p : left) ::kill(p, SIGKILL);
      VU_LOG_WARN("killed the FUSE program(s) that did not finish within " << kFlushDeadlineMs / 1000 << " s");
      return;
    }
    struct pollfd pfs[2] = {{monitor ? monitor->fd() : -1, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    (void)::poll(pfs, 2, 50);
    if (pfs[0].revents & POLLIN) monitor->on_ptrace_done();
    const pollfd& pf = pfs[1];
    if (pf.revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(signal_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
    }
  }
}

}  // namespace vu
