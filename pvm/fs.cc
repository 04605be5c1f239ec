#include "pvm/fs.h"
#include "pvm/rootfs_exec.h"

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
#include <sys/sysmacros.h>
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

#include "pvm/compat.h"
#include "pvm/cow.h"
#include "pvm/fuse_client.h"
#include "pvm/host_at.h"

namespace vu::pvm {

// ---- copy-on-write directories (pvm/cow.h): what each call does below one ----------------------
Answer cow_result(int err) { return err ? Answer::error(err) : Answer::value(0); }

// A descriptor's stat as the view shows it when it is a file of a copy-on-write directory.
void cow_present_fd(const Config& cfg, const std::string& fdlink, struct stat* st) {
  Cow* cow;
  std::string rel;
  if (!cfg.map.has_cow()) return;
  std::string host = read_link(fdlink);
  if (cow_of_host(cfg.map, host, &cow, &rel)) cow->present_fd(host, st);
}

// statx fields from what present() made of the same object's stat.
void cow_present_statx(const struct stat& st, struct statx* stx) {
  stx->stx_uid = st.st_uid;
  stx->stx_gid = st.st_gid;
  stx->stx_mode = static_cast<uint16_t>(st.st_mode);
  stx->stx_ino = st.st_ino;
  stx->stx_dev_major = major(st.st_dev);
  stx->stx_dev_minor = minor(st.st_dev);
}
struct stat statx_to_stat(const struct statx& x) {
  struct stat st {};
  st.st_uid = x.stx_uid;
  st.st_gid = x.stx_gid;
  st.st_mode = x.stx_mode;
  st.st_ino = x.stx_ino;
  st.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st.st_nlink = x.stx_nlink;
  return st;
}

// The last component of a path as written: "." or ".." (rmdir and rename refuse them; the
// kernel looks at the name, not at what it resolves to). 0 otherwise, 1 ".", 2 "..".
int last_dot(const std::string& raw) {
  size_t end = raw.find_last_not_of('/');
  if (end == std::string::npos) return 0;
  size_t b = raw.rfind('/', end);
  std::string_view last = std::string_view(raw).substr(b == std::string::npos ? 0 : b + 1, end - (b == std::string::npos ? 0 : b + 1) + 1);
  return last == "." ? 1 : last == ".." ? 2 : 0;
}

// access() below a cow: every file there is the view's own, so the owner's bits decide.
Answer cow_access(const Config& cfg, const Resolved& r, int mode) {
  struct stat st = r.st;
  r.cow->present(r.rel, r.node, &st);
  if (mode == F_OK) return Answer::value(0);
  if (cfg.root) {  // as root: read and write anything, execute what someone may execute
    if ((mode & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111)) return Answer::error(EACCES);
    return Answer::value(0);
  }
  if (((mode & R_OK) && !(st.st_mode & S_IRUSR)) || ((mode & W_OK) && !(st.st_mode & S_IWUSR)) ||
      ((mode & X_OK) && !(st.st_mode & S_IXUSR)))
    return Answer::error(EACCES);
  return Answer::value(0);
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

Answer write_stat(const Config& cfg, Call& c, struct stat st, uint64_t buf) {
  if (!cfg.fuse_trees.empty()) fuse_adjust_stat(cfg, &st);
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
    if (std::string source, type; fuse_mount_names(cfg, m.host, &source, &type)) {
      const std::string ids = "user_id=" + std::to_string(cfg.root ? cfg.shown_uid : cfg.uid) +
                              ",group_id=" + std::to_string(cfg.root ? cfg.shown_gid : cfg.gid);
      // squashfuse's mount is not read-only for the kernel (its program refuses the writes).
      const std::string fopts = std::string(m.read_only && source != "squashfuse" ? "ro" : "rw") + ",nosuid,nodev,relatime";
      if (kind == MountTable::kMountinfo)
        table += std::to_string(id) + " 1 " + best->f[2] + " / " + escape_mount_path(m.view) + " " + fopts +
                 " - " + type + " " + source + " rw," + ids + "\n";
      else
        table += source + " " + escape_mount_path(m.view) + " " + type + " " + fopts + "," + ids + " 0 0\n";
      ++id;
      continue;
    }
    // A copy-on-write directory is listed as the ns backend's kernel layer is: an overlay.
    const std::string type = m.cow ? "overlay" : best->type, source = m.cow ? "overlay" : best->source,
                      super = m.cow ? "rw,userxattr" : best->super;
    if (kind == MountTable::kMountinfo)
      table += std::to_string(id) + " 1 " + best->f[2] + " " + escape_mount_path(root) + " " +
               escape_mount_path(m.view) + " " + opts + " - " + type + " " + source + " " + super + "\n";
    else
      table += source + " " + escape_mount_path(m.view) + " " + type + " " + opts + " 0 0\n";
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
  if (r.fuse_long)  // a name the FUSE program is asked about (pvm/fuse_client.h)
    return Answer::error(fuse_make_long(cfg, c, r, {.opcode = FUSE_CREATE, .mode = mode & ~umask_of(c), .flags = flags}));
  if (!cfg.fuse_trees.empty() && r.exists && S_ISREG(r.st.st_mode))
    if (int e = fuse_before_open(cfg, c, r.host, r.st, flags)) return Answer::error(e);
  if (!r.moved && !(r.cow && cfg.root)) return Answer::cont();  // --root's override: Cow::open
  if (flags & (O_CREAT | O_TMPFILE)) mode &= ~umask_of(c);
  // On a worker thread (Monitor): a FIFO open waits here for its peer, as the caller would.
  Answer a;
  if (r.cow) {
    // Copied up first when the open writes (a long copy hands the receiving over).
    const bool waits = r.exists && (S_ISFIFO(r.st.st_mode) || S_ISCHR(r.st.st_mode)) && !(flags & O_NONBLOCK);
    // Not expected to wait: O_NONBLOCK for the open itself, so a FIFO someone put in the lower
    // tree since the lookup cannot hold this worker (taken off again: the caller's reads block).
    const int nonblock = waits || (flags & O_NONBLOCK) ? 0 : O_NONBLOCK;
    auto open_cow = [&] {
      int fd = r.cow->open(r.rel, flags | nonblock, mode, c.before_wait, cfg.root);
      if (fd < 0) errno = -fd;
      if (fd >= 0 && nonblock) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      return static_cast<long>(fd < 0 ? -1 : fd);
    };
    a.fd.reset(static_cast<int>(waits ? wait_like_caller(c, open_cow) : open_cow()));
    if (!a.fd) return Answer::error(errno);
    a.kind = Answer::kFd;
    a.cloexec = flags & O_CLOEXEC;
    return a;
  }
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  auto open_host = [&] { return static_cast<long>(::openat(h.fd(), h.rel(), flags | O_CLOEXEC, mode)); };
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
  cow_present_fd(cfg, p, &st);
  return write_stat(cfg, c, st, buf);
}

// The flags the kernel's fstatat and statx take (others: EINVAL, before any lookup).
constexpr int kStatFlags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE;

Answer do_stat(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t buf, int flags) {
  if (flags & ~kStatFlags) return Answer::error(EINVAL);
  if (names_dirfd(c.tid, path, flags)) return do_fstat(cfg, c, dirfd, buf);
  Resolved r = resolve_arg(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (r.cow) r.cow->present(r.rel, r.node, &r.st);
  return write_stat(cfg, c, r.st, buf);
}

Answer do_statx(const Config& cfg, Call& c) {
  const int dirfd = c.arg_int(0), flags = c.arg_int(2);
  const unsigned mask = static_cast<unsigned>(c.a[3]);
  if ((flags & ~kStatFlags) || (flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE) return Answer::error(EINVAL);
  std::string host;
  int sflags = flags & AT_STATX_SYNC_TYPE;
  Resolved r;
  const bool fd = names_dirfd(c.tid, c.a[1], flags);
  if (fd) {
    host = dirfd_path(c.tid, dirfd);
  } else {
    r = resolve_arg(cfg, c, dirfd, c.a[1], !(flags & AT_SYMLINK_NOFOLLOW));
    if (r.err) return Answer::error(r.err);
    if (!r.exists) return Answer::error(ENOENT);
    host = r.host;
    if (S_ISLNK(r.st.st_mode)) sflags |= AT_SYMLINK_NOFOLLOW;
  }
  struct statx stx;
  HostAt h(host);
  if (h.err) return Answer::error(h.err);
  if (::statx(h.fd(), h.rel(), sflags, mask | STATX_BASIC_STATS, &stx) < 0)
    return Answer::error(errno == ENOENT && host.compare(0, 6, "/proc/") == 0 ? EBADF : errno);
  if (r.cow || (fd && cfg.map.has_cow())) {
    struct stat st = statx_to_stat(stx);
    if (r.cow) r.cow->present(r.rel, r.node, &st);
    else cow_present_fd(cfg, host, &st);
    cow_present_statx(st, &stx);
  }
  if (!cfg.fuse_trees.empty()) fuse_adjust_statx(cfg, &stx);
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
  if (r.cow) return cow_access(cfg, r, mode);
  if (!r.moved) return Answer::cont();
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::faccessat(h.fd(), h.rel(), mode, (flags & AT_EACCESS) | AT_SYMLINK_NOFOLLOW));
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
  std::string target;
  if (r.cow) {  // beneath the layer's root: no symlink on the way (the lower tree may change)
    char b[4096];
    ssize_t k = r.cow->read_link(r.rel, r.node.layer, b, sizeof b);
    if (k < 0) return Answer::error(errno);
    target.assign(b, static_cast<size_t>(k));
  } else {
    target = read_link(r.host);
  }
  if (target.empty()) return Answer::error(errno ? errno : EINVAL);
  if (magic && cfg.exe && target[0] == '/') {
    // --rootfs: a program run by the tree's loader (pvm/rootfs_exec.h) is its own /proc/PID/exe.
    if (pid_t pid = proc_exe_pid(r.host)) {
      if (std::string exe = cfg.exe->lookup(pid, target); !exe.empty()) return reply_string(c, exe, buf, size, false);
    }
  }
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
  if (r.fuse_long) return Answer::error(fuse_make_long(cfg, c, r, {.opcode = FUSE_MKDIR, .mode = mode & 07777 & ~umask_of(c)}));
  if (r.cow) return cow_result(r.cow->mkdir(r.rel, mode & 07777 & ~umask_of(c)));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::mkdirat(h.fd(), h.rel(), mode & ~umask_of(c)));
}

Answer do_mknod(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode, dev_t dev) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  if (r.cow && S_ISCHR(mode) && dev == 0 && !r.err) return Answer::error(EPERM);  // a whiteout: the layer's word
  Answer a = check_create(cfg, r);
  if (a.kind != Answer::kContinue || !r.moved) return a;
  if (r.fuse_long)  // (the kernel's FUSE makes a regular file with MKNOD too)
    return Answer::error(fuse_make_long(cfg, c, r, {.opcode = FUSE_MKNOD, .mode = ((mode & S_IFMT) ? mode : mode | S_IFREG) & ~umask_of(c), .rdev = dev}));
  if (r.cow) return cow_result(r.cow->mknod(r.rel, mode & ~umask_of(c), dev));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::mknodat(h.fd(), h.rel(), mode & ~umask_of(c), dev));
}

