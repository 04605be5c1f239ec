// pvm/fuse_client_limits.cc — environment A: where the shadow tree's own limits would answer a
// call under a FUSE mountpoint, the program is asked what the kernel's FUSE would ask it
// (pvm/fuse_client.h, "Limits: the program's, asked"): names longer than NAME_MAX (the kernel
// sends them up to FUSE_NAME_MAX) and sizes a truncate grows a file to.
#include "pvm/fuse_client.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "pvm/host_at.h"

namespace vu::pvm {

namespace {
// fs/fuse/fuse_i.h: the longest name the kernel's FUSE sends a program (longer: ENAMETOOLONG).
constexpr size_t kFuseNameMax = 1024;

void split(const std::string& host, std::string* dir, std::string* name) {
  const size_t slash = host.rfind('/');
  *dir = host.substr(0, slash);
  *name = host.substr(slash + 1);
}

// The kernel's permission check of the caller before it asks the program (the monitor runs
// with the caller's ids; the shadow's modes are what the view's checks see).
int may(const std::string& host, int mode) {
  return ::faccessat(AT_FDCWD, HostAt(host).path().c_str(), mode, AT_EACCESS) < 0 ? errno : 0;
}

// The caller's RLIMIT_FSIZE (the kernel's check before SETATTR: SIGXFSZ and EFBIG).
bool within_fsize(Call& c, uint64_t size) {
  struct rlimit rl;
  if (::prlimit(c.tgid(), RLIMIT_FSIZE, nullptr, &rl) < 0) return false;  // the usual path decides
  return rl.rlim_cur == RLIM_INFINITY || size <= rl.rlim_cur;
}
}  // namespace

uint64_t FuseTree::node_locked(const std::string& host) {
  struct stat st;
  if (host_lstat(host, &st) < 0) return 0;
  auto it = nodes_.find(st.st_ino);
  return it == nodes_.end() ? 0 : it->second.node;
}

int FuseTree::ask_lookup(const std::string& dir, const std::string& name) {
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!FuseClient::lock_or_give_up(lock)) return EINTR;
  if (sync_locked() == EINTR) return EINTR;  // (a failed write-back is logged; the directory may be known)
  const uint64_t parent = node_locked(dir);
  if (!parent) return EIO;
  FuseClient::Entry e;
  int err = client_->lookup(parent, name, &e);
  if (!err) client_->forget(e.node, 1);
  return err;
}

int FuseTree::ask_make(const std::string& dir, const std::string& name, const Make& m) {
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!FuseClient::lock_or_give_up(lock)) return EINTR;
  if (sync_locked() == EINTR) return EINTR;
  const uint64_t parent = node_locked(dir);
  if (!parent) return EIO;
  std::string from_dir, from_name;
  uint64_t from = 0;
  if (m.opcode == FUSE_LINK || m.opcode == FUSE_RENAME) {
    split(m.from, &from_dir, &from_name);
    from = node_locked(m.opcode == FUSE_LINK ? m.from : from_dir);
    if (!from) return EIO;
  }
  FuseClient::Entry e;
  int err = 0;
  switch (m.opcode) {
    case FUSE_CREATE: {
      uint64_t fh = 0;
      err = client_->create(parent, name, S_IFREG | (m.mode & 07777), m.flags, &e, &fh);
      if (err == ENOSYS) err = client_->mknod(parent, name, S_IFREG | (m.mode & 07777), 0, &e);
      else if (!err) (void)client_->release(e.node, fh, false);
      break;
    }
    case FUSE_MKDIR: err = client_->mkdir(parent, name, m.mode & 07777, &e); break;
    case FUSE_MKNOD: err = client_->mknod(parent, name, m.mode, m.rdev, &e); break;
    case FUSE_SYMLINK: err = client_->symlink(parent, name, m.target, &e); break;
    case FUSE_LINK: err = client_->link(from, parent, name, &e); break;
    case FUSE_RENAME: err = client_->rename(from, from_name, parent, name, m.rename_flags); break;
    default: return EINVAL;
  }
  if (err) return err;
  // Made: the shadow cannot hold the name, so the view could never reach it. Undone.
  int undo = m.opcode == FUSE_RENAME ? client_->rename(parent, name, from, from_name, m.rename_flags & RENAME_EXCHANGE)
             : m.opcode == FUSE_MKDIR ? client_->rmdir(parent, name)
                                      : client_->unlink(parent, name);
  if (e.node) client_->forget(e.node, 1);
  const std::string where = view_ + dir.substr(shadow_.size()) + "/" + name.substr(0, 16) + "…";
  if (undo)
    VU_LOG_ERROR("FUSE " << client_->name() << ": " << where << ": the program made a name of " << name.size()
                         << " bytes, which the shadow tree cannot hold (NAME_MAX " << NAME_MAX
                         << "), and undoing it failed: " << std::strerror(undo));
  else
    VU_LOG_WARN("FUSE " << client_->name() << ": " << where << ": the program accepts a name of " << name.size()
                        << " bytes; the shadow tree cannot hold it (NAME_MAX " << NAME_MAX
                        << "): undone, refused with ENAMETOOLONG (environment A, pvm/fuse_client.h)");
  return ENAMETOOLONG;
}

