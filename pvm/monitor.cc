#include "pvm/monitor.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <seccomp.h>
#include <dirent.h>
#include <poll.h>
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
#include <functional>
#include <list>
#include <mutex>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "pvm/accel_abi.h"

#if !defined(__x86_64__)
#error "pvm: only x86_64 is implemented (syscall numbers and ptrace registers)"
#endif

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_ID_VALID
#define SECCOMP_IOCTL_NOTIF_ID_VALID SECCOMP_IOW(2, __u64)
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

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
  if (!cfg.listing.empty()) VU_TRY_VOID(add(SCMP_ACT_NOTIFY, SYS_getdents64));
  for (int nr : kNoSys) VU_TRY_VOID(add(SCMP_ACT_ERRNO(ENOSYS), nr));
  for (int nr : kPerm) VU_TRY_VOID(add(SCMP_ACT_ERRNO(EPERM), nr));
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
    // Before libseccomp's program: fstat, newfstatat, statx and openat made from the fast path's
    // trampoline (pvm/accel.c) run natively. Jumps are relative, so the rest is unchanged.
    constexpr uint64_t ip = VU_ACCEL_TRAMPOLINE_PAGE + VU_ACCEL_SYSCALL_END;
    constexpr uint32_t kArch = offsetof(seccomp_data, arch), kNr = offsetof(seccomp_data, nr),
                       kIp = offsetof(seccomp_data, instruction_pointer);
    f.prog_ = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 10),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIp),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(ip), 0, 8),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIp + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(ip >> 32), 0, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNr),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fstat, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_newfstatat, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
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
// Reading and writing the caller's memory, and facts about it from /proc.

