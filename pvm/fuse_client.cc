#include "pvm/fuse_client.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/child.h"
#include "base/log.h"

extern "C" char** environ;

namespace vu::pvm {

thread_local FuseClient::Cancelled FuseClient::cancelled_;

namespace {
constexpr uint32_t kMinor = 31;  // what we speak: full structs, no FUSE_INIT_EXT needed
constexpr uint32_t kWantWrite = 1u << 20;
constexpr uint32_t kMaxData = 128 * 1024;
constexpr size_t kMaxReply = kMaxData + 4096;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

FuseClient::FuseClient(UniqueFd dev, std::string name)
    : dev_(std::move(dev)), name_(std::move(name)), trace_(std::getenv("VU_FUSE_TRACE") != nullptr) {}

FuseClient::~FuseClient() = default;

bool FuseClient::alive() const { return !dead_; }

void FuseClient::mark_dead(const char* why) {
  dead_ = true;
  if (!logged_) {
    logged_ = true;
    VU_LOG_ERROR("FUSE program " << name_ << " " << why << "; its filesystem is no longer served (calls on it fail)");
  }
}

int FuseClient::request(uint32_t opcode, uint64_t node, std::initializer_list<std::pair<const void*, size_t>> args,
                        std::string* out, int timeout_ms) {
  // One in flight: a later caller waits for the lock, abandoning if its own caller goes away.
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!lock_or_give_up(lock)) return EINTR;
  if (dead_ || !dev_) return ENOTCONN;
  fuse_in_header h{};
  h.opcode = opcode;
  h.unique = ++unique_;
  h.nodeid = node;
  h.uid = ::getuid();
  h.gid = ::getgid();
  h.pid = static_cast<uint32_t>(::getpid());
  iovec iov[6];
  int n = 0;
  iov[n++] = {&h, sizeof h};
  size_t len = sizeof h;
  for (auto [p, l] : args) {
    if (n == 6) return EINVAL;
    iov[n++] = {const_cast<void*>(p), l};
    len += l;
  }
  h.len = static_cast<uint32_t>(len);
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  ssize_t sent;
  while ((sent = ::sendmsg(dev_.get(), &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (sent < 0) {
    mark_dead(errno == EPIPE || errno == ECONNRESET ? "has exited" : "cannot be written to");
    return ENOTCONN;
  }
  if (trace_) std::fprintf(stderr, "vu-fuse: -> %u op %u node %llu len %zu\n", static_cast<unsigned>(h.unique), opcode,
                           static_cast<unsigned long long>(node), len);
  if (opcode == FUSE_FORGET) return 0;
  std::string buf(kMaxReply, '\0');
  if (timeout_ms < 0) timeout_ms = request_timeout_ms_;
  const int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    pollfd pfd{dev_.get(), POLLIN, 0};
    int wait = 20;
    if (deadline >= 0) wait = static_cast<int>(std::clamp<int64_t>(deadline - now_ms(), 0, 20));
    int pr = ::poll(&pfd, 1, wait);
    if (pr < 0 && errno != EINTR) return EIO;
    if (pr <= 0) {
      if (deadline >= 0 && now_ms() >= deadline) return ETIMEDOUT;
      if (cancelled_ && cancelled_()) return EINTR;  // its reply, if any, is dropped later
      continue;
    }
    ssize_t got = ::recv(dev_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) {  // end of file: every copy of the program's end is closed
      mark_dead("has exited");
      return ENOTCONN;
    }
    if (static_cast<size_t>(got) < sizeof(fuse_out_header)) {
      mark_dead("sent a malformed reply");
      return ENOTCONN;
    }
    fuse_out_header oh;
    std::memcpy(&oh, buf.data(), sizeof oh);
    if (oh.unique == 0) continue;           // a notification: not asked for
    if (oh.unique != h.unique) continue;    // the late reply of an abandoned request
    if (oh.error > 0 || oh.error < -4095) {
      mark_dead("sent an invalid error number");
      return ENOTCONN;
    }
    if (trace_) std::fprintf(stderr, "vu-fuse: <- %u error %d len %zd\n", static_cast<unsigned>(oh.unique), oh.error, got);
    if (oh.error < 0) return -oh.error;
    if (out) out->assign(buf.data() + sizeof oh, static_cast<size_t>(got) - sizeof oh);
    return 0;
  }
}

Result<void> FuseClient::init(int timeout_ms) {
  fuse_init_in in{};
  in.major = FUSE_KERNEL_VERSION;
  in.minor = kMinor;
  in.max_readahead = kWantWrite;
  // No splice (a socket is not a pipe-capable device here), no writeback cache (the view's
  // writes reach the program at sync points of ours), readdir plus not needed.
  in.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ATOMIC_O_TRUNC | FUSE_MAX_PAGES | FUSE_DONT_MASK;
  std::string out;
  logged_ = true;  // a failure here is the caller's error to report
  int e = request(FUSE_INIT, 0, {{&in, sizeof in}}, &out, timeout_ms);
  if (!e) logged_ = false;
  if (e == ETIMEDOUT)
    return Error::make(ErrorKind::kSetup, "FUSE program " + name_ + " did not answer INIT within " +
                                              std::to_string(timeout_ms / 1000) + " s")
        .hint("check the program's arguments; it must serve the descriptor it was given");
  if (e == ENOTCONN) return Error::make(ErrorKind::kSetup, "FUSE program " + name_ + " exited before serving its filesystem");
  if (e) return Error::sys("FUSE INIT", e, name_, ErrorKind::kSetup);
  fuse_init_out o{};
  std::memcpy(&o, out.data(), std::min(out.size(), sizeof o));
  if (out.size() < 8 || o.major != FUSE_KERNEL_VERSION)
    return Error::make(ErrorKind::kSetup, "FUSE program " + name_ + " speaks protocol " + std::to_string(o.major) +
                                              ", not " + std::to_string(FUSE_KERNEL_VERSION));
  minor_ = std::min(o.minor, kMinor);
  // One request or reply is one SEQPACKET message, which must fit the socket's buffer (~208 KiB
  // by default: net.core.wmem_default) and libfuse's read buffer (128 KiB + a page): 128 KiB
  // of data at most each way, whatever the program offers.
  if (out.size() >= FUSE_COMPAT_22_INIT_OUT_SIZE && o.max_write >= 4096) max_write_ = std::min(o.max_write, kMaxData);
  max_read_ = kMaxData;
  return Ok{};
}

namespace {
template <typename T>
int take(const std::string& out, T* v) {
  if (out.size() < sizeof(T)) {
    // Older protocol minors send shorter entry/attr replies; the missing tail stays zero.
    if (out.size() < 16) return EIO;
    *v = T{};
    std::memcpy(v, out.data(), out.size());
    return 0;
  }
  std::memcpy(v, out.data(), sizeof(T));
  return 0;
}
std::string cstr(const std::string& s) { return std::string(s.c_str(), s.size() + 1); }
}  // namespace

int FuseClient::lookup(uint64_t parent, const std::string& name, Entry* e) {
  std::string out, n = cstr(name);
  if (int r = request(FUSE_LOOKUP, parent, {{n.data(), n.size()}}, &out)) return r;
  fuse_entry_out eo;
  if (int r = take(out, &eo)) return r;
  if (eo.nodeid == 0) return ENOENT;  // a negative entry
  e->node = eo.nodeid;
  e->attr = eo.attr;
  return 0;
}

int FuseClient::getattr(uint64_t node, fuse_attr* a) {
  fuse_getattr_in in{};
  std::string out;
  if (int r = request(FUSE_GETATTR, node, {{&in, sizeof in}}, &out)) return r;
  fuse_attr_out ao;
  if (int r = take(out, &ao)) return r;
  *a = ao.attr;
  return 0;
}

int FuseClient::readlink(uint64_t node, std::string* target) { return request(FUSE_READLINK, node, {}, target); }

int FuseClient::open(uint64_t node, int flags, bool dir, uint64_t* fh) {
  fuse_open_in in{};
  in.flags = static_cast<uint32_t>(flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC));
  std::string out;
  if (int r = request(dir ? FUSE_OPENDIR : FUSE_OPEN, node, {{&in, sizeof in}}, &out)) return r;
  fuse_open_out oo{};
  if (out.size() >= sizeof oo) std::memcpy(&oo, out.data(), sizeof oo);
  *fh = oo.fh;
  return 0;
}

int FuseClient::release(uint64_t node, uint64_t fh, bool dir) {
  fuse_release_in in{};
  in.fh = fh;
  return request(dir ? FUSE_RELEASEDIR : FUSE_RELEASE, node, {{&in, sizeof in}}, nullptr);
}

int FuseClient::flush(uint64_t node, uint64_t fh) {
  fuse_flush_in in{};
  in.fh = fh;
  int r = request(FUSE_FLUSH, node, {{&in, sizeof in}}, nullptr);
  return r == ENOSYS ? 0 : r;
}

int FuseClient::fsync(uint64_t node, uint64_t fh, bool dir) {
  fuse_fsync_in in{};
  in.fh = fh;
  int r = request(dir ? FUSE_FSYNCDIR : FUSE_FSYNC, node, {{&in, sizeof in}}, nullptr);
  return r == ENOSYS ? 0 : r;
}

int FuseClient::readdir_all(uint64_t node, uint64_t fh, std::vector<Dirent>* entries, size_t max) {
  const size_t start = entries->size();
  uint64_t off = 0;
  for (int rounds = 0; rounds < 1 << 22; ++rounds) {
    fuse_read_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = 64 * 1024;
    std::string out;
    if (int r = request(FUSE_READDIR, node, {{&in, sizeof in}}, &out)) return r;
    if (out.empty()) return 0;
    size_t p = 0;
    bool any = false;
    while (p + FUSE_NAME_OFFSET <= out.size()) {
      fuse_dirent d;
      std::memcpy(&d, out.data() + p, FUSE_NAME_OFFSET);
      if (d.namelen == 0 || d.namelen > 1024 || p + FUSE_NAME_OFFSET + d.namelen > out.size()) return EIO;
      std::string name(out.data() + p + FUSE_NAME_OFFSET, d.namelen);
      if (name != "." && name != "..") entries->push_back({d.ino, d.type, std::move(name)});
      if (entries->size() - start > max) return E2BIG;
      off = d.off;
      any = true;
      p += FUSE_DIRENT_SIZE(&d);
    }
    if (!any) return EIO;
  }
  return EIO;
}

int FuseClient::read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size, std::string* out) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  return request(FUSE_READ, node, {{&in, sizeof in}}, out);
}