Answer do_symlink(const Config& cfg, Call& c, uint64_t target, int dirfd, uint64_t path) {
  Resolved r = resolve_arg(cfg, c, dirfd, path, false);
  Answer a = check_create(cfg, r);
  if (a.kind != Answer::kContinue || !r.moved) return a;
  std::string t;
  if (int e = read_string(c.tid, target, &t)) return Answer::error(e);
  if (r.fuse_long) return Answer::error(t.empty() ? ENOENT : fuse_make_long(cfg, c, r, {.opcode = FUSE_SYMLINK, .target = t}));
  if (r.cow) return cow_result(t.empty() ? ENOENT : r.cow->symlink(t, r.rel));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::symlinkat(t.c_str(), h.fd(), h.rel()));
}

Answer do_remove(const Config& cfg, Call& c, int dirfd, uint64_t path, bool dir) {
  std::string raw;
  Resolved r = resolve_arg(cfg, c, dirfd, path, false, &raw);
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (r.cow && dir && last_dot(raw)) return Answer::error(last_dot(raw) == 1 ? EINVAL : ENOTEMPTY);
  if (r.mountpoint) return Answer::error(mountpoint_error(cfg, r));
  if (r.read_only() || in_read_only_mirror(cfg, r)) return Answer::error(EROFS);
  if (!cfg.fuse_trees.empty())  // the sticky bit with a FUSE program's owners (pvm/fuse_client.h)
    if (int e = fuse_owner_check(cfg, r.host, r.st, FuseUse::kRemove)) return Answer::error(e);
  if (!r.moved) return Answer::cont();
  if (r.cow) return cow_result(r.rel == "." ? EBUSY : r.cow->remove(r.rel, dir));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::unlinkat(h.fd(), h.rel(), dir ? AT_REMOVEDIR : 0));
}