namespace {

bool read_mem(pid_t pid, uint64_t addr, void* buf, size_t len) {
  iovec local = {buf, len};
  iovec remote = {reinterpret_cast<void*>(addr), len};
  return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool write_mem(pid_t pid, uint64_t addr, const void* buf, size_t len) {
  iovec local = {const_cast<void*>(buf), len};
  iovec remote = {reinterpret_cast<void*>(addr), len};
  return ::process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

// A NUL-terminated string of at most PATH_MAX bytes; reads page by page so that a string near
// the end of a mapping is not an error. Returns 0 or errno (EFAULT, ENAMETOOLONG).
int read_string(pid_t pid, uint64_t addr, std::string* out, size_t max = 4096) {
  out->clear();
  if (!addr) return EFAULT;
  char buf[4096];
  while (out->size() < max) {
    // Most paths are short: try 256 bytes first (never past the page, which may be the last).
    size_t chunk = 4096 - (addr & 4095);
    if (out->empty() && chunk > 256) chunk = 256;
    if (!read_mem(pid, addr, buf, chunk)) return EFAULT;
    if (const void* nul = std::memchr(buf, 0, chunk)) {
      out->append(buf, static_cast<size_t>(static_cast<const char*>(nul) - buf));
      return out->size() < max ? 0 : ENAMETOOLONG;
    }
    out->append(buf, chunk);
    addr += chunk;
  }
  return ENAMETOOLONG;
}

std::string read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

std::string proc_path(pid_t tid, const char* what) { return "/proc/" + std::to_string(tid) + "/" + what; }
std::string fd_path(pid_t tid, int fd) { return "/proc/" + std::to_string(tid) + "/fd/" + std::to_string(fd); }
// The object a dirfd argument names: the descriptor's, or the cwd for AT_FDCWD.
std::string dirfd_path(pid_t tid, int dirfd) { return dirfd == AT_FDCWD ? proc_path(tid, "cwd") : fd_path(tid, dirfd); }

// AT_EMPTY_PATH with "": the call is about dirfd itself (one byte read, not a path).
bool names_dirfd(pid_t tid, uint64_t path, int flags) {
  char first;
  return (flags & AT_EMPTY_PATH) && read_mem(tid, path, &first, 1) && first == 0;
}

// A field of /proc/TID/status ("Tgid:", "Umask:"), or -1.
long status_field(pid_t tid, const char* key, int base) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[2048];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = std::strstr(buf, key);
  if (!p) return -1;
  return std::strtol(p + std::strlen(key), nullptr, base);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// One call.

struct Monitor::Call {
  uint64_t id;
  pid_t tid;
  int nr;
  uint64_t a[6];
  int listener = -1;  // for id_valid() (-1: a ptrace stop, always valid)
  std::function<void()> before_wait;  // the worker hands the receiving over (Monitor::Core)
  pid_t tgid_cache = 0;
  pid_t tgid() {
    if (!tgid_cache) {
      long t = status_field(tid, "Tgid:", 10);
      tgid_cache = t > 0 ? static_cast<pid_t>(t) : tid;
    }
    return tgid_cache;
  }
  int arg_int(int i) const { return static_cast<int>(a[i]); }
  // Whether the caller still waits for this answer (a blocking call interrupted by the monitor's
  // wake-up signal goes on only while it does).
  bool id_valid() const {
    return listener < 0 || ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
  }
};

struct Monitor::Answer {
  enum Kind { kContinue, kValue, kFd } kind = kContinue;
  int64_t val = 0;
  int err = 0;
  UniqueFd fd;
  bool cloexec = false;
  static Answer cont() { return {}; }
  static Answer value(int64_t v) {
    Answer a;
    a.kind = kValue;
    a.val = v;
    return a;
  }
  static Answer error(int e) {
    Answer a;
    a.kind = kValue;
    a.err = e;
    return a;
  }
  // The result of a call we made ourselves: -1 → errno.
  static Answer result(long rc) { return rc < 0 ? error(errno) : value(rc); }
};

namespace {

using Answer = Monitor::Answer;
using Call = Monitor::Call;

uid_t view_uid(const Config& c, uid_t u) { return u == c.uid ? (c.root ? 0 : c.uid) : kOverflowId; }
gid_t view_gid(const Config& c, gid_t g) { return g == c.gid ? (c.root ? 0 : c.gid) : kOverflowId; }

// A view id given to chown → the host id, or -1 with EINVAL for ids the view does not map.
bool host_uid(const Config& c, uint32_t v, uid_t* out) {
  if (v == static_cast<uint32_t>(-1)) return *out = static_cast<uid_t>(-1), true;
  if (v == (c.root ? 0 : c.uid)) return *out = c.uid, true;
  return false;
}
bool host_gid(const Config& c, uint32_t v, gid_t* out) {
  if (v == static_cast<uint32_t>(-1)) return *out = static_cast<gid_t>(-1), true;
  if (v == (c.root ? 0 : c.gid)) return *out = c.gid, true;
  return false;
}

// Where a relative path of this call starts: the dirfd's or the cwd's place, in both worlds.
int start_of(const Config& cfg, Call& c, int dirfd, Start* s) {
  s->host = read_link(dirfd_path(c.tid, dirfd));
  if (s->host.empty() || s->host[0] != '/') return dirfd == AT_FDCWD ? ENOENT : (s->host.empty() ? EBADF : ENOTDIR);
  constexpr std::string_view kDeleted = " (deleted)";
  if (s->host.ends_with(kDeleted)) {
    // A removed directory: lookups start from the object itself (the magic link), as the
    // kernel's do ("." still works in it; new names get ENOENT).
    struct stat st;
    const std::string link = dirfd_path(c.tid, dirfd) + "/";
    if (::stat(link.c_str(), &st) == 0 && st.st_nlink == 0) {
      std::string v = cfg.map.to_view(s->host.substr(0, s->host.size() - kDeleted.size()));
      s->view = v.empty() ? s->host : v;
      s->host = link;
      return 0;
    }
  }
  std::string v = cfg.map.to_view(s->host);
  s->view = v.empty() ? s->host : v;
  return 0;
}

// Reads the path argument and resolves it from dirfd. Returns errno of either step in r->err.
Resolved resolve_arg(const Config& cfg, Call& c, int dirfd, uint64_t addr, bool follow,
                     std::string* raw = nullptr) {
  Resolved r;
  std::string path;
  if (int e = read_string(c.tid, addr, &path)) {
    r.err = e;
    return r;
  }
  Start s;
  if (!path.empty() && path[0] != '/') {
    if (int e = start_of(cfg, c, dirfd, &s)) {
      r.err = e;
      return r;
    }
  }
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  r = cfg.map.resolve(s, path, follow, who);
  if (raw) *raw = std::move(path);
  return r;
}

// Read-only region of a descriptor (fchmod, fchown, fsetxattr on a file of a read-only bind).
bool fd_read_only(const Config& cfg, Call& c, int fd) {
  if (cfg.map.empty()) return false;
  std::string host = read_link(fd_path(c.tid, fd));
  if (host.empty() || host[0] != '/') return false;
  const Mount* m = cfg.map.covering(cfg.map.to_view(host));
  return m && m->read_only;
}

bool writes_refused(const Resolved& r) {
  // The kernel lets devices, FIFOs and sockets on a read-only mount be written.
  return r.read_only() && (!r.exists || S_ISREG(r.st.st_mode) || S_ISDIR(r.st.st_mode) || S_ISLNK(r.st.st_mode));
}

mode_t umask_of(Call& c) {
  long m = status_field(c.tid, "Umask:", 8);
  return m < 0 ? 022 : static_cast<mode_t>(m);
}

Answer write_stat(const Config& cfg, Call& c, struct stat st, uint64_t buf) {
  st.st_uid = view_uid(cfg, st.st_uid);
  st.st_gid = view_gid(cfg, st.st_gid);
  if (!write_mem(c.tid, buf, &st, sizeof st)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// Whether `host_dir` is a directory the ns backend shows as a read-only mirror: the deepest
// existing ancestor of a missing mountpoint (Config::listing), when the caller cannot write it
// (bindmount.cc, "Creating missing targets"). Creating or removing names in it is EROFS there.
bool mirror_read_only(const Config& cfg, const std::string& host_dir) {
  if (cfg.listing.empty()) return false;
  struct stat st;
  if (::stat(host_dir.c_str(), &st) < 0) return false;
  for (const auto& [key, e] : cfg.listing)
    if (key.first == st.st_dev && key.second == st.st_ino) return ::access(host_dir.c_str(), W_OK) < 0;
  return false;
}

std::string parent_host(const Config& cfg, const Resolved& r) {
  size_t k = r.view.rfind('/');
  return cfg.map.to_host(k == 0 ? "/" : r.view.substr(0, k));
}

// A name made or removed in a read-only mirror (see above): EROFS, as the ns backend says.
bool in_read_only_mirror(const Config& cfg, const Resolved& r) {
  return !cfg.listing.empty() && !r.view.empty() && mirror_read_only(cfg, parent_host(cfg, r));
}

// A mountpoint cannot be removed or renamed, and the kernel says so after the checks it makes
// first: a read-only parent (EROFS: a read-only mount, or the ns backend's read-only mirror of
// a directory that lacked the mountpoint), no write and search on the parent (EACCES), EBUSY.
int mountpoint_error(const Config& cfg, const Resolved& r) {
  size_t k = r.view.rfind('/');
  std::string pview = k == 0 ? "/" : r.view.substr(0, k);
  const Mount* pm = cfg.map.covering(pview);
  if (pm && pm->read_only) return EROFS;
  std::string parent = cfg.map.to_host(pview);
  if (mirror_read_only(cfg, parent)) return EROFS;
  return ::access(parent.c_str(), W_OK | X_OK) < 0 ? EACCES : EBUSY;
}

// ---- the mount table ------------------------------------------------------------------------
// /proc/PID/mountinfo and /proc/PID/mounts (so /proc/self/… and /proc/mounts): the host's
// table, then a line for each mount of the view (its device, type and source are those of the
// host mount that holds its source), as a mount namespace would list them after its own.
enum class MountTable { kNone, kMountinfo, kMounts };

MountTable mount_table(const std::string& host) {
  if (host.compare(0, 6, "/proc/") != 0) return MountTable::kNone;
  size_t i = 6;
  while (i < host.size() && host[i] >= '0' && host[i] <= '9') ++i;
  if (i == 6) return MountTable::kNone;
  std::string_view rest = std::string_view(host).substr(i);
  if (rest == "/mountinfo") return MountTable::kMountinfo;
  if (rest == "/mounts") return MountTable::kMounts;
  return MountTable::kNone;
}

std::string escape_mount_path(std::string_view p) {
  std::string out;
  for (char ch : p) {
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\\') {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03o", static_cast<unsigned char>(ch));
      out += b;
    } else {
      out += ch;
    }
  }
  return out;
}

Answer do_mount_table(const Config& cfg, const std::string& host, MountTable kind, int flags) {
  std::string table, info;
  for (auto [path, out] : {std::pair{host, &table}, std::pair{proc_path(::getpid(), "mountinfo"), &info}}) {
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Answer::error(errno);
    char buf[16384];
    ssize_t n;
    while ((n = ::read(in.get(), buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  }
  // The host's mounts (mountinfo fields: 2 maj:min, 3 root, 4 mount point, after " - ": type,
  // source, options), to find the one that holds each view mount's source.
  struct HostMount {
    std::vector<std::string> f;
    std::string type, source, super;
  };
  std::vector<HostMount> hosts;
  size_t pos = 0;
  while (pos < info.size()) {
    size_t end = info.find('\n', pos);
    if (end == std::string::npos) end = info.size();
    std::string line = info.substr(pos, end - pos);
    pos = end + 1;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    HostMount h;
    size_t a = 0;
    std::string head = line.substr(0, dash);
    while (a <= head.size()) {
      size_t b = head.find(' ', a);
      if (b == std::string::npos) b = head.size();
      h.f.push_back(head.substr(a, b - a));
      a = b + 1;
    }
    std::string tail = line.substr(dash + 3);
    size_t s1 = tail.find(' '), s2 = tail.find(' ', s1 == std::string::npos ? tail.size() : s1 + 1);
    if (h.f.size() < 6 || s1 == std::string::npos || s2 == std::string::npos) continue;
    h.type = tail.substr(0, s1);
    h.source = tail.substr(s1 + 1, s2 - s1 - 1);
    h.super = tail.substr(s2 + 1);
    hosts.push_back(std::move(h));
  }
  int id = 100000;
  for (const Mount& m : cfg.map.mounts()) {
    const HostMount* best = nullptr;
    for (const HostMount& h : hosts)  // the last (topmost) of the longest mount point
      if (is_within(m.host, h.f[4]) && (!best || h.f[4].size() >= best->f[4].size())) best = &h;
    if (!best) continue;
    std::string root = m.host.substr(best->f[4] == "/" ? 0 : best->f[4].size());
    if (best->f[3] != "/") root = best->f[3] + root;
    if (root.empty()) root = "/";
    const std::string opts = m.read_only ? "ro,relatime" : "rw,relatime";
    if (kind == MountTable::kMountinfo)
      table += std::to_string(id) + " 1 " + best->f[2] + " " + escape_mount_path(root) + " " +
               escape_mount_path(m.view) + " " + opts + " - " + best->type + " " + best->source + " " +
               best->super + "\n";
    else
      table += best->source + " " + escape_mount_path(m.view) + " " + best->type + " " + opts + " 0 0\n";
    ++id;
  }
  UniqueFd mem(static_cast<int>(::syscall(SYS_memfd_create, "vu-pvm-mounts", MFD_CLOEXEC)));
  if (!mem) return Answer::error(errno);
  if (::write(mem.get(), table.data(), table.size()) != static_cast<ssize_t>(table.size())) return Answer::error(EIO);
  Answer a;
  a.fd.reset(::open(proc_path(::getpid(), ("fd/" + std::to_string(mem.get())).c_str()).c_str(), O_RDONLY | O_CLOEXEC));
  if (!a.fd) return Answer::error(errno);
  a.kind = Answer::kFd;
  a.cloexec = flags & O_CLOEXEC;
  return a;
}

// ---- calls that wait -----------------------------------------------------------------------
// Interrupts a worker's NOTIF_RECV or blocking call (no SA_RESTART: the call returns EINTR).
int wake_signal() { return SIGRTMIN; }

constexpr int kERestartSys = 512;  // the kernel's "interrupted, restart if the handler allows"

// Whether the caller has a signal to handle: pending (its own or its process's), not blocked.
bool signal_pending(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[4096];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  buf[n] = 0;
  auto field = [&](const char* key) -> uint64_t {
    const char* p = std::strstr(buf, key);
    return p ? std::strtoull(p + std::strlen(key), nullptr, 16) : 0;
  };
  return ((field("SigPnd:") | field("ShdPnd:")) & ~field("SigBlk:") & ~field("SigIgn:")) != 0;
}

// Runs op() — a call that may wait for another process (a FIFO open, a connect) — on this
// worker as the caller would run it: the caller, in its killable seccomp wait, cannot take a
// signal meanwhile (and, being traced, not even a fatal one), so every 20 ms op is interrupted
// (the wake-up signal through a timer of this thread) and the caller looked at: gone → ENOENT
// from here (nothing to answer); a signal to handle → ERESTARTSYS, which the kernel turns into
// what the interrupted call gives natively (restart after the handler, EINTR, or the default
// action). Returns op's result, or -1 with errno.
template <typename Op>
long wait_like_caller(Call& c, Op op) {
  if (c.before_wait) c.before_wait();
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = wake_signal();
  sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
  timer_t timer;
  const bool timed = ::timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
  if (timed) {
    itimerspec its{{0, 20'000'000}, {0, 20'000'000}};
    ::timer_settime(timer, 0, &its, nullptr);
  }
  long rc;
  int err = 0;
  for (;;) {
    rc = op();
    if (rc >= 0 || errno != EINTR) {
      err = errno;
      break;
    }
    if (!c.id_valid()) {
      err = ENOENT;
      break;
    }
    if (signal_pending(c.tid)) {
      err = kERestartSys;
      break;
    }
  }
  if (timed) ::timer_delete(timer);
  errno = err;
  return rc >= 0 ? rc : -1;
}

// ---- open ----------------------------------------------------------------------------------
Answer do_open(const Config& cfg, Call& c, int dirfd, uint64_t path, int flags, mode_t mode) {
  const bool excl_create = (flags & O_CREAT) && (flags & O_EXCL);
  const bool follow = !(flags & O_NOFOLLOW) && !excl_create;
  Resolved r = resolve_arg(cfg, c, dirfd, path, follow);
  if (r.err) return Answer::error(r.err);
  const int acc = flags & O_ACCMODE;
  const bool tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
  if (r.exists && excl_create) return Answer::error(EEXIST);
  if (!r.exists && !(flags & O_CREAT)) return Answer::error(ENOENT);
  if (!r.exists && r.trailing_slash) return Answer::error(EISDIR);  // O_CREAT of "name/"
  if (!r.exists && in_read_only_mirror(cfg, r)) return Answer::error(EROFS);
  const bool writes = acc != O_RDONLY || (flags & O_TRUNC) || (!r.exists && (flags & O_CREAT)) || tmpfile;
  if (writes && writes_refused(r)) {
    if (r.exists && S_ISDIR(r.st.st_mode) && acc != O_RDONLY) return Answer::error(EISDIR);
    return Answer::error(EROFS);
  }
  if (MountTable t = mount_table(r.host); t != MountTable::kNone && r.exists && !cfg.map.empty())
    return do_mount_table(cfg, r.host, t, flags);
  if (!r.moved) return Answer::cont();
  if (flags & (O_CREAT | O_TMPFILE)) mode &= ~umask_of(c);
  // On a worker thread (Monitor): a FIFO open waits here for its peer, as the caller would.
  Answer a;
  auto open_host = [&] { return static_cast<long>(::open(r.host.c_str(), flags | O_CLOEXEC, mode)); };
  const bool waits = r.exists && (S_ISFIFO(r.st.st_mode) || S_ISCHR(r.st.st_mode)) && !(flags & O_NONBLOCK);
  a.fd.reset(static_cast<int>(waits ? wait_like_caller(c, open_host) : open_host()));
  if (!a.fd) return Answer::error(errno);
  a.kind = Answer::kFd;
  a.cloexec = flags & O_CLOEXEC;
  return a;
}

// ---- stat ----------------------------------------------------------------------------------
Answer do_fstat(const Config& cfg, Call& c, int fd, uint64_t buf) {
  struct stat st;
  std::string p = dirfd_path(c.tid, fd);
  if (::stat(p.c_str(), &st) < 0) return Answer::error(errno == ENOENT ? EBADF : errno);
  return write_stat(cfg, c, st, buf);
}

Answer do_stat(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t buf, int flags) {
  if (names_dirfd(c.tid, path, flags)) return do_fstat(cfg, c, dirfd, buf);
  Resolved r = resolve_arg(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  return write_stat(cfg, c, r.st, buf);
}

Answer do_statx(const Config& cfg, Call& c) {
  const int dirfd = c.arg_int(0), flags = c.arg_int(2);
  const unsigned mask = static_cast<unsigned>(c.a[3]);
  std::string host;
  int sflags = flags & AT_STATX_SYNC_TYPE;
  if (names_dirfd(c.tid, c.a[1], flags)) {
    host = dirfd_path(c.tid, dirfd);
  } else {
    Resolved r = resolve_arg(cfg, c, dirfd, c.a[1], !(flags & AT_SYMLINK_NOFOLLOW));
    if (r.err) return Answer::error(r.err);
    if (!r.exists) return Answer::error(ENOENT);
    host = r.host;
    if (S_ISLNK(r.st.st_mode)) sflags |= AT_SYMLINK_NOFOLLOW;
  }
  struct statx stx;
  if (::statx(AT_FDCWD, host.c_str(), sflags, mask, &stx) < 0)
    return Answer::error(errno == ENOENT && host.compare(0, 6, "/proc/") == 0 ? EBADF : errno);
  stx.stx_uid = view_uid(cfg, stx.stx_uid);
  stx.stx_gid = view_gid(cfg, stx.stx_gid);
  if (!write_mem(c.tid, c.a[4], &stx, sizeof stx)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// ---- access, readlink, getcwd --------------------------------------------------------------
Answer do_access(const Config& cfg, Call& c, int dirfd, uint64_t path, int mode, int flags) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if ((mode & W_OK) && writes_refused(r)) return Answer::error(EROFS);
  if (!r.moved) return Answer::cont();
  return Answer::result(::faccessat(AT_FDCWD, r.host.c_str(), mode, (flags & AT_EACCESS) | AT_SYMLINK_NOFOLLOW));
}

bool is_proc_magic(const std::string& host) {
  if (host.compare(0, 6, "/proc/") != 0) return false;
  size_t i = 6;
  while (i < host.size() && host[i] >= '0' && host[i] <= '9') ++i;
  return i > 6 && i < host.size() && host[i] == '/';
}

Answer reply_string(Call& c, const std::string& s, uint64_t buf, size_t size, bool nul) {
  size_t n = s.size() + (nul ? 1 : 0);
  if (nul && n > size) return Answer::error(ERANGE);
  if (!nul) n = std::min(n, size);
  if (!write_mem(c.tid, buf, s.c_str(), n)) return Answer::error(EFAULT);
  return Answer::value(static_cast<int64_t>(n));
}

Answer do_readlink(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t buf, size_t size) {
  if (static_cast<ssize_t>(size) <= 0) return Answer::error(EINVAL);
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (!S_ISLNK(r.st.st_mode)) return Answer::error(EINVAL);
  const bool magic = is_proc_magic(r.host);
  if (!r.moved && !magic) return Answer::cont();
  std::string target = read_link(r.host);
  if (target.empty()) return Answer::error(errno ? errno : EINVAL);
  if (magic && target[0] == '/') {
    std::string v = cfg.map.to_view(target);
    target = v.empty() ? "(unreachable)" + target : v;
  }
  return reply_string(c, target, buf, size, false);
}

Answer do_getcwd(const Config& cfg, Call& c) {
  std::string host = read_link(proc_path(c.tid, "cwd"));
  if (host.empty()) return Answer::error(ENOENT);
  if (cfg.map.empty()) return Answer::cont();
  // A removed directory: the kernel says ENOENT (the link reads "… (deleted)").
  struct stat st;
  if (::stat(proc_path(c.tid, "cwd").c_str(), &st) == 0 && st.st_nlink == 0) return Answer::error(ENOENT);
  std::string v = cfg.map.to_view(host);
  return reply_string(c, v.empty() ? "(unreachable)" + host : v, c.a[0], c.a[1], true);
}

// ---- creating and removing names -----------------------------------------------------------
// Resolves the name a creating call makes (never following a final symlink).
Answer check_create(const Config& cfg, const Resolved& r, bool dir = false) {
  if (r.err) return Answer::error(r.err);
  if (r.exists) return Answer::error(EEXIST);
  if (r.trailing_slash && !dir) return Answer::error(ENOENT);  // "name/" only for mkdir
  if (r.read_only() || in_read_only_mirror(cfg, r)) return Answer::error(EROFS);
  return Answer::cont();
}

Answer do_mkdir(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  Answer a = check_create(cfg, r, true);
  if (a.kind != Answer::kContinue || !r.moved) return a;
  return Answer::result(::mkdir(r.host.c_str(), mode & ~umask_of(c)));
}

Answer do_mknod(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode, dev_t dev) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  Answer a = check_create(cfg, r);
  if (a.kind != Answer::kContinue || !r.moved) return a;
  return Answer::result(::mknod(r.host.c_str(), mode & ~umask_of(c), dev));
}

Answer do_symlink(const Config& cfg, Call& c, uint64_t target, int dirfd, uint64_t path) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  Answer a = check_create(cfg, r);
  if (a.kind != Answer::kContinue || !r.moved) return a;
  std::string t;
  if (int e = read_string(c.tid, target, &t)) return Answer::error(e);
  return Answer::result(::symlink(t.c_str(), r.host.c_str()));
}

Answer do_remove(const Config& cfg, Call& c, int dirfd, uint64_t path, bool dir) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (r.mountpoint) return Answer::error(mountpoint_error(cfg, r));
  if (r.read_only() || in_read_only_mirror(cfg, r)) return Answer::error(EROFS);
  if (!r.moved) return Answer::cont();
  return Answer::result(dir ? ::rmdir(r.host.c_str()) : ::unlink(r.host.c_str()));
}

Answer do_rename(const Config& cfg, Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                 unsigned flags) {
  Resolved o = resolve_arg(cfg, c, olddir, oldp, false);
  if (o.err) return Answer::error(o.err);
  Resolved n = resolve_arg(cfg, c, newdir, newp, false);
  if (n.err) return Answer::error(n.err);
  if (!o.exists) return Answer::error(ENOENT);
  if (o.mountpoint) return Answer::error(mountpoint_error(cfg, o));
  if (n.mountpoint) return Answer::error(mountpoint_error(cfg, n));
  if (o.mount != n.mount) return Answer::error(EXDEV);
  if (o.read_only() || in_read_only_mirror(cfg, o) || in_read_only_mirror(cfg, n)) return Answer::error(EROFS);
  if (!o.moved && !n.moved) return Answer::cont();
  return Answer::result(::renameat2(AT_FDCWD, o.host.c_str(), AT_FDCWD, n.host.c_str(), flags));
}

Answer do_link(const Config& cfg, Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp, int flags) {
  if (flags & AT_EMPTY_PATH) return Answer::cont();
  Resolved o = resolve_arg(cfg, c, olddir, oldp, flags & AT_SYMLINK_FOLLOW);
  if (o.err) return Answer::error(o.err);
  if (!o.exists) return Answer::error(ENOENT);
  Resolved n = resolve_arg(cfg, c, newdir, newp, false);
  if (n.err) return Answer::error(n.err);
  if (n.exists) return Answer::error(EEXIST);
  if (o.mount != n.mount) return Answer::error(EXDEV);
  if (n.trailing_slash) return Answer::error(ENOENT);
  if (n.read_only() || in_read_only_mirror(cfg, n)) return Answer::error(EROFS);
  if (!o.moved && !n.moved) return Answer::cont();
  return Answer::result(::linkat(AT_FDCWD, o.host.c_str(), AT_FDCWD, n.host.c_str(), 0));
}

// ---- changing attributes -------------------------------------------------------------------
// Resolves an existing object a call modifies; EROFS in a read-only region.
Resolved resolve_modify(const Config& cfg, Call& c, int dirfd, uint64_t path, bool follow) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, follow);
  if (!r.err && !r.exists) r.err = ENOENT;
  if (!r.err && writes_refused(r)) r.err = EROFS;
  return r;
}

Answer do_chmod(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode, int flags) {
  Resolved r = resolve_modify(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.moved) return Answer::cont();
  return Answer::result(::fchmodat(AT_FDCWD, r.host.c_str(), mode, flags & AT_SYMLINK_NOFOLLOW));
}

Answer do_chown(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t u, uint64_t g, int flags) {
  uid_t hu;
  gid_t hg;
  if (!host_uid(cfg, static_cast<uint32_t>(u), &hu) || !host_gid(cfg, static_cast<uint32_t>(g), &hg))
    return Answer::error(EINVAL);
  std::string host;
  int hflags = 0;
  if (names_dirfd(c.tid, path, flags)) {
    if (fd_read_only(cfg, c, dirfd)) return Answer::error(EROFS);
    host = dirfd_path(c.tid, dirfd);
  }
  if (host.empty()) {
    Resolved r = resolve_modify(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
    if (r.err) return Answer::error(r.err);
    host = r.host;
    if (S_ISLNK(r.st.st_mode)) hflags = AT_SYMLINK_NOFOLLOW;
  }
  return Answer::result(::fchownat(AT_FDCWD, host.c_str(), hu, hg, hflags));
}

Answer do_fchown(const Config& cfg, Call& c) {
  uid_t hu;
  gid_t hg;
  if (!host_uid(cfg, static_cast<uint32_t>(c.a[1]), &hu) || !host_gid(cfg, static_cast<uint32_t>(c.a[2]), &hg))
    return Answer::error(EINVAL);
  if (fd_read_only(cfg, c, c.arg_int(0))) return Answer::error(EROFS);
  if (::fchownat(AT_FDCWD, fd_path(c.tid, c.arg_int(0)).c_str(), hu, hg, 0) < 0)
    return Answer::error(errno == ENOENT ? EBADF : errno);
  return Answer::value(0);
}

Answer do_truncate(const Config& cfg, Call& c) {
  Resolved r = resolve_modify(cfg, c, AT_FDCWD, c.a[0], true);
  if (r.err) return Answer::error(r.err);
  if (!r.moved) return Answer::cont();
  return Answer::result(::truncate(r.host.c_str(), static_cast<off_t>(c.a[1])));
}

// utime, utimes, futimesat, utimensat: the times are read in the caller's format and applied
// with utimensat (NULL = now).
Answer do_utimes(const Config& cfg, Call& c) {
  int dirfd = AT_FDCWD, flags = 0;
  uint64_t path = c.a[0], times = c.a[1];
  if (c.nr == SYS_futimesat) dirfd = c.arg_int(0), path = c.a[1], times = c.a[2];
  if (c.nr == SYS_utimensat) {
    dirfd = c.arg_int(0), path = c.a[1], times = c.a[2], flags = c.arg_int(3);
    if (!path) {  // futimens(fd, …)
      if (fd_read_only(cfg, c, dirfd)) return Answer::error(EROFS);
      return Answer::cont();
    }
  }
  Resolved r = resolve_modify(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.moved) return Answer::cont();
  timespec ts[2];
  timespec* tp = nullptr;
  if (times) {
    tp = ts;
    if (c.nr == SYS_utimensat) {
      if (!read_mem(c.tid, times, ts, sizeof ts)) return Answer::error(EFAULT);
    } else if (c.nr == SYS_utime) {
      utimbuf ub;
      if (!read_mem(c.tid, times, &ub, sizeof ub)) return Answer::error(EFAULT);
      ts[0] = {ub.actime, 0};
      ts[1] = {ub.modtime, 0};
    } else {
      timeval tv[2];
      if (!read_mem(c.tid, times, tv, sizeof tv)) return Answer::error(EFAULT);
      for (int i = 0; i < 2; ++i) ts[i] = {tv[i].tv_sec, tv[i].tv_usec * 1000};
    }
  }
  return Answer::result(::utimensat(AT_FDCWD, r.host.c_str(), tp, flags & AT_SYMLINK_NOFOLLOW));
}

Answer do_xattr(const Config& cfg, Call& c) {
  const bool nofollow = c.nr == SYS_lsetxattr || c.nr == SYS_lgetxattr || c.nr == SYS_llistxattr ||
                        c.nr == SYS_lremovexattr;
  const bool modifies = c.nr == SYS_setxattr || c.nr == SYS_lsetxattr || c.nr == SYS_removexattr ||
                        c.nr == SYS_lremovexattr;
  Resolved r = modifies ? resolve_modify(cfg, c, AT_FDCWD, c.a[0], !nofollow)
                        : resolve_arg(cfg, c, AT_FDCWD, c.a[0], !nofollow);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (!r.moved) return Answer::cont();
  const char* host = r.host.c_str();
  std::string name;
  if (c.nr != SYS_listxattr && c.nr != SYS_llistxattr) {
    if (int e = read_string(c.tid, c.a[1], &name, 256)) return Answer::error(e == ENAMETOOLONG ? ERANGE : e);
  }
  std::vector<char> buf;
  switch (c.nr) {
    case SYS_setxattr:
    case SYS_lsetxattr: {
      if (c.a[3] > 65536) return Answer::error(E2BIG);
      buf.resize(c.a[3]);
      if (c.a[3] && !read_mem(c.tid, c.a[2], buf.data(), buf.size())) return Answer::error(EFAULT);
      long rc = nofollow ? ::lsetxattr(host, name.c_str(), buf.data(), buf.size(), c.arg_int(4))
                         : ::setxattr(host, name.c_str(), buf.data(), buf.size(), c.arg_int(4));
      return Answer::result(rc);
    }
    case SYS_removexattr:
    case SYS_lremovexattr:
      return Answer::result(nofollow ? ::lremovexattr(host, name.c_str()) : ::removexattr(host, name.c_str()));
    case SYS_getxattr:
    case SYS_lgetxattr:
    case SYS_listxattr:
    case SYS_llistxattr: {
      const bool list = c.nr == SYS_listxattr || c.nr == SYS_llistxattr;
      size_t size = std::min<uint64_t>(list ? c.a[2] : c.a[3], 65536);
      uint64_t out = list ? c.a[1] : c.a[2];
      buf.resize(size ? size : 1);
      ssize_t n = list ? (nofollow ? ::llistxattr(host, buf.data(), size) : ::listxattr(host, buf.data(), size))
                       : (nofollow ? ::lgetxattr(host, name.c_str(), buf.data(), size)
                                   : ::getxattr(host, name.c_str(), buf.data(), size));
      if (n < 0) return Answer::error(errno);
      if (size && n > 0 && !write_mem(c.tid, out, buf.data(), static_cast<size_t>(n))) return Answer::error(EFAULT);
      return Answer::value(n);
    }
  }
  return Answer::error(ENOSYS);
}

Answer do_statfs(const Config& cfg, Call& c) {
  Resolved r = resolve_arg(cfg, c, AT_FDCWD, c.a[0], true);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (!r.moved && !r.read_only()) return Answer::cont();
  struct statfs sf;
  if (::statfs(r.host.c_str(), &sf) < 0) return Answer::error(errno);
  if (r.read_only()) sf.f_flags |= ST_RDONLY;
  if (!write_mem(c.tid, c.a[1], &sf, sizeof sf)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// The caller's descriptor `fd`, duplicated into the monitor (same open file description).
UniqueFd take_fd(Call& c, int fd, int* err) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, c.tgid(), 0)));
  if (!pidfd) return *err = errno, UniqueFd();
  UniqueFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!dup) *err = errno;
  return dup;
}

// ---- sockets with a path -------------------------------------------------------------------
Answer do_sockaddr(const Config& cfg, Call& c) {
  const bool is_bind = c.nr == SYS_bind;
  sockaddr_un sun{};
  size_t len = c.a[2];
  if (len <= offsetof(sockaddr_un, sun_path) || len > sizeof sun) return Answer::cont();
  if (!read_mem(c.tid, c.a[1], &sun, len)) return Answer::cont();  // the kernel says EFAULT
  if (sun.sun_family != AF_UNIX || sun.sun_path[0] == 0) return Answer::cont();
  std::string path(sun.sun_path, strnlen(sun.sun_path, len - offsetof(sockaddr_un, sun_path)));
  Start s;
  if (path[0] != '/' && start_of(cfg, c, AT_FDCWD, &s)) return Answer::cont();
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  Resolved r = cfg.map.resolve(s, path, !is_bind, who);
  if (r.err) return Answer::error(r.err);
  if (is_bind && r.exists) return Answer::error(EADDRINUSE);
  if (!is_bind && !r.exists) return Answer::error(ENOENT);
  if (is_bind && r.read_only()) return Answer::error(EROFS);
  if (!r.moved) return Answer::cont();
  if (r.host.size() >= sizeof sun.sun_path) return Answer::error(ENAMETOOLONG);
  int err = 0;
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::error(err);
  sockaddr_un host{};
  host.sun_family = AF_UNIX;
  std::memcpy(host.sun_path, r.host.c_str(), r.host.size() + 1);
  auto hlen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + r.host.size() + 1);
  if (is_bind) {
    // The monitor's umask is 0 (workers share it): the socket's mode is set from the caller's.
    if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&host), hlen) < 0) return Answer::error(errno);
    (void)::fchmodat(AT_FDCWD, r.host.c_str(), 0777 & ~umask_of(c), 0);
    return Answer::value(0);
  }
  // On a worker thread: a connect to a full backlog waits here (an interrupted unix connect
  // leaves the socket unconnected, so it is made again).
  return Answer::result(wait_like_caller(
      c, [&] { return static_cast<long>(::connect(sock.get(), reinterpret_cast<sockaddr*>(&host), hlen)); }));
}