int FuseClient::write(uint64_t node, uint64_t fh, uint64_t off, const char* data, uint32_t size, uint32_t* written) {
  fuse_write_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  std::string out;
  if (int r = request(FUSE_WRITE, node, {{&in, sizeof in}, {data, size}}, &out)) return r;
  fuse_write_out wo{};
  if (out.size() >= 4) std::memcpy(&wo, out.data(), std::min(out.size(), sizeof wo));
  *written = wo.size;
  return 0;
}

int FuseClient::statfs(fuse_kstatfs* st) {
  std::string out;
  if (int r = request(FUSE_STATFS, 1, {}, &out)) return r;
  fuse_statfs_out so;
  if (int r = take(out, &so)) return r;
  *st = so.st;
  return 0;
}

namespace {
int entry_reply(const std::string& out, FuseClient::Entry* e) {
  fuse_entry_out eo;
  if (int r = take(out, &eo)) return r;
  if (e) {
    e->node = eo.nodeid;
    e->attr = eo.attr;
  }
  return 0;
}
}  // namespace

int FuseClient::create(uint64_t parent, const std::string& name, mode_t mode, int flags, Entry* e, uint64_t* fh) {
  fuse_create_in in{};
  in.flags = static_cast<uint32_t>(flags);
  in.mode = mode;
  std::string out, n = cstr(name);
  if (int r = request(FUSE_CREATE, parent, {{&in, sizeof in}, {n.data(), n.size()}}, &out)) return r;
  if (int r = entry_reply(out, e)) return r;
  fuse_open_out oo{};
  if (out.size() >= sizeof(fuse_entry_out) + sizeof oo) std::memcpy(&oo, out.data() + sizeof(fuse_entry_out), sizeof oo);
  *fh = oo.fh;
  return 0;
}