Answer do_rename(const Config& cfg, Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                 unsigned flags) {
  std::string oraw, nraw;
  Resolved o = resolve_arg(cfg, c, olddir, oldp, false, &oraw);
  if (o.err) return Answer::error(o.err);
  Resolved n = resolve_arg(cfg, c, newdir, newp, false, &nraw);
  if (n.err) return Answer::error(n.err);
  if (!o.exists) return Answer::error(ENOENT);
  if ((o.cow || n.cow) && (last_dot(oraw) || last_dot(nraw))) return Answer::error(EBUSY);
  if (o.mountpoint) return Answer::error(mountpoint_error(cfg, o));
  if (n.mountpoint) return Answer::error(mountpoint_error(cfg, n));
  if (o.mount != n.mount) return Answer::error(EXDEV);
  if (o.read_only() || in_read_only_mirror(cfg, o) || in_read_only_mirror(cfg, n)) return Answer::error(EROFS);
  if (!cfg.fuse_trees.empty()) {  // the sticky bit with a FUSE program's owners (pvm/fuse_client.h)
    if (int e = fuse_owner_check(cfg, o.host, o.st, FuseUse::kRemove)) return Answer::error(e);
    if (int e = n.exists ? fuse_owner_check(cfg, n.host, n.st, FuseUse::kRemove) : 0) return Answer::error(e);
  }
  if (n.fuse_long)  // a name the FUSE program is asked about (pvm/fuse_client.h)
    return Answer::error((flags & RENAME_EXCHANGE) ? ENOENT : fuse_make_long(cfg, c, n, {.opcode = FUSE_RENAME, .rename_flags = flags, .from = o.host}));
  if (!o.moved && !n.moved) return Answer::cont();
  if (o.cow) return cow_result(o.rel == "." || n.rel == "." ? EBUSY : o.cow->rename(o.rel, n.rel, flags));
  HostAt ho(o.host), hn(n.host);
  if (ho.err || hn.err) return Answer::error(ho.err ? ho.err : hn.err);
  return Answer::result(::renameat2(ho.fd(), ho.rel(), hn.fd(), hn.rel(), flags));
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
  if (!cfg.fuse_trees.empty() && !S_ISDIR(o.st.st_mode))  // protected_hardlinks, a FUSE program's owners (pvm/fuse_client.h)
    if (int e = fuse_owner_check(cfg, o.host, o.st, FuseUse::kLink)) return Answer::error(e);
  if (n.fuse_long) return Answer::error(S_ISDIR(o.st.st_mode) ? EPERM : fuse_make_long(cfg, c, n, {.opcode = FUSE_LINK, .from = o.host}));
  if (!o.moved && !n.moved) return Answer::cont();
  if (o.cow) return cow_result(S_ISDIR(o.st.st_mode) ? EPERM : o.cow->link(o.rel, n.rel));
  HostAt ho(o.host), hn(n.host);
  if (ho.err || hn.err) return Answer::error(ho.err ? ho.err : hn.err);
  return Answer::result(::linkat(ho.fd(), ho.rel(), hn.fd(), hn.rel(), 0));
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
  if (!cfg.fuse_trees.empty() && r.exists)  // (a relative path from a cwd in a shadow is not moved)
    if (int e = fuse_chmod_check(cfg, r.st)) return Answer::error(e);  // another owner's (fuse_client.h)
  if (!r.moved) return Answer::cont();
  if (r.cow) return cow_result(S_ISLNK(r.st.st_mode) ? EOPNOTSUPP : r.cow->chmod(r.rel, mode & 07777));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::fchmodat(h.fd(), h.rel(), mode, flags & AT_SYMLINK_NOFOLLOW));
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
    Cow* cow;
    std::string rel;
    if (cow_of_host(cfg.map, read_link(host), &cow, &rel) == 2) return cow_result(cow->chown(rel, hu, hg));
  }
  if (host.empty()) {
    Resolved r = resolve_modify(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
    if (r.err) return Answer::error(r.err);
    if (r.cow) return cow_result(r.cow->chown(r.rel, hu, hg));
    host = r.host;
    if (S_ISLNK(r.st.st_mode)) hflags = AT_SYMLINK_NOFOLLOW;
  }
  HostAt h(host);
  if (h.err) return Answer::error(h.err);
  if (struct stat st; !cfg.fuse_trees.empty() && (hu != static_cast<uid_t>(-1) || hg != static_cast<gid_t>(-1)) &&
                      ::fstatat(h.fd(), h.rel(), &st, hflags) == 0)  // another owner's (pvm/fuse_client.h)
    if (int e = fuse_chmod_check(cfg, st)) return Answer::error(e);
  return Answer::result(::fchownat(h.fd(), h.rel(), hu, hg, hflags));
}

