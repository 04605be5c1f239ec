#include "pvm/fuse_mount.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "base/strings.h"
#include "pvm/call.h"
#include "pvm/compat.h"

extern char** environ;

namespace vu::pvm {

namespace {

long now_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Runs PROG ARGV with stdin /dev/null, stdout+stderr into a pipe, and `commfd` (if >= 0) as
// descriptor 3 with _FUSE_COMMFD=3. posix_spawn: the monitor is multithreaded.
Result<pid_t> spawn(const std::string& prog, const std::vector<std::string>& args, int commfd, int out, int in = -1) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in >= 0) posix_spawn_file_actions_adddup2(&fa, in, 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, out, 2);
  if (commfd >= 0) posix_spawn_file_actions_adddup2(&fa, commfd, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  // Its own session: a terminal's signals to vu's process group never reach it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  if (commfd >= 0) env.push_back("_FUSE_COMMFD=3");
  std::vector<char*> argv, envp;
  argv.push_back(const_cast<char*>(prog.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawn(&pid, prog.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::sys("posix_spawn", rc, prog);
  return pid;
}

std::string drain(int fd) {
  std::string s;
  char buf[1024];
  ssize_t n;
  while (s.size() < 4096 && (n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// fusermount3 and libfuse separate options with ','; a name with one cannot be passed.
bool option_safe(const std::string& s) { return s.find_first_of(",\n") == std::string::npos; }

}  // namespace

// ---- environment B: fusermount3 ---------------------------------------------------------------

FusermountMounter::~FusermountMounter() { unmount_all(); }

std::string FusermountMounter::describe() const {
  return "the setuid " + fusermount_ + " mounts it on a private directory, which the path map binds (a watcher unmounts it when vu ends)" +
         (allow_other_ ? "" : "; only your uid reaches it (/etc/fuse.conf lacks user_allow_other)");
}

Result<UniqueFd> FusermountMounter::mount(const FuseMountRequest& req) {
  std::string opts = req.read_only ? "ro" : "rw";
  opts += ",nosuid,nodev";
  if (!req.source.empty() && option_safe(req.source)) opts += ",fsname=" + req.source;
  if (!req.subtype.empty() && option_safe(req.subtype)) opts += ",subtype=" + req.subtype;
  for (const std::string& o : req.options) {
    if (o == "allow_other" && !allow_other_) continue;
    opts += "," + o;
  }
  // The watcher first (so no moment has a mount nobody would take down): a shell in a session
  // of its own that unmounts when its stdin, a pipe only vu holds the other end of, ends —
  // at teardown, or when vu is killed. (fusermount3's own auto_unmount cannot serve here: its
  // watcher checks the mount by opening it, which a mount without allow_other refuses to the
  // setuid fusermount3, so it never unmounts; seen with fuse3 3.14.) A line before the end
  // says vu has unmounted (or nothing was mounted): the watcher just exits. The end alone says
  // vu is gone — maybe while the fusermount3 below was still mounting, a mount that then lands
  // after the watcher's first unmount (seen in loop_pvm's kill -9 at start-up: a dead "vu-probe"
  // mount left for ever): a failed unmount is tried once more, half a second later.
  // (A socket, not a pipe: the line is sent with MSG_NOSIGNAL, a watcher killed meanwhile must
  // not take vu with it by SIGPIPE.)
  int ws[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ws) < 0) return Error::sys("socketpair", errno);
  std::pair<UniqueFd, UniqueFd> watch{UniqueFd(ws[0]), UniqueFd(ws[1])};
  {
    auto null_out = sys::pipe();
    if (!null_out) return std::move(null_out).error();
    VU_TRY(spawn("/bin/sh", {"-c", "trap '' HUP INT TERM QUIT PIPE; read x && exit 0; \"$0\" -u -q -z -- \"$1\" || "
                                   "{ sleep 0.5; exec \"$0\" -u -q -z -- \"$1\"; }",
                             fusermount_, req.target->host},
                 -1, null_out->second.get(), watch.first.get()));
  }
  watch.first.reset();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return Error::sys("socketpair", errno);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  auto out = VU_TRY(sys::pipe());
  pid_t pid = VU_TRY(spawn(fusermount_, {"-o", opts, "--", req.target->host}, theirs.get(), out.second.get()));
  theirs.reset();
  out.second.reset();
  // The descriptor arrives with SCM_RIGHTS; end of file on the socket first means fusermount3
  // failed (its message is in the pipe).
  const long deadline = now_ms() + kTimeoutMs;
  UniqueFd dev;
  for (;;) {
    struct pollfd p = {ours.get(), POLLIN, 0};
    long left = deadline - now_ms();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      return Error::make(ErrorKind::kSetup, fusermount_ + " did not answer within " +
                                                std::to_string(kTimeoutMs / 1000) + " s (mounting " + req.target->view + ")");
    }
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("poll", errno, fusermount_);
    if (n == 0) continue;
    char byte;
    struct iovec iov = {&byte, 1};
    alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t r = ::recvmsg(ours.get(), &msg, MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) {
      for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
          dev.reset(fd);
        }
    }
    if (dev) break;
    (void)::send(watch.second.get(), "\n", 1, MSG_NOSIGNAL);  // nothing mounted: the watcher just exits
    std::string said = drain(out.first.get());
    return Error::make(ErrorKind::kSetup, fusermount_ + " could not mount " + req.target->view +
                                              (said.empty() ? std::string(" (it said nothing)") : ": " + said));
  }
  std::lock_guard<std::mutex> lock(mu_);
  mounted_.push_back({req.target->host, std::move(watch.second)});
  return dev;
}

void FusermountMounter::unmount_all() {
  std::vector<Mounted> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(mounted_);
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    // Lazily, so a file still open in the view does not keep it; the program then sees the
    // connection end (ENODEV), finishes writing and exits. Our own wait: nothing else reaps
    // this child now (the view has ended, or has not started).
    auto out = sys::pipe();
    if (!out) continue;
    auto pid = spawn(fusermount_, {"-u", "-z", "--", it->host}, -1, out->second.get());
    out->second.reset();
    if (!pid) continue;
    std::string said = drain(out->first.get());
    int status = 0;
    while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      VU_LOG_DEBUG("fusermount3 -u " << it->host << ": " << said);
    else
      (void)::send(it->watcher.get(), "\n", 1, MSG_NOSIGNAL);  // unmounted: the watcher just exits
    it->watcher.reset();  // (else it tries too)
  }
}

// ---- the hook's state ---------------------------------------------------------------------------

FuseHook::FuseHook(std::vector<FuseTarget> targets, std::shared_ptr<FuseMounter> mounter)
    : targets_(std::move(targets)), mounter_(std::move(mounter)), done_(targets_.size(), false), busy_(targets_.size(), false) {
  if (::getrandom(&token_, sizeof token_, 0) != sizeof token_) token_ = static_cast<uint64_t>(now_ms()) * 2654435761u;
  event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

bool FuseHook::claim(pid_t tid, int size, uint64_t list) {
  if (list != token_ || size > kClaimBase || size <= kClaimBase - static_cast<int>(targets_.size())) return false;
  std::lock_guard<std::mutex> lock(mu_);
  threads_[tid] = true;
  claimed_[tid] = kClaimBase - size;
  server_tgids_.insert(tid);
  return true;
}

bool FuseHook::is_server(pid_t tid) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (server_tgids_.empty()) return false;
    if (auto it = threads_.find(tid); it != threads_.end()) return it->second;
  }
  const long tgid = status_field(tid, "Tgid:", 10), ppid = status_field(tid, "PPid:", 10);
  std::lock_guard<std::mutex> lock(mu_);
  bool server = server_tgids_.count(static_cast<pid_t>(tgid)) || server_tgids_.count(static_cast<pid_t>(ppid));
  threads_[tid] = server;
  if (server && tgid > 0) server_tgids_.insert(static_cast<pid_t>(tgid));
  return server;
}

void FuseHook::forget(pid_t tid) {
  std::lock_guard<std::mutex> lock(mu_);
  threads_.erase(tid);
  server_tgids_.erase(tid);
}

int FuseHook::server_index(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = claimed_.find(pid);
  return it == claimed_.end() ? -1 : it->second;
}

std::vector<pid_t> FuseHook::server_pids() {
  std::lock_guard<std::mutex> lock(mu_);
  return {server_tgids_.begin(), server_tgids_.end()};
}

void FuseHook::mounted(size_t target, pid_t) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (target < done_.size()) done_[target] = true;
  }
  uint64_t one = 1;
  (void)!::write(event_.get(), &one, sizeof one);
}