int FuseClient::mknod(uint64_t parent, const std::string& name, mode_t mode, dev_t rdev, Entry* e) {
  fuse_mknod_in in{};
  in.mode = mode;
  in.rdev = static_cast<uint32_t>(rdev);
  std::string out, n = cstr(name);
  if (int r = request(FUSE_MKNOD, parent, {{&in, sizeof in}, {n.data(), n.size()}}, &out)) return r;
  return entry_reply(out, e);
}

int FuseClient::mkdir(uint64_t parent, const std::string& name, mode_t mode, Entry* e) {
  fuse_mkdir_in in{};
  in.mode = mode;
  std::string out, n = cstr(name);
  if (int r = request(FUSE_MKDIR, parent, {{&in, sizeof in}, {n.data(), n.size()}}, &out)) return r;
  return entry_reply(out, e);
}

int FuseClient::symlink(uint64_t parent, const std::string& name, const std::string& target, Entry* e) {
  std::string out, n = cstr(name), t = cstr(target);
  if (int r = request(FUSE_SYMLINK, parent, {{n.data(), n.size()}, {t.data(), t.size()}}, &out)) return r;
  return entry_reply(out, e);
}

int FuseClient::link(uint64_t node, uint64_t newparent, const std::string& newname, Entry* e) {
  fuse_link_in in{};
  in.oldnodeid = node;
  std::string out, n = cstr(newname);
  if (int r = request(FUSE_LINK, newparent, {{&in, sizeof in}, {n.data(), n.size()}}, &out)) return r;
  return entry_reply(out, e);
}