// getsockname/getpeername of a unix socket bound or connected to a path: the view's path
// (the socket lives at its host path). The kernel's contract: write min(size, length) bytes,
// set *addrlen to the full length.
Answer do_sockname(const Config& cfg, Call& c) {
  socklen_t size;
  if (!read_mem(c.tid, c.a[2], &size, sizeof size)) return Answer::error(EFAULT);
  if (static_cast<int>(size) < 0) return Answer::error(EINVAL);
  int err = 0;
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::cont();  // EBADF, ENOTSOCK… as the kernel says them
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  long rc = c.nr == SYS_getsockname ? ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&ss), &len)
                                    : ::getpeername(sock.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc < 0) return Answer::error(errno);
  auto* sun = reinterpret_cast<sockaddr_un*>(&ss);
  const size_t base = offsetof(sockaddr_un, sun_path);
  if (ss.ss_family == AF_UNIX && len > base + 1 && sun->sun_path[0] == '/') {
    std::string host(sun->sun_path, strnlen(sun->sun_path, len - base));
    std::string view = cfg.map.to_view(host);
    if (!view.empty() && view != host && view.size() < sizeof sun->sun_path) {
      std::memset(sun->sun_path, 0, sizeof sun->sun_path);
      std::memcpy(sun->sun_path, view.c_str(), view.size());
      len = static_cast<socklen_t>(base + view.size() + 1);
    }
  }
  size_t n = std::min<size_t>(size, len);
  if (n && !write_mem(c.tid, c.a[1], &ss, n)) return Answer::error(EFAULT);
  if (!write_mem(c.tid, c.a[2], &len, sizeof len)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// A unix socket address naming a path of the view → the host's, in *out. False: leave the
// call to the kernel (not AF_UNIX, abstract, unnamed, or the lookup is the host's); *err set:
// answer with it.
bool map_unix_addr(const Config& cfg, Call& c, uint64_t addr, size_t len, sockaddr_un* out, socklen_t* out_len,
                   int* err) {
  *err = 0;
  sockaddr_un sun{};
  if (!addr || len <= offsetof(sockaddr_un, sun_path) || len > sizeof sun) return false;
  if (!read_mem(c.tid, addr, &sun, len)) return false;
  if (sun.sun_family != AF_UNIX || sun.sun_path[0] == 0) return false;
  std::string path(sun.sun_path, strnlen(sun.sun_path, len - offsetof(sockaddr_un, sun_path)));
  Start s;
  if (path[0] != '/' && start_of(cfg, c, AT_FDCWD, &s)) return false;
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  Resolved r = cfg.map.resolve(s, path, true, who);
  if (r.err || !r.exists) return *err = r.err ? r.err : ENOENT, true;
  if (!r.moved) return false;
  if (r.host.size() >= sizeof out->sun_path) return *err = ENAMETOOLONG, true;
  *out = {};
  out->sun_family = AF_UNIX;
  std::memcpy(out->sun_path, r.host.c_str(), r.host.size() + 1);
  *out_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + r.host.size() + 1);
  return true;
}