int FuseTree::ask_size(const std::string& host, ino_t ino, uint64_t size) {
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!FuseClient::lock_or_give_up(lock)) return EINTR;
  if (sync_locked() == EINTR) return EINTR;
  struct stat st;
  if (host_lstat(host, &st) < 0 || st.st_ino != ino || !S_ISREG(st.st_mode)) return -1;
  auto it = nodes_.find(st.st_ino);
  if (it == nodes_.end()) return EIO;  // its write-back failed (logged)
  fuse_setattr_in in{};
  in.valid = FATTR_SIZE;
  in.size = size;
  fuse_attr a{};
  if (int e = client_->setattr(it->second.node, in, &a)) return e;
  if (::truncate(HostAt(host).path().c_str(), static_cast<off_t>(a.size)) == 0) return 0;
  const int e = errno;
  in.size = static_cast<uint64_t>(st.st_size);  // the program's file as the shadow's again
  (void)client_->setattr(it->second.node, in, nullptr);
  VU_LOG_WARN("FUSE " << client_->name() << ": " << view_ << host.substr(shadow_.size()) << ": the program accepts a size of "
                      << a.size << " bytes; the shadow tree cannot hold it (" << std::strerror(e)
                      << "): refused (environment A, pvm/fuse_client.h)");
  return e;
}

void fuse_long_name(const Config& cfg, Call& c, Resolved* r) {
  if (!r->long_name || cfg.fuse_trees.empty() || c.listener < 0) return;
  FuseTree* t = fuse_tree_of(cfg, r->host);
  if (!t) return;
  std::string dir, name;
  split(r->host, &dir, &name);
  if (name.size() > kFuseNameMax) return;  // the kernel's own ENAMETOOLONG
  FuseCallerWait w(c);
  const int e = t->ask_lookup(dir, name);
  if (e == EINTR) {
    r->err = kERestartSys;
  } else if (e == 0) {
    VU_LOG_WARN("FUSE " << t->client().name() << ": " << r->view.substr(0, r->view.size() - name.size() + 16) << "…: the program has a name of "
                        << name.size() << " bytes; the shadow tree cannot hold it (NAME_MAX " << NAME_MAX
                        << "): ENAMETOOLONG (environment A, pvm/fuse_client.h)");
  } else if (e != ENOENT || r->long_name == 1) {
    r->err = e;
  } else {  // a final name the program does not have: creating calls ask it (fuse_make_long)
    r->err = 0;
    r->exists = false;
    r->fuse_long = true;
    r->moved = true;
  }
}

int fuse_make_long(const Config& cfg, Call& c, const Resolved& r, FuseTree::Make m) {
  FuseTree* t = fuse_tree_of(cfg, r.host);
  if (!t) return ENAMETOOLONG;
  std::string dir, name;
  split(r.host, &dir, &name);
  if (int e = may(dir, W_OK | X_OK)) return e;
  if (m.opcode == FUSE_RENAME) {
    std::string fdir, fname;
    split(m.from, &fdir, &fname);
    if (int e = may(fdir, W_OK | X_OK)) return e;
  }
  FuseCallerWait w(c);
  const int e = t->ask_make(dir, name, m);
  return e == EINTR ? kERestartSys : e;
}

int fuse_truncate(const Config& cfg, Call& c, const std::string& host, const struct stat& st, int64_t size) {
  if (cfg.fuse_trees.empty() || !S_ISREG(st.st_mode) || size <= st.st_size) return -1;
  FuseTree* t = fuse_tree_of(cfg, host);
  if (!t || may(host, W_OK) || !within_fsize(c, static_cast<uint64_t>(size))) return -1;
  FuseCallerWait w(c);
  const int e = t->ask_size(host, st.st_ino, static_cast<uint64_t>(size));
  return e == EINTR ? kERestartSys : e;
}