int FuseClient::unlink(uint64_t parent, const std::string& name) {
  std::string n = cstr(name);
  return request(FUSE_UNLINK, parent, {{n.data(), n.size()}}, nullptr);
}

int FuseClient::rmdir(uint64_t parent, const std::string& name) {
  std::string n = cstr(name);
  return request(FUSE_RMDIR, parent, {{n.data(), n.size()}}, nullptr);
}

int FuseClient::rename(uint64_t parent, const std::string& name, uint64_t newparent, const std::string& newname,
                       unsigned flags) {
  std::string a = cstr(name), b = cstr(newname);
  if (flags) {
    fuse_rename2_in in{};
    in.newdir = newparent;
    in.flags = flags;
    return request(FUSE_RENAME2, parent, {{&in, sizeof in}, {a.data(), a.size()}, {b.data(), b.size()}}, nullptr);
  }
  fuse_rename_in in{};
  in.newdir = newparent;
  return request(FUSE_RENAME, parent, {{&in, sizeof in}, {a.data(), a.size()}, {b.data(), b.size()}}, nullptr);
}

int FuseClient::setattr(uint64_t node, const fuse_setattr_in& in, fuse_attr* a) {
  std::string out;
  if (int r = request(FUSE_SETATTR, node, {{&in, sizeof in}}, &out)) return r;
  fuse_attr_out ao;
  if (int r = take(out, &ao)) return r;
  if (a) *a = ao.attr;
  return 0;
}