Answer do_fchown(const Config& cfg, Call& c) {
  uid_t hu;
  gid_t hg;
  if (!host_uid(cfg, static_cast<uint32_t>(c.a[1]), &hu) || !host_gid(cfg, static_cast<uint32_t>(c.a[2]), &hg))
    return Answer::error(EINVAL);
  if (fd_read_only(cfg, c, c.arg_int(0))) return Answer::error(EROFS);
  Cow* cow;
  std::string rel;
  if (cow_of_host(cfg.map, read_link(fd_path(c.tid, c.arg_int(0))), &cow, &rel) == 2)  // a lower file's descriptor
    return cow_result(cow->chown(rel, hu, hg));
  if (struct stat st; !cfg.fuse_trees.empty() && (hu != static_cast<uid_t>(-1) || hg != static_cast<gid_t>(-1)) &&
                      ::stat(fd_path(c.tid, c.arg_int(0)).c_str(), &st) == 0)  // another owner's (pvm/fuse_client.h)
    if (int e = fuse_chmod_check(cfg, st)) return Answer::error(e);
  if (::fchownat(AT_FDCWD, fd_path(c.tid, c.arg_int(0)).c_str(), hu, hg, 0) < 0)
    return Answer::error(errno == ENOENT ? EBADF : errno);
  return Answer::value(0);
}