void FuseHook::failed(size_t target, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (target < busy_.size()) busy_[target] = false;
    if (!failure_) failure_ = why;
  }
  uint64_t one = 1;
  (void)!::write(event_.get(), &one, sizeof one);
}

bool FuseHook::all_mounted() {
  std::lock_guard<std::mutex> lock(mu_);
  for (bool d : done_)
    if (!d) return false;
  return true;
}

bool FuseHook::begin_mount(size_t target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (target >= done_.size() || done_[target] || busy_[target]) return false;
  busy_[target] = true;
  return true;
}

bool FuseHook::is_mounted(size_t target) {
  std::lock_guard<std::mutex> lock(mu_);
  return target < done_.size() && done_[target];
}

std::optional<std::string> FuseHook::failure() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

size_t FuseHook::target_of(const std::string& view) const {
  for (size_t i = 0; i < targets_.size(); ++i)
    if (targets_[i].view == view) return i;
  return targets_.size();
}

// ---- mount(2) ---------------------------------------------------------------------------------

Monitor::Answer do_fuse_mount(FuseHook& hook, const Config& cfg, Monitor::Call& c) {
  std::string type, data, source;
  if (!c.a[2] || read_string(c.tid, c.a[2], &type, 256) != 0) return Answer::error(EPERM);
  if (type != "fuse" && !str::starts_with(type, "fuse.")) return Answer::error(EPERM);
  if (!hook.is_server(c.tid)) return Answer::error(EPERM);  // only the programs vu started
  if (c.a[4] && read_string(c.tid, c.a[4], &data, 4096) != 0) return Answer::error(EFAULT);
  if (c.a[0]) (void)read_string(c.tid, c.a[0], &source, 1024);
  Resolved r = resolve_arg(cfg, c, AT_FDCWD, c.a[1], true);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  const size_t t = hook.target_of(r.view);
  if (t == hook.targets().size()) {
    VU_LOG_DEBUG("pvm: mount of " << type << " on " << r.view << " refused: not a FUSE target of the view");
    return Answer::error(EPERM);
  }
  FuseMountRequest req;
  req.target = &hook.targets()[t];
  req.source = source;
  req.subtype = type.size() > 5 ? type.substr(5) : "";
  req.read_only = c.a[3] & MS_RDONLY;
  int fd = -1;
  for (const std::string& o : str::split(data, ',')) {
    if (str::starts_with(o, "fd=")) {
      char* end;
      long v = std::strtol(o.c_str() + 3, &end, 10);
      if (*end || v < 0 || v > 1 << 20) return Answer::error(EINVAL);
      fd = static_cast<int>(v);
    } else if (o == "default_permissions" || o == "allow_other" || str::starts_with(o, "max_read=")) {
      req.options.push_back(o);
    }
  }
  if (fd < 0) return Answer::error(EINVAL);  // the kernel's answer without fd=
  // The caller's descriptor must be /dev/fuse (the kernel would say EINVAL otherwise); its
  // close-on-exec flag is kept.
  std::string fdinfo;
  bool cloexec = false;
  if (auto info = sys::read_file(proc_path(c.tid, ("fdinfo/" + std::to_string(fd)).c_str()))) {
    size_t k = info->find("flags:");
    if (k != std::string::npos) cloexec = std::strtoul(info->c_str() + k + 6, nullptr, 8) & O_CLOEXEC;
  } else {
    return Answer::error(EBADF);
  }
  if (read_link(fd_path(c.tid, fd)) != "/dev/fuse") return Answer::error(EINVAL);
  // One mount per target: the check and the claim under one lock (two threads of a program
  // may both call mount(2) on it; the second is EBUSY, as the kernel would say).
  if (!hook.begin_mount(t)) return Answer::error(EBUSY);
  if (c.before_wait) c.before_wait();  // fusermount3 takes a few milliseconds: others go on
  auto dev = hook.mounter().mount(req);
  if (!dev) {
    hook.failed(t, dev.error().to_string());
    return Answer::error(EIO);
  }
  seccomp_notif_addfd add{};
  add.id = c.id;
  add.flags = SECCOMP_ADDFD_FLAG_SETFD;
  add.srcfd = static_cast<uint32_t>(dev->get());
  add.newfd = static_cast<uint32_t>(fd);
  add.newfd_flags = cloexec ? O_CLOEXEC : 0;
  int rc;
  while ((rc = ::ioctl(c.listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add)) < 0 && errno == EINTR) {
  }
  if (rc < 0) {
    int err = errno;
    hook.failed(t, "handing the FUSE connection of " + req.target->view + " to its program: " + std::strerror(err));
    return Answer::error(err == ENOENT ? EINTR : err);
  }
  hook.mounted(t, c.tid);
  return Answer::value(0);
}

}  // namespace vu::pvm