int FuseClient::setxattr(uint64_t node, const std::string& name, const std::string& value, int flags) {
  fuse_setxattr_in in{};
  in.size = static_cast<uint32_t>(value.size());
  in.flags = static_cast<uint32_t>(flags);
  std::string n = cstr(name);
  // Without FUSE_SETXATTR_EXT (not offered) the request has the short header.
  return request(FUSE_SETXATTR, node, {{&in, FUSE_COMPAT_SETXATTR_IN_SIZE}, {n.data(), n.size()}, {value.data(), value.size()}},
                 nullptr);
}

int FuseClient::getxattr(uint64_t node, const std::string& name, std::string* value) {
  fuse_getxattr_in in{};
  in.size = 65536;
  std::string n = cstr(name);
  return request(FUSE_GETXATTR, node, {{&in, sizeof in}, {n.data(), n.size()}}, value);
}

int FuseClient::listxattr(uint64_t node, std::string* names) {
  fuse_getxattr_in in{};
  in.size = 65536;
  return request(FUSE_LISTXATTR, node, {{&in, sizeof in}}, names);
}

int FuseClient::removexattr(uint64_t node, const std::string& name) {
  std::string n = cstr(name);
  return request(FUSE_REMOVEXATTR, node, {{n.data(), n.size()}}, nullptr);
}

void FuseClient::forget(uint64_t node, uint64_t nlookup) {
  fuse_forget_in in{};
  in.nlookup = nlookup;
  (void)request(FUSE_FORGET, node, {{&in, sizeof in}}, nullptr);
}

void FuseClient::destroy(int timeout_ms) {
  if (!dead_ && dev_) (void)request(FUSE_DESTROY, 0, {}, nullptr, timeout_ms);
  std::lock_guard<std::mutex> lock(mu_);
  dead_ = true;
  logged_ = true;  // its end is ours: no message
  dev_.reset();
}

// ---------------------------------------------------------------------------------------------
// The program.