Answer do_truncate(const Config& cfg, Call& c) {
  Resolved r = resolve_modify(cfg, c, AT_FDCWD, c.a[0], true);
  if (r.err) return Answer::error(r.err);
  if (!cfg.fuse_trees.empty())  // growing a file of a FUSE program's: asked first (pvm/fuse_client.h)
    if (int e = fuse_truncate(cfg, c, r.host, r.st, static_cast<int64_t>(c.a[1])); e >= 0) return e ? Answer::error(e) : Answer::value(0);
  if (!r.moved) return Answer::cont();
  if (r.cow) {
    if (S_ISDIR(r.st.st_mode)) return Answer::error(EISDIR);
    if (!S_ISREG(r.st.st_mode)) return Answer::error(EINVAL);
    if (static_cast<int64_t>(c.a[1]) < 0) return Answer::error(EINVAL);
    return cow_result(r.cow->truncate(r.rel, static_cast<off_t>(c.a[1])));
  }
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::truncate(h.path().c_str(), static_cast<off_t>(c.a[1])));
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
      Cow* cow;
      std::string rel;
      const std::string fhost = read_link(fd_path(c.tid, dirfd));
      if (struct stat st; !cfg.fuse_trees.empty() && ::stat(fd_path(c.tid, dirfd).c_str(), &st) == 0)  // pvm/fuse_client.h
        if (int e = fuse_utimes_check(cfg, c, fhost, st, times)) return Answer::error(e);
      if (cow_of_host(cfg.map, fhost, &cow, &rel) != 2) return Answer::cont();
      timespec ts[2];  // a lower file's descriptor: the layer's copy changes
      if (times && !read_mem(c.tid, times, ts, sizeof ts)) return Answer::error(EFAULT);
      return cow_result(cow->utimens(rel, times ? ts : nullptr));
    }
  }
  Resolved r = resolve_modify(cfg, c, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!cfg.fuse_trees.empty())  // another owner's object of a FUSE program's (pvm/fuse_client.h)
    if (int e = fuse_utimes_check(cfg, c, r.host, r.st, times)) return Answer::error(e);
  if (!r.moved) return Answer::cont();
  std::string cow_rel = r.rel;
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
  if (r.cow) return cow_result(r.cow->utimens(cow_rel, tp));
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::utimensat(h.fd(), h.rel(), tp, flags & AT_SYMLINK_NOFOLLOW));
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
  if (!r.moved && !r.cow) return Answer::cont();  // a cow's user.overlay.* names are escaped
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  const std::string host_path = h.path();
  const char* host = host_path.c_str();
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
      if (r.cow) return cow_result(r.cow->setxattr(r.rel, name, buf.data(), buf.size(), c.arg_int(4)));
      long rc = nofollow ? ::lsetxattr(host, name.c_str(), buf.data(), buf.size(), c.arg_int(4))
                         : ::setxattr(host, name.c_str(), buf.data(), buf.size(), c.arg_int(4));
      return Answer::result(rc);
    }
    case SYS_removexattr:
    case SYS_lremovexattr:
      if (r.cow) return cow_result(r.cow->removexattr(r.rel, name));
      return Answer::result(nofollow ? ::lremovexattr(host, name.c_str()) : ::removexattr(host, name.c_str()));
    case SYS_getxattr:
    case SYS_lgetxattr:
    case SYS_listxattr:
    case SYS_llistxattr: {
      const bool list = c.nr == SYS_listxattr || c.nr == SYS_llistxattr;
      size_t size = std::min<uint64_t>(list ? c.a[2] : c.a[3], 65536);
      uint64_t out = list ? c.a[1] : c.a[2];
      buf.resize(size ? size : 1);
      ssize_t n = r.cow ? (list ? r.cow->listxattr(r.rel, r.node, buf.data(), size)
                                : r.cow->getxattr(r.rel, r.node, name, size ? buf.data() : nullptr, size))
                  : -1;
      if (r.cow && n < 0) return Answer::error(static_cast<int>(-n));
      if (!r.cow) n = list ? (nofollow ? ::llistxattr(host, buf.data(), size) : ::listxattr(host, buf.data(), size))
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
  if (!r.moved && !r.read_only() && !r.cow) return Answer::cont();
  struct statfs sf;
  if (int e = fuse_statfs(cfg, r.host, &sf); e > 0) return Answer::error(e);
  else if (e < 0 && ::statfs(HostAt(r.host).path().c_str(), &sf) < 0) return Answer::error(errno);
  if (r.read_only()) sf.f_flags |= ST_RDONLY;
  if (r.cow) sf.f_type = 0x794c7630;  // OVERLAYFS_SUPER_MAGIC: what the ns backend's kernel layer says
  if (!write_mem(c.tid, c.a[1], &sf, sizeof sf)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// inotify_add_watch(fd, path, mask): the watch is added to the caller's inotify instance (a
// duplicate of its descriptor) on the view's object.
// fchmod, fsetxattr, fremovexattr: EROFS on a read-only bind; on a descriptor of a
// copy-on-write directory's file, the layer's copy changes (a lower file's read-only
// descriptor is never written through, and the view's user.overlay.* names are escaped).
Answer do_fd_change(const Config& cfg, Call& c) {
  const int fd = c.arg_int(0);
  if (fd_read_only(cfg, c, fd)) return Answer::error(EROFS);
  struct stat st;
  if (c.nr == SYS_fchmod && !cfg.fuse_trees.empty() && ::stat(fd_path(c.tid, fd).c_str(), &st) == 0)
    if (int e = fuse_chmod_check(cfg, st)) return Answer::error(e);
  Cow* cow;
  std::string rel;
  const int layer = cow_of_host(cfg.map, read_link(fd_path(c.tid, fd)), &cow, &rel);
  if (!layer) return Answer::cont();
  if (c.nr == SYS_fchmod) return layer == 2 ? cow_result(cow->chmod(rel, static_cast<mode_t>(c.a[1]) & 07777)) : Answer::cont();
  std::string name;
  if (int e = read_string(c.tid, c.a[1], &name, 256)) return Answer::error(e == ENAMETOOLONG ? ERANGE : e);
  if (c.nr == SYS_fremovexattr) return cow_result(cow->removexattr(rel, name));
  if (c.a[3] > 65536) return Answer::error(E2BIG);
  std::vector<char> buf(c.a[3]);
  if (c.a[3] && !read_mem(c.tid, c.a[2], buf.data(), buf.size())) return Answer::error(EFAULT);
  return cow_result(cow->setxattr(rel, name, buf.data(), buf.size(), c.arg_int(4)));
}

Answer do_inotify_add_watch(const Config& cfg, Call& c) {
  const uint32_t mask = static_cast<uint32_t>(c.a[2]);
  Resolved r = resolve_arg(cfg, c, AT_FDCWD, c.a[1], !(mask & IN_DONT_FOLLOW));
  if (r.err) return Answer::error(r.err);
  if (!r.exists) return Answer::error(ENOENT);
  if (!r.moved) return Answer::cont();
  int err = 0;
  UniqueFd in = take_fd(c, c.arg_int(0), &err);
  if (!in) return Answer::error(err == EBADF || err == ESRCH ? EBADF : err);
  HostAt h(r.host);
  if (h.err) return Answer::error(h.err);
  return Answer::result(::inotify_add_watch(in.get(), h.path().c_str(), mask | IN_DONT_FOLLOW));
}


}  // namespace vu::pvm