// sendto(fd, buf, len, flags, addr, addrlen) and sendmsg(fd, msg, flags) to a unix socket path
// of the view: sent by the monitor on a duplicate of the socket, to the host path, with the
// caller's bytes (and descriptors: SCM_RIGHTS are taken from the caller). A send that waits
// for room waits here as the caller would (wait_like_caller).
Answer do_send(const Config& cfg, Call& c) {
  const bool msg = c.nr == SYS_sendmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::cont();  // EFAULT from the kernel
  sockaddr_un host;
  socklen_t hlen = 0;
  int err = 0;
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  const size_t alen = msg ? mh.msg_namelen : c.a[5];
  if (!map_unix_addr(cfg, c, addr, alen, &host, &hlen, &err)) return Answer::cont();
  if (err) return Answer::error(err);
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::error(err == ESRCH ? EBADF : err);
  // The data, at most 1 MiB (a larger datagram is EMSGSIZE for unix sockets anyway).
  std::vector<iovec> riov;
  if (msg) {
    if (mh.msg_iovlen > 1024) return Answer::error(EMSGSIZE);
    riov.resize(mh.msg_iovlen);
    if (!riov.empty() && !read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_iov), riov.data(), riov.size() * sizeof(iovec)))
      return Answer::error(EFAULT);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), c.a[2]});
  }
  size_t total = 0;
  for (const iovec& v : riov) total += v.iov_len;
  if (total > (1u << 20)) return Answer::error(EMSGSIZE);
  std::vector<char> data(total);
  size_t off = 0;
  for (const iovec& v : riov) {
    if (v.iov_len && !read_mem(c.tid, reinterpret_cast<uint64_t>(v.iov_base), data.data() + off, v.iov_len))
      return Answer::error(EFAULT);
    off += v.iov_len;
  }
  std::vector<char> control;
  std::vector<UniqueFd> passed;
  if (msg && mh.msg_controllen) {
    if (mh.msg_controllen > 65536) return Answer::error(ENOBUFS);
    control.resize(mh.msg_controllen);
    if (!read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_control), control.data(), control.size()))
      return Answer::error(EFAULT);
    msghdr tmp{};
    tmp.msg_control = control.data();
    tmp.msg_controllen = control.size();
    for (cmsghdr* cm = CMSG_FIRSTHDR(&tmp); cm; cm = CMSG_NXTHDR(&tmp, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      int* fds = reinterpret_cast<int*>(CMSG_DATA(cm));
      size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        UniqueFd f = take_fd(c, fds[i], &err);
        if (!f) return Answer::error(EBADF);
        fds[i] = f.get();
        passed.push_back(std::move(f));
      }
    }
  }
  iovec one = {data.data(), data.size()};
  msghdr out{};
  out.msg_name = &host;
  out.msg_namelen = hlen;
  out.msg_iov = &one;
  out.msg_iovlen = 1;
  out.msg_control = control.empty() ? nullptr : control.data();
  out.msg_controllen = control.size();
  const int flags = c.arg_int(msg ? 2 : 3) | MSG_NOSIGNAL;  // EPIPE's SIGPIPE is the caller's (not sent)
  return Answer::result(wait_like_caller(c, [&] { return static_cast<long>(::sendmsg(sock.get(), &out, flags)); }));
}