Answer do_fuse_ftruncate(const Config& cfg, Call& c) {
  const int64_t size = static_cast<int64_t>(c.a[1]);
  if (cfg.fuse_trees.empty() || size < 0) return Answer::cont();
  int err = 0;
  UniqueFd f = take_fd(c, c.arg_int(0), &err);
  if (!f) return Answer::cont();  // (EBADF and the like: the kernel's)
  const int fl = ::fcntl(f.get(), F_GETFL);
  struct stat st;
  if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || (fl & O_PATH) || ::fstat(f.get(), &st) < 0 || !S_ISREG(st.st_mode) ||
      size <= st.st_size)
    return Answer::cont();
  const std::string host = read_link(fd_path(c.tid, c.arg_int(0)));
  FuseTree* t = host.empty() ? nullptr : fuse_tree_of(cfg, host);
  if (!t || !within_fsize(c, static_cast<uint64_t>(size))) return Answer::cont();
  FuseCallerWait w(c);
  const int e = t->ask_size(host, st.st_ino, static_cast<uint64_t>(size));
  if (e < 0) return Answer::cont();  // no longer that name (removed, renamed): the shadow's
  if (e == EINTR) return Answer::error(kERestartSys);
  return e ? Answer::error(e) : Answer::value(0);
}

}  // namespace vu::pvm

// ---- Another owner's objects (see "Permissions" in pvm/fuse_client.h): the caller owns every
// shadow object, so the kernel's own checks pass where default_permissions would refuse. What
// the kernel's FUSE says with the program's owners as host ids (environment B, measured).
namespace vu::pvm {

namespace {
bool other_owner(const Config& cfg, const struct stat& st) {
  for (const auto& t : cfg.fuse_trees)
    if (t->owner_only(st.st_dev, st.st_ino)) return true;
  return false;
}
bool protected_hardlinks() {
  char c = 0;
  UniqueFd fd(::open("/proc/sys/fs/protected_hardlinks", O_RDONLY | O_CLOEXEC));
  return fd && ::read(fd.get(), &c, 1) == 1 && c == '1';
}
}  // namespace

int fuse_owner_check(const Config& cfg, const std::string& host, const struct stat& st, FuseUse use) {
  if (cfg.fuse_trees.empty() || !fuse_tree_of(cfg, host) || !other_owner(cfg, st)) return 0;
  switch (use) {
    case FuseUse::kChange: return EPERM;  // chmod, chown of an id, explicit times: the owner's
    case FuseUse::kTouch: return may(host, W_OK);  // times "now": the owner, or who may write it
    case FuseUse::kLink:  // fs.protected_hardlinks: a file one may read and write, or one's own
      if (!protected_hardlinks()) return 0;
      if (S_ISREG(st.st_mode) && !(st.st_mode & S_ISUID) && (st.st_mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP) &&
          may(host, R_OK | W_OK) == 0)
        return 0;
      return EPERM;
    case FuseUse::kRemove: {  // the sticky bit: the file's owner or the directory's
      std::string dir, name;
      split(host, &dir, &name);
      struct stat dst;
      if (host_lstat(dir, &dst) < 0 || !(dst.st_mode & S_ISVTX) || may(dir, W_OK | X_OK)) return 0;  // (EACCES: the usual path's)
      return other_owner(cfg, dst) ? EPERM : 0;
    }
  }
  return 0;
}

int fuse_utimes_check(const Config& cfg, Call& c, const std::string& host, const struct stat& st, uint64_t times) {
  bool touch = times == 0;
  if (times && c.nr == SYS_utimensat) {
    struct timespec ts[2];
    if (!read_mem(c.tid, times, ts, sizeof ts)) return 0;  // (EFAULT: the handler's)
    auto given = [](const timespec& t) { return t.tv_nsec != UTIME_NOW && t.tv_nsec != UTIME_OMIT; };
    if (!given(ts[0]) && !given(ts[1])) touch = true;
  }
  return fuse_owner_check(cfg, host, st, touch ? FuseUse::kTouch : FuseUse::kChange);
}

}  // namespace vu::pvm