Result<FuseProgram> start_fuse_program(const std::vector<std::string>& argv_in, size_t mount_arg, bool libfuse2,
                                       const std::string& shim, const std::string& shadow, const std::string& view,
                                       int init_timeout_ms, std::string name, std::optional<FuseTree::Access> access) {
  if (argv_in.empty() || mount_arg >= argv_in.size()) return Error::make(ErrorKind::kSetup, "FUSE: no program");
  if (libfuse2 && shim.empty())
    return Error::make(ErrorKind::kSetup, "FUSE: " + argv_in[0] + " uses libfuse2, which needs libvu-fuse-shim.so next to vu");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return Error::sys("socketpair", errno);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  UniqueFd out(static_cast<int>(::syscall(SYS_memfd_create, "vu-fuse-output", MFD_CLOEXEC)));
  if (!out) return Error::sys("memfd_create", errno);
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "VU_FUSE_FD=", 11) != 0) env.emplace_back(*e);
  // The program's end gets a number of its own above the standard three (fixed after fork).
  constexpr int kTheirFd = 3;
  if (libfuse2) {
    argv[mount_arg] = shadow;
    env.push_back("LD_PRELOAD=" + shim);
    env.push_back("VU_FUSE_FD=" + std::to_string(kTheirFd));
  } else {
    argv[mount_arg] = "/dev/fd/" + std::to_string(kTheirFd);
  }
  std::vector<char*> av, ev;
  for (std::string& a : argv) av.push_back(a.data());
  av.push_back(nullptr);
  for (std::string& e : env) ev.push_back(e.data());
  ev.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Error::sys("fork", errno, argv[0]);
  if (pid == 0) {
    // Capabilities vu was given (ambient ones from cado) are not the FUSE program's: it is part
    // of the view, which holds none of them.
    if (drop_given_caps()) ::_exit(127);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);  // its own group: what it forks is ended with it (a program that daemonizes
                      // leaves the group, and leaves its loop when vu closes the socket)
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    // Move the fds clear of 0..3 first, then into place (no CLOEXEC on the results).
    int t = ::fcntl(theirs.get(), F_DUPFD_CLOEXEC, 10), o = ::fcntl(out.get(), F_DUPFD_CLOEXEC, 10);
    if (devnull < 0 || t < 0 || o < 0) ::_exit(127);
    if (::dup2(devnull, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(o, 2) < 0 || ::dup2(t, kTheirFd) < 0) ::_exit(127);
    ::execvpe(av[0], av.data(), ev.data());
    const char msg[] = "vu: cannot execute the FUSE program\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  theirs.reset();
  ::setpgid(pid, pid);  // as the child does (whichever runs first)
  FuseProgram p;
  p.pid = pid;
  p.pgid = pid;
  p.name = name.empty() ? argv_in[0] : std::move(name);
  p.output = std::move(out);
  auto client = std::make_unique<FuseClient>(std::move(ours), p.name);
  FuseClient* c = client.get();
  p.tree = std::make_shared<FuseTree>(std::move(client), shadow, view);
  if (access) p.tree->set_access(*access);
  auto fail = [&](Error e) -> Result<FuseProgram> {
    p.tree->client().destroy(0);  // closes our end: a program still serving sees the end
    // A program that is exiting: its status (up to 1 s), else it is killed.
    std::string outcome;
    for (int i = 0; i < 200 && p.pid > 0; ++i) {
      outcome = fuse_program_outcome(p);
      if (p.pid > 0) ::usleep(5000);
    }
    if (p.pid > 0) {
      ::kill(p.pid, SIGKILL);
      while (::waitpid(p.pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      p.pid = -1;
    }
    ::kill(-p.pgid, SIGKILL);  // what it started (sh -c 'prog …' forks)
    return std::move(e).context("mounting " + view).hint(outcome.empty() ? "" : outcome);
  };
  if (auto r = c->init(init_timeout_ms); !r) return fail(std::move(r).error());
  // Before the command runs nobody can give up waiting: each request has the INIT deadline.
  c->set_request_timeout(init_timeout_ms);
  if (auto r = p.tree->materialize(); !r) return fail(std::move(r).error());
  c->set_request_timeout(-1);  // from now on the view's callers wait, and may give up
  return p;
}

std::string fuse_program_outcome(FuseProgram& p) {
  std::string s;
  if (p.pid > 0) {
    int status;
    pid_t r = ::waitpid(p.pid, &status, WNOHANG);
    if (r == p.pid) {
      p.pid = -1;
      s = WIFEXITED(status) ? p.name + " exited with status " + std::to_string(WEXITSTATUS(status))
                            : p.name + " was killed by signal " + std::to_string(WTERMSIG(status));
    }
  }
  if (p.output) {
    char buf[2048];
    ssize_t n = ::pread(p.output.get(), buf, sizeof buf - 1, 0);
    if (n > 0) {
      std::string text(buf, static_cast<size_t>(n));
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      if (!text.empty()) s += (s.empty() ? p.name + " said: " : "; it said: ") + text;
    }
  }
  return s;
}

int stop_fuse_program(FuseProgram& p, int timeout_ms) {
  int rc = 0;
  if (p.tree) {
    rc = p.tree->sync();  // a program that has exited: an error only if there were changes
    p.tree->client().destroy(timeout_ms);
  }
  if (p.pid > 0) {
    const int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
      int status;
      pid_t r = ::waitpid(p.pid, &status, WNOHANG);
      if (r == p.pid || (r < 0 && errno == ECHILD)) break;
      if (now_ms() >= deadline) {
        VU_LOG_WARN("FUSE program " << p.name << " did not exit " << timeout_ms / 1000 << " s after the end; killed");
        ::kill(p.pid, SIGKILL);
        while (::waitpid(p.pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      ::usleep(5000);
    }
    p.pid = -1;
  }
  if (p.pgid > 0) ::kill(-p.pgid, SIGKILL);  // anything of its group still there
  p.pgid = -1;
  return rc;
}

}  // namespace vu::pvm