// inotify_add_watch(fd, path, mask): the watch is added to the caller's inotify instance (a
// duplicate of its descriptor) on the view's object.
Answer do_inotify_add_watch(const Config& cfg, Call& c) {
  const uint32_t mask = static_cast<uint32_t>(c.a[2]);
  Resolved r = resolve_arg(cfg, c, AT_FDCWD, c.a[1], !(mask & IN_DONT_FOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (!r.moved) return Answer::cont();
  int err = 0;
  UniqueFd in = take_fd(c, c.arg_int(0), &err);
  if (!in) return Answer::error(err == EBADF || err == ESRCH ? EBADF : err);
  return Answer::result(::inotify_add_watch(in.get(), r.host.c_str(), mask | IN_DONT_FOLLOW));
}

// ---- identity and hostname -----------------------------------------------------------------
Answer do_uname(const Config& cfg, Call& c) {
  if (!cfg.hostname) return Answer::cont();
  utsname u;
  ::uname(&u);
  std::snprintf(u.nodename, sizeof u.nodename, "%s", cfg.hostname->c_str());
  if (!write_mem(c.tid, c.a[0], &u, sizeof u)) return Answer::error(EFAULT);
  return Answer::value(0);
}

Answer do_sethostname(Config& cfg, Call& c) {
  if (!cfg.root) return Answer::error(EPERM);
  if (c.a[1] > 64) return Answer::error(EINVAL);
  std::string name(c.a[1], '\0');
  if (c.a[1] && !read_mem(c.tid, c.a[0], name.data(), name.size())) return Answer::error(EFAULT);
  cfg.hostname = name;
  return Answer::value(0);
}

Answer do_getgroups(const Config& cfg, Call& c) {
  std::vector<gid_t> buf(65536);
  gid_t* groups = buf.data();
  int n = ::getgroups(65536, groups);
  if (n < 0) return Answer::error(errno);
  for (int i = 0; i < n; ++i) groups[i] = view_gid(cfg, groups[i]);
  int size = c.arg_int(0);
  if (size == 0) return Answer::value(n);
  if (size < n) return Answer::error(EINVAL);
  if (n && !write_mem(c.tid, c.a[1], groups, sizeof(gid_t) * static_cast<size_t>(n))) return Answer::error(EFAULT);
  return Answer::value(n);
}

// --root: ids are 0; setting them to 0 (or leaving them, -1) is allowed, anything else is an id
// the view does not map.
Answer do_root_ids(Call& c) {
  switch (c.nr) {
    case SYS_getuid:
    case SYS_geteuid:
    case SYS_getgid:
    case SYS_getegid:
    case SYS_setfsuid:
    case SYS_setfsgid:
      return Answer::value(0);
    case SYS_getresuid:
    case SYS_getresgid: {
      uint32_t zero = 0;
      for (int i = 0; i < 3; ++i)
        if (!write_mem(c.tid, c.a[i], &zero, sizeof zero)) return Answer::error(EFAULT);
      return Answer::value(0);
    }
    default: {
      int n = c.nr == SYS_setuid || c.nr == SYS_setgid ? 1 : c.nr == SYS_setreuid || c.nr == SYS_setregid ? 2 : 3;
      for (int i = 0; i < n; ++i) {
        uint32_t v = static_cast<uint32_t>(c.a[i]);
        if (v != 0 && !(v == static_cast<uint32_t>(-1) && c.nr != SYS_setuid && c.nr != SYS_setgid))
          return Answer::error(EINVAL);
      }
      return Answer::value(0);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string accel_env(const Config& cfg) {
  // 1:UID:GID:ROOT:PATHS:HOLDERS — PATHS "a": no mounts, every path is the host's.
  std::string e = std::string(VU_ACCEL_ENV) + "=1:" + std::to_string(cfg.uid) + ":" + std::to_string(cfg.gid) +
                  ":" + (cfg.root ? "1" : "0") + ":" + (cfg.map.empty() ? "a" : "m") + ":";
  for (size_t i = 0; i < cfg.accel_holders.size() && i < VU_ACCEL_MAX_HOLDERS; ++i)
    e += (i ? "," : "") + std::to_string(cfg.accel_holders[i].first) + "." +
         std::to_string(cfg.accel_holders[i].second);
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
}  // namespace

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
  };
  std::vector<ListingCursor> cursors;

  std::atomic<uint64_t> notifications{0}, continued{0}, performed{0}, traced{0};
  std::weak_ptr<Core> weak_self;  // what a new worker holds on to

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
};
void* worker_main(void* arg) {
  std::unique_ptr<WorkerStart> start(static_cast<WorkerStart*>(arg));
  if (start->w) start->core->serve(start->w);
  else start->core->watch();
  return nullptr;
}
bool start_thread(pthread_t* t, WorkerStart* start) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1024 * 1024);
  // Every signal blocked from the start but the wake-up (serve() sets that mask too).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(t, &attr, worker_main, start);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
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
    Answer a = cfg.noop ? Answer::cont() : dispatch(c);
    answer(c, a, resp);
    w->busy = 0;
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
  if (!cfg_.accel_lib.empty()) accel_env_ = accel_env(cfg_);
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

Monitor::Answer Monitor::Core::dispatch(Call& c) {
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
      return fd_read_only(cfg, c, c.arg_int(0)) ? Answer::error(EROFS) : Answer::cont();
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
      std::lock_guard<std::mutex> lock(mu);
      return do_uname(cfg, c);
    }
    case SYS_sethostname: {
      std::lock_guard<std::mutex> lock(mu);
      return do_sethostname(cfg, c);
    }
    case SYS_getgroups: return do_getgroups(cfg, c);
    case SYS_setgroups: return Answer::error(EPERM);  // as in a user namespace with setgroups denied
    case SYS_inotify_add_watch: return do_inotify_add_watch(cfg, c);
    case SYS_getdents64: return do_getdents(c);
    default:
      if (cfg.root) return do_root_ids(c);
      return Answer::cont();
  }
}

// ---------------------------------------------------------------------------------------------
// ptrace: execve and chdir.

namespace {

// Writes strings and pointer arrays below the tracee's stack (past the red zone) and hands out
// their addresses. The tracee is stopped, so nothing else uses that memory.
class StackWriter {
 public:
  StackWriter(pid_t pid, uint64_t sp) : pid_(pid), top_(sp - 128) {}
  uint64_t put(const void* data, size_t len) {
    top_ = (top_ - len) & ~uint64_t{15};
    if (!write_mem(pid_, top_, data, len)) ok_ = false;
    return top_;
  }
  uint64_t put(const std::string& s) { return put(s.c_str(), s.size() + 1); }
  bool ok() const { return ok_; }

 private:
  pid_t pid_;
  uint64_t top_;
  bool ok_ = true;
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

void Monitor::on_seccomp_stop(pid_t pid) {
  ++core_->traced;
  user_regs_struct regs;
  if (::ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0) return;
  Call c{0, pid, static_cast<int>(regs.orig_rax), {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9}};
  auto fail = [&](int err) {
    regs.orig_rax = static_cast<uint64_t>(-1);  // skip the call; rax is its result
    regs.rax = static_cast<uint64_t>(-static_cast<int64_t>(err));
    (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
  };
  if (c.nr == SYS_chdir) {
    Resolved r = resolve_arg(cfg_, c, AT_FDCWD, c.a[0], true);
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
    if (!r.moved) return;
    StackWriter w(pid, regs.rsp);
    regs.rdi = w.put(r.host);
    if (!w.ok()) return fail(EFAULT);
    (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
    return;
  }
  if (c.nr == SYS_open || c.nr == SYS_openat) {  // with O_PATH (the filter sends no other)
    const bool at = c.nr == SYS_openat;
    const int dirfd = at ? c.arg_int(0) : AT_FDCWD, flags = c.arg_int(at ? 2 : 1);
    const uint64_t path_addr = c.a[at ? 1 : 0];
    Resolved r = resolve_arg(cfg_, c, dirfd, path_addr, !(flags & O_NOFOLLOW));
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
    if (!r.moved) return;  // the kernel's lookup is the view's
    StackWriter w(pid, regs.rsp);
    (at ? regs.rsi : regs.rdi) = w.put(r.host);
    if (!w.ok()) return fail(EFAULT);
    (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
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
  if (cfg_.map.empty()) {
    // No mounts: the kernel's lookup is the view's; the stop is only for the environment, and
    // an execve that will fail (a PATH search trying directories) is left to fail untouched.
    if (read_string(pid, path_addr, &raw) != 0) return;
    if (!raw.empty() && raw[0] == '/' && ::access(raw.c_str(), F_OK) < 0) return;
    r.exists = true;
  } else {
    r = resolve_arg(cfg_, c, dirfd, path_addr, !(flags & AT_SYMLINK_NOFOLLOW), &raw);
    if (r.err) return fail(r.err);
    if (!r.exists) return fail(ENOENT);
  }
  std::string interp, iarg;
  Resolved ir;
  bool script = !cfg_.map.empty() && S_ISREG(r.st.st_mode) && read_shebang(r.host, &interp, &iarg);
  if (script) {
    // The kernel would look the interpreter up on the host; the view's may be elsewhere.
    Start s;
    if (interp[0] != '/' && start_of(cfg_, c, AT_FDCWD, &s)) return fail(ENOENT);
    ir = cfg_.map.resolve(s, interp, true, {});
    if (!r.moved && (ir.err || !ir.exists || !ir.moved)) script = false;  // the host's lookup is right
    else if (ir.err) return fail(ir.err);
    else if (!ir.exists) return fail(ENOENT);
  }
  std::vector<uint64_t> envp;
  const bool accel = !cfg_.accel_lib.empty() && inject_env(pid, envp_addr, &envp);
  if (!r.moved && !script && !accel) return;
  StackWriter w(pid, regs.rsp);
  if (script) {
    // argv becomes: INTERP [ARG] PATH-as-given argv[1…] — what binfmt_script builds.
    std::vector<uint64_t> argv;
    argv.push_back(w.put(interp));
    if (!iarg.empty()) argv.push_back(w.put(iarg));
    argv.push_back(w.put(raw));
    for (uint64_t i = 1;; ++i) {
      uint64_t p = 0;
      if (!argv_addr || !read_mem(pid, argv_addr + 8 * i, &p, 8) || !p) break;
      argv.push_back(p);
      if (argv.size() > 1u << 20) return fail(E2BIG);
    }
    argv.push_back(0);
    regs.rsi = w.put(argv.data(), argv.size() * 8);
    regs.rdi = w.put(ir.host);
  } else {
    regs.rdi = r.moved ? w.put(r.host) : path_addr;
    regs.rsi = argv_addr;
  }
  regs.rdx = envp_addr;
  if (accel) {
    // LD_PRELOAD and the fast path's configuration first, then the caller's environment.
    envp[0] = w.put("LD_PRELOAD=" + cfg_.accel_lib);
    envp[1] = w.put(accel_env_);
    regs.rdx = w.put(envp.data(), envp.size() * 8);
  }
  if (at && !r.moved && !script) {
    // execveat with the caller's own dirfd and path: keep the call, change only its envp.
    regs.rdi = c.a[0];
    regs.rsi = path_addr;
    regs.rdx = argv_addr;
    regs.r10 = w.put(envp.data(), envp.size() * 8);
  } else {
    regs.orig_rax = SYS_execve;
  }
  if (!w.ok()) return fail(EFAULT);
  (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
}

// The caller's envp with two free slots in front, unless it already has LD_PRELOAD (the user's
// own; the fast path then stays off) or the fast path's variable. False: leave envp alone.
bool Monitor::inject_env(pid_t pid, uint64_t envp_addr, std::vector<uint64_t>* out) {
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
Monitor::Answer Monitor::Core::do_getdents(Call& c) {
  struct stat st;
  if (::stat(fd_path(c.tid, c.arg_int(0)).c_str(), &st) < 0) return Answer::cont();
  std::vector<const Config::Entry*> names;
  for (const auto& [key, e] : cfg.listing)
    if (key.first == st.st_dev && key.second == st.st_ino) names.push_back(&e);
  if (names.empty()) return Answer::cont();
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
  size_t next = cur == cursors.end() ? 0 : cur->next;
  // Room for at least one host entry (a 255-byte name takes 280) in the call that ends them.
  constexpr size_t kHostRoom = 512;
  const size_t count = std::min<size_t>(c.a[2], 1 << 20);
  if (count < kHostRoom + 32) return Answer::cont();  // the kernel says EINVAL if it must
  std::vector<char> buf(count, 0);
  size_t used = 0;
  for (; next < names.size(); ++next) {
    const Config::Entry& e = *names[next];
    size_t reclen = (offsetof(struct dirent64, d_name) + e.name.size() + 1 + 7) & ~size_t{7};
    if (used + reclen > count - kHostRoom) break;
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
      cursors.push_back({std::move(dir), c.tgid(), c.arg_int(0), next});
    } else {
      cur->next = next;
    }
    lock.unlock();
    if (!write_mem(c.tid, c.a[1], buf.data(), used)) return Answer::error(EFAULT);
    return Answer::value(static_cast<int64_t>(used));
  }
  if (cur != cursors.end()) cursors.erase(cur);
  lock.unlock();
  long n = ::syscall(SYS_getdents64, dir.get(), buf.data() + used, count - used);
  if (n < 0) return Answer::error(errno);
  size_t total = used + static_cast<size_t>(n);
  if (!write_mem(c.tid, c.a[1], buf.data(), total)) return Answer::error(EFAULT);
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
  return nr == SYS_getdents64;
}
constexpr long kERestartNoIntr = 513;
}  // namespace

// Whether a trapped call that ended with -ERESTARTSYS must be restarted whatever the handler:
// a call that cannot be interrupted natively. An open can when it waits (a FIFO, a tty): it is
// restarted unless it names such a file, which the kernel may have been opening natively (let
// through), where a handler without SA_RESTART gets EINTR as it would without vu.
bool Monitor::restartable(pid_t pid, const user_regs_struct& regs) {
  const long nr = static_cast<long>(regs.orig_rax);
  if (never_eintr(nr)) return true;
  if (nr != SYS_open && nr != SYS_openat && nr != SYS_creat) return false;
  if (cfg_.map.empty()) return false;  // not trapped
  Call c{0, pid, static_cast<int>(nr), {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9}};
  const bool at = nr == SYS_openat;
  const int flags = nr == SYS_creat ? O_CREAT : c.arg_int(at ? 2 : 1);
  Resolved r = resolve_arg(cfg_, c, at ? c.arg_int(0) : AT_FDCWD, c.a[at ? 1 : 0], !(flags & O_NOFOLLOW));
  return !r.exists || !(S_ISFIFO(r.st.st_mode) || S_ISCHR(r.st.st_mode));
}

bool Monitor::on_wait_status(pid_t pid, int status) {
  if (!WIFSTOPPED(status)) {
    // A caller that dies while a worker performs its call: a blocking call (FIFO open, connect)
    // is interrupted, the worker finds the notification gone and answers nothing.
    std::lock_guard<std::mutex> lock(core_->mu);
    for (Core::Worker& w : core_->workers)
      if (w.busy == pid && !w.done) ::pthread_kill(w.thread, wake_signal());
    return false;
  }
  const int sig = WSTOPSIG(status);
  const int event = status >> 16;
  int inject = 0;
  switch (event) {
    case PTRACE_EVENT_SECCOMP:
      on_seccomp_stop(pid);
      break;
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
    case PTRACE_EVENT_EXEC:
    case PTRACE_EVENT_EXIT:
      break;
    case PTRACE_EVENT_STOP:
      if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
        (void)::ptrace(PTRACE_LISTEN, pid, 0, 0);  // a group stop: stay stopped until SIGCONT
        return true;
      }
      break;
    default:
      inject = sig;  // a signal on its way to the tracee: deliver it
      if (killable_) {
        // A signal that came while a trapped call waited for a worker to take it: the call
        // was withdrawn before anything was done (the wait is killable only once received),
        // and ends with -ERESTARTSYS, which a handler without SA_RESTART turns into EINTR —
        // an error mkdir or getuid never return natively. Restart it after the handler.
        user_regs_struct regs;
        if (::ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0 && static_cast<int64_t>(regs.rax) == -kERestartSys &&
            restartable(pid, regs)) {
          regs.rax = static_cast<uint64_t>(-kERestartNoIntr);
          (void)::ptrace(PTRACE_SETREGS, pid, 0, &regs);
        }
      }
  }
  (void)::ptrace(PTRACE_CONT, pid, 0, inject);
  return true;
}

}  // namespace vu::pvm
