// pvm/fuse_client_tree.cc — the shadow tree of a FUSE mount the monitor serves, and the
// monitor's hooks (see pvm/fuse_client.h; the protocol and the program are in fuse_client.cc).
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

#include "base/log.h"
#include "pvm/host_at.h"

namespace vu::pvm {

// ---------------------------------------------------------------------------------------------
// The shadow tree.

namespace {
struct timespec fuse_ts(uint64_t s, uint32_t ns) { return {static_cast<time_t>(s), static_cast<long>(ns)}; }
bool ts_eq(const struct timespec& a, const struct timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }
// A SETATTR of st's access and modification times.
fuse_setattr_in times_of(const struct stat& st) {
  fuse_setattr_in in{};
  in.valid = FATTR_MTIME | FATTR_ATIME;
  in.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  in.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  in.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  in.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  return in;
}
constexpr int kMaxDepth = 256;
// At most this many names (files, directories, more names of a hard link) per tree: each costs
// the monitor a few hundred bytes and the shadow an inode, and a program may list without end.
constexpr size_t kMaxNodes = size_t{1} << 19;
size_t max_nodes() {
  if (const char* e = std::getenv("VU_FUSE_MAX_NODES")) return std::max<size_t>(1, std::strtoull(e, nullptr, 10));
  return kMaxNodes;
}
// Whether the filesystem of `dir` (empty) lists a directory's newest names first (tmpfs does).
bool lists_newest_first(const std::string& dir) {
  const std::string a = dir + "/.vu-order-a", b = dir + "/.vu-order-b";
  if (::mkdir(a.c_str(), 0700) < 0) return false;
  bool newest = false;
  if (::mkdir(b.c_str(), 0700) == 0) {
    if (DIR* d = ::opendir(dir.c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        if (std::strncmp(e->d_name, ".vu-order-", 10) != 0) continue;
        newest = e->d_name[10] == 'b';
        break;
      }
      ::closedir(d);
    }
    ::rmdir(b.c_str());
  }
  ::rmdir(a.c_str());
  return newest;
}
}  // namespace

FuseTree::FuseTree(std::unique_ptr<FuseClient> client, std::string shadow, std::string view)
    : client_(std::move(client)), shadow_(std::move(shadow)), view_(std::move(view)) {}

bool FuseTree::holds(const std::string& host) const {
  return host.size() > shadow_.size() && host.compare(0, shadow_.size(), shadow_) == 0 && host[shadow_.size()] == '/';
}

void FuseTree::remember(const std::string& host, Node n) {
  struct stat st;
  if (host_lstat(host, &st) < 0) return;
  remember(st, std::move(n));
}

void FuseTree::remember(const struct stat& st, Node n) {
  n.ctime = st.st_ctim;
  n.mtime = st.st_mtim;
  n.size = st.st_size;
  n.mode = st.st_mode;
  by_fuse_ino_[n.fuse_ino] = st.st_ino;
  nodes_[st.st_ino] = std::move(n);
  ++counts_.nodes;
}

Result<void> FuseTree::materialize() {
  std::lock_guard<std::mutex> lock(mu_);
  struct stat st;
  if (::stat(shadow_.c_str(), &st) < 0) return Error::sys("stat", errno, shadow_);
  dev_ = st.st_dev;
  fuse_attr root{};
  if (int e = client_->getattr(FUSE_ROOT_ID, &root))
    return Error::sys("FUSE GETATTR of the root", e, client_->name(), ErrorKind::kSetup);
  max_nodes_ = max_nodes();
  newest_first_ = lists_newest_first(shadow_);
  if (int e = materialize_dir(FUSE_ROOT_ID, shadow_, st.st_ino, 0)) {
    if (e == E2BIG && too_many_)
      return Error::make(ErrorKind::kSetup, client_->name() + " lists more than " + std::to_string(max_nodes_) + " names under " + view_ +
                                              ": the monitor keeps every name of the filesystem in memory (environment A, pvm/fuse_client.h)")
        .hint("use a host where vu can mount FUSE (user namespaces, or the setuid fusermount3), or raise $VU_FUSE_MAX_NODES");
    return Error::sys("reading the filesystem of " + client_->name(), e, view_, ErrorKind::kSetup);
  }
  ::chmod(shadow_.c_str(), shadow_mode(root));
  timespec ts[2] = {fuse_ts(root.atime, root.atimensec), fuse_ts(root.mtime, root.mtimensec)};
  ::utimensat(AT_FDCWD, shadow_.c_str(), ts, 0);
  Node r;
  r.node = FUSE_ROOT_ID;
  r.fuse_ino = root.ino;
  r.filled = true;
  remember(shadow_, r);
  fix_stat(shadow_, root);
  return Ok{};
}

int FuseTree::materialize_dir(uint64_t node, const std::string& host, uint64_t host_ino, int depth) {
  if (depth > kMaxDepth) return ELOOP;
  uint64_t fh = 0;
  if (int e = client_->open(node, O_RDONLY | O_DIRECTORY, true, &fh)) return e;
  std::vector<FuseClient::Dirent> entries;
  // The cap counts the names made and the names listed but not made yet (the listings of the
  // directories above this one).
  const size_t known = counts_.nodes + links_.size() + pending_;
  int e = known >= max_nodes_ ? E2BIG : client_->readdir_all(node, fh, &entries, max_nodes_ - known);
  too_many_ = e == E2BIG;
  (void)client_->release(node, fh, true);
  if (e) return e;
  pending_ += entries.size();
  struct Done {
    size_t& pending;
    size_t n;
    ~Done() { pending -= n; }
  } done{pending_, entries.size()};
  // Made in the order that makes the shadow list them as the program does (getdents of the
  // shadow runs natively; tar, du and find meet hard links and entries in that order).
  if (newest_first_) std::reverse(entries.begin(), entries.end());
  for (const FuseClient::Dirent& d : entries) {
    if (d.name.find('/') != std::string::npos) return EIO;
    FuseClient::Entry ent;
    if (int le = client_->lookup(node, d.name, &ent)) {
      if (le == ENOENT) continue;  // gone meanwhile
      return le;
    }
    const fuse_attr& a = ent.attr;
    const std::string path = host + "/" + d.name;
    Node n;
    n.node = ent.node;
    n.fuse_ino = a.ino;
    n.parent_ino = host_ino;
    n.name = d.name;
    const mode_t type = a.mode & S_IFMT;
    if (type != S_IFDIR && a.nlink > 1) {
      if (auto it = first_path_.find(a.ino); it != first_path_.end()) {
        // Another name of an object made already: a hard link of its shadow.
        if (::link(it->second.c_str(), path.c_str()) < 0) return errno;
        struct stat st;
        if (::lstat(path.c_str(), &st) == 0) {
          links_.insert({st.st_ino, host_ino, d.name});
          // link(2) moved the inode's ctime: no change of the view's (stat keeps the program's
          // blocks, sync writes nothing back).
          if (auto nt = nodes_.find(st.st_ino); nt != nodes_.end()) nt->second.ctime = st.st_ctim;
          std::lock_guard<std::mutex> slock(stat_mu_);
          if (auto f = stat_fix_.find(st.st_ino); f != stat_fix_.end()) f->second.ctime = st.st_ctim;
        }
        continue;
      }
      first_path_[a.ino] = path;
    }
    if (type == S_IFDIR) {
      if (::mkdir(path.c_str(), 0700) < 0) return errno;
      struct stat st;
      if (::lstat(path.c_str(), &st) < 0) return errno;
      // A directory the program refuses to list to this user (an ext4 image's lost+found, root's
      // 0700, under fuse2fs without fakeroot: `--fuse 'fuse2fs IMG' DIR`) stays empty in the
      // shadow, rather than refusing the whole mount; the rest of the filesystem is the view's.
      if (int de = materialize_dir(ent.node, path, st.st_ino, depth + 1); de && de != EACCES && de != EPERM) return de;
    } else if (type == S_IFLNK) {
      std::string target;
      if (int re = client_->readlink(ent.node, &target)) return re;
      if (::symlink(target.c_str(), path.c_str()) < 0) return errno;
      n.filled = true;
    } else if (type == S_IFREG) {
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) return errno;
      int te = ::ftruncate(fd, static_cast<off_t>(a.size)) < 0 ? errno : 0;
      ::close(fd);
      if (te) return te;
      n.filled = a.size == 0;
    } else if (type == S_IFIFO) {
      if (::mkfifo(path.c_str(), 0600) < 0) return errno;
      n.filled = true;
    } else {
      continue;  // devices and sockets: not in a user's view of an image
    }
    if (type != S_IFLNK) ::chmod(path.c_str(), shadow_mode(a));
    timespec ts[2] = {fuse_ts(a.atime, a.atimensec), fuse_ts(a.mtime, a.mtimensec)};
    ::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    remember(path, n);
    fix_stat(path, a);
    if (type == S_IFREG && (a.mode & 0111) && !n.filled) {
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0) {
        auto it = nodes_.find(st.st_ino);
        if (it != nodes_.end())
          if (int fe = fill_locked(st.st_ino, it->second, path)) return fe;
      }
    }
  }
  return 0;
}

int FuseTree::fill_locked(uint64_t ino, Node& n, const std::string& host) {
  uint64_t fh = 0;
  if (int e = client_->open(n.node, O_RDONLY, false, &fh)) return e;
  // The shadow file may be mode 0444 or 0000: open it through a writable mode for the fill.
  struct stat st;
  if (host_lstat(host, &st) < 0) {
    (void)client_->release(n.node, fh, false);
    return errno;
  }
  const bool chmodded = (st.st_mode & 0200) == 0;
  if (chmodded) ::chmod(HostAt(host).path().c_str(), (st.st_mode & 07777) | 0200);
  int fd = host_open(host, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  int err = fd < 0 ? errno : 0;
  uint64_t off = 0;
  std::string buf;
  while (!err) {
    buf.clear();
    err = client_->read(n.node, fh, off, client_->max_read(), &buf);
    if (err || buf.empty()) break;
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(buf.size())) err = errno ? errno : EIO;
    off += buf.size();
  }
  if (!err && ::ftruncate(fd, static_cast<off_t>(off)) < 0) err = errno;
  if (fd >= 0) ::close(fd);
  (void)client_->release(n.node, fh, false);
  if (err) {
    // Not filled after all: back to a sparse file of its size, to be read at the next open.
    if (int tfd = host_open(host, O_WRONLY | O_NOFOLLOW | O_CLOEXEC); tfd >= 0) {
      (void)!::ftruncate(tfd, 0);
      (void)!::ftruncate(tfd, st.st_size);
      ::close(tfd);
    }
  }
  if (chmodded) ::chmod(HostAt(host).path().c_str(), st.st_mode & 07777);
  timespec ts[2] = {st.st_atim, st.st_mtim};
  { HostAt h(host); ::utimensat(h.fd(), h.rel(), ts, AT_SYMLINK_NOFOLLOW); }
  // What the fill changed (ctime) is no change of the view's.
  struct stat now;
  if (host_lstat(host, &now) == 0) {
    n.ctime = now.st_ctim;
    n.mtime = now.st_mtim;
    n.size = now.st_size;
    std::lock_guard<std::mutex> slock(stat_mu_);
    if (auto f = stat_fix_.find(ino); f != stat_fix_.end()) f->second.ctime = n.ctime;
  }
  if (err) {
    if (err != EINTR) VU_LOG_WARN("FUSE " << client_->name() << ": reading " << view_ << host.substr(shadow_.size()) << ": " << std::strerror(err));
    return err == EINTR ? EINTR : EIO;
  }
  n.filled = true;
  ++counts_.filled;
  counts_.filled_bytes += off;
  return 0;
}

void FuseTree::fix_stat(const std::string& host, const fuse_attr& a) {
  struct stat st;
  if (host_lstat(host, &st) < 0) return;
  std::lock_guard<std::mutex> lock(stat_mu_);
  stat_fix_[st.st_ino] = {st.st_ctim, a.size, a.blocks, a.nlink, a.uid, a.gid, S_ISDIR(st.st_mode),
                          access_ && a.uid != access_->uid, a.mode & 07777};
}

// The caller owns every shadow object, so the kernel checks the owner's bits of its mode: for
// an object of another owner they are the bits the view's identity gets (the group's when
// the object's group is the view's, else the others'). The other bits stay the program's.
mode_t FuseTree::shadow_mode(const fuse_attr& a) const {
  const mode_t perm = a.mode & 07777;
  if (!access_ || a.uid == access_->uid) return perm;
  const mode_t cls = a.gid == access_->gid ? (perm >> 3) & 07 : perm & 07;
  return (perm & ~0700) | (cls << 6);
}

// Puts back the mode of a directory or file sync() opened up; the ctime that moved is not the
// view's change (the node and stat's record move with it when they had the old one).
struct timespec FuseTree::restore_mode(const std::string& host, const struct stat& before) {
  ::chmod(HostAt(host).path().c_str(), before.st_mode & 07777);
  struct stat now;
  if (host_lstat(host, &now) < 0) return before.st_ctim;
  if (auto n = nodes_.find(now.st_ino); n != nodes_.end() && ts_eq(n->second.ctime, before.st_ctim)) n->second.ctime = now.st_ctim;
  std::lock_guard<std::mutex> lock(stat_mu_);
  if (auto f = stat_fix_.find(now.st_ino); f != stat_fix_.end() && ts_eq(f->second.ctime, before.st_ctim)) f->second.ctime = now.st_ctim;
  return now.st_ctim;
}

int FuseTree::owner_only(dev_t dev, ino_t ino) {
  if (dev != dev_) return 0;
  std::lock_guard<std::mutex> lock(stat_mu_);
  auto it = stat_fix_.find(ino);
  return it != stat_fix_.end() && it->second.other_owner ? EPERM : 0;
}

bool FuseTree::adjust_stat(dev_t dev, ino_t ino, const struct timespec& ctime, uint64_t* size, uint64_t* blocks,
                           uint64_t* nlink, uint32_t* uid, uint32_t* gid, uint32_t* mode) {
  if (dev != dev_) return false;
  std::lock_guard<std::mutex> lock(stat_mu_);
  auto it = stat_fix_.find(ino);
  if (it == stat_fix_.end()) return false;
  // (tmpfs hands out inode numbers in increasing order: an entry is not taken by a new file.)
  *uid = it->second.uid;
  *gid = it->second.gid;
  if (it->second.other_owner) *mode = (*mode & S_IFMT) | it->second.mode;  // its mode cannot change here
  if (!ts_eq(it->second.ctime, ctime)) return true;  // changed by the view: its own figures
  if (it->second.dir) *size = it->second.size;
  *blocks = it->second.blocks;
  if (!it->second.dir && it->second.nlink > *nlink) *nlink = it->second.nlink;
  return true;
}

bool FuseClient::lock_or_give_up(std::unique_lock<std::mutex>& l) {
  while (!l.try_lock()) {
    if (giving_up()) return false;
    ::usleep(1000);
  }
  return true;
}

int FuseTree::fill_for_open(const std::string& host, const struct stat& st, bool truncating) {
  if (!S_ISREG(st.st_mode)) return 0;
  // Another fill may be waiting for a program that does not answer: this caller can give up.
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!FuseClient::lock_or_give_up(lock)) return EINTR;
  auto it = nodes_.find(st.st_ino);
  if (it == nodes_.end() || it->second.filled) return 0;  // made by the view, or filled
  if (truncating) {
    it->second.filled = true;
    return 0;
  }
  return fill_locked(st.st_ino, it->second, host);
}

FuseTree::Counts FuseTree::counts() {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

int FuseTree::sync() {
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!FuseClient::lock_or_give_up(lock)) return EINTR;
  return sync_locked();
}

int FuseTree::write_content(Node& n, const std::string& host, uint64_t fh, struct stat* seen) {
  int fd = host_open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    // (open(…, O_CREAT|O_WRONLY, 0151), install -m 0200: the view may write what its owner
    // cannot read. Left unwritten, the program kept a name the tree did not record.)
    struct stat before;
    if (host_lstat(host, &before) == 0 && S_ISREG(before.st_mode) &&
        ::chmod(HostAt(host).path().c_str(), (before.st_mode & 07777) | S_IRUSR) == 0) {
      fd = host_open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      const int e = errno;
      const struct timespec now = restore_mode(host, before);
      if (seen && ts_eq(seen->st_ctim, before.st_ctim)) seen->st_ctim = now;
      errno = e;
    }
  }
  if (fd < 0) return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ? kGone : errno;
  std::string buf(client_->max_write(), '\0');
  uint64_t off = 0;
  int err = 0;
  for (;;) {
    ssize_t got = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (got < 0) {
      err = errno;
      break;
    }
    if (got == 0) break;
    size_t done = 0;
    while (done < static_cast<size_t>(got)) {
      uint32_t w = 0;
      err = client_->write(n.node, fh, off + done, buf.data() + done, static_cast<uint32_t>(got - done), &w);
      if (err) break;
      if (w == 0) {
        err = EIO;
        break;
      }
      done += w;
    }
    if (err) break;
    off += static_cast<uint64_t>(got);
  }
  ::close(fd);
  counts_.written_back += off;
  return err;
}

// The view's changes, replayed from the shadow tree's state (see the header).
int FuseTree::sync_locked() {
  // (A program that has exited fails only the write-backs there are: no change, no error.)
  struct Seen {
    uint64_t ino;
    uint64_t parent_ino;
    std::string name, path;
    struct stat st;
    int depth;
  };
  std::vector<Seen> seen;
  // Walk the shadow (iteratively, directories in the order met: parents before children).
  std::vector<std::pair<std::string, int>> dirs{{shadow_, 0}};
  std::map<uint64_t, std::vector<size_t>> seen_by_ino;
  bool complete = true;
  for (size_t i = 0; i < dirs.size() && seen.size() < (1u << 24); ++i) {
    const auto [dir, depth] = dirs[i];
    struct stat dst;
    if (host_lstat(dir, &dst) < 0) {
      complete = false;
      continue;
    }
    // A directory we may not read or search (one the view closed, or another owner's: see
    // Permissions) is listed through u+rx, its mode put back after the listing (its entries
    // are lstat'ed through it); that ctime is no change of the view's.
    const bool opened = (dst.st_mode & 0500) != 0500 && ::chmod(HostAt(dir).path().c_str(), (dst.st_mode & 07777) | 0500) == 0;
    DIR* d = ::opendir(HostAt(dir).path().c_str());
    struct Restore {
      std::function<void()> f;
      ~Restore() {
        if (f) f();
      }
    } restore;
    if (opened)
      restore.f = [&, dir, dst] {
        const struct timespec now = restore_mode(dir, dst);
        if (auto it = seen_by_ino.find(dst.st_ino); it != seen_by_ino.end())  // its entry in its parent's listing
          for (size_t k : it->second)
            if (ts_eq(seen[k].st.st_ctim, dst.st_ctim)) seen[k].st.st_ctim = now;
      };
    if (!d) {
      complete = false;  // what lies below is unknown: nothing is removed this time
      continue;
    }
    while (dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      Seen s;
      s.path = dir + "/" + name;
      if (host_lstat(s.path, &s.st) < 0) {
        complete = false;  // an entry not seen is not a removal
        continue;
      }
      s.ino = s.st.st_ino;
      s.parent_ino = dst.st_ino;
      s.name = name;
      s.depth = depth + 1;
      if (S_ISDIR(s.st.st_mode) && depth < kMaxDepth) dirs.emplace_back(s.path, depth + 1);
      seen_by_ino[s.ino].push_back(seen.size());
      seen.push_back(std::move(s));
    }
    ::closedir(d);
  }
  auto fail = [&](const std::string& path, const char* op, int e) {
    if (e == EINTR) return EINTR;  // the caller gave up: the rest waits for the next sync
    VU_LOG_ERROR("FUSE " << client_->name() << ": writing back " << view_ << path.substr(shadow_.size()) << " ("
                         << op << "): " << std::strerror(e));
    return e == ENOTCONN ? EIO : e;
  };
  int first_err = 0;
  auto note = [&](int e) {
    if (e && !first_err) first_err = e;
  };
  auto node_of_dir = [&](uint64_t ino) -> uint64_t {
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? 0 : it->second.node;
  };
  auto at_recorded_place = [&](uint64_t ino, const Node& n) {
    auto it = seen_by_ino.find(ino);
    if (it == seen_by_ino.end()) return false;
    for (size_t k : it->second)
      if (seen[k].parent_ino == n.parent_ino && seen[k].name == n.name) return true;
    return false;
  };
  // Names on the program's side as recorded (records and hard links recorded apart): a rename
  // onto one replaces what was there; nothing else may make one again before its removal went
  // through (fuse2fs checks no name it is asked to make: the name would be there twice, and
  // the directory corrupt). A removal waits for a complete walk, or failed: a new object of
  // that name waits for the next sync.
  auto occupied = [&](uint64_t parent_ino, const std::string& name, uint64_t except) {
    for (const auto& [ino, n] : nodes_)
      if (ino != except && n.parent_ino == parent_ino && n.name == name) return true;
    for (const auto& [ino, pino, lname] : links_)
      if (ino != except && pino == parent_ino && lname == name) return true;
    return false;
  };
  // A directory is made u+rwx, whatever its mode in the view (mkdir d; touch d/f; chmod 555 d):
  // what goes into it is made before its mode and times are set (step 5).
  const mode_t kMadeDir = 0700;
  // 0. New directories (parents first), so that renames can move things into them; one whose
  // name is still taken on the program's side (mv d d.old; mkdir d) is made in step 3.
  for (Seen& s : seen) {
    if (!S_ISDIR(s.st.st_mode) || nodes_.count(s.ino)) continue;
    uint64_t parent = node_of_dir(s.parent_ino);
    if (!parent || occupied(s.parent_ino, s.name, 0)) continue;
    FuseClient::Entry e;
    int err = client_->mkdir(parent, s.name, (s.st.st_mode & 07777) | kMadeDir, &e);
    if (err == EEXIST) continue;
    if (err) {
      note(fail(s.path, "mkdir", err));
      continue;
    }
    Node n;
    n.node = e.node;
    n.fuse_ino = e.attr.ino;
    n.parent_ino = s.parent_ino;
    n.name = s.name;
    n.filled = true;
    remember(s.st, n);
    Node& made = nodes_[s.ino];  // its times and mode in step 5, after its content is made
    made.ctime = {};
    made.mode = S_IFDIR | (s.st.st_mode & 07777) | kMadeDir;
  }
  // 1. Renames: a known inode no longer at its recorded name, now at another.
  for (Seen& s : seen) {
    auto it = nodes_.find(s.ino);
    if (it == nodes_.end() || it->second.node == FUSE_ROOT_ID) continue;
    Node& n = it->second;
    if (n.parent_ino == s.parent_ino && n.name == s.name) continue;
    if (at_recorded_place(s.ino, n) || links_.count({s.ino, s.parent_ino, s.name})) continue;  // hard links: step 3
    uint64_t from = node_of_dir(n.parent_ino), to = node_of_dir(s.parent_ino);
    if (!from || !to) continue;
    // The name it goes to may still hold a known object that moves elsewhere too (a swap:
    // mv a t; mv b a; mv t b): that one steps aside under a temporary name first.
    for (auto& [ino2, m] : nodes_) {
      if (ino2 == s.ino || m.parent_ino != s.parent_ino || m.name != s.name || !seen_by_ino.count(ino2)) continue;
      std::string tmp = ".vu-swap-" + std::to_string(ino2);
      if (client_->rename(to, m.name, to, tmp) == 0) m.name = tmp;
      break;
    }
    if (int e = client_->rename(from, n.name, to, s.name)) {
      note(fail(s.path, "rename", e));
      continue;
    }
    n.parent_ino = s.parent_ino;
    n.name = s.name;
  }
  // 2. Removals. First the hard links recorded apart that are gone (so that a record whose
  // name goes below never passes to one of them that is gone too: its directory's removal
  // then failed with ENOTEMPTY until the next sync).
  for (auto l = links_.begin(); complete && l != links_.end();) {
    const auto& [ino, pino, name] = *l;
    bool there = false;
    if (auto it = seen_by_ino.find(ino); it != seen_by_ino.end())
      for (size_t k : it->second) there |= seen[k].parent_ino == pino && seen[k].name == name;
    if (there) {
      ++l;
      continue;
    }
    if (uint64_t parent = node_of_dir(pino)) {
      int e = client_->unlink(parent, name);
      if (e && e != ENOENT) {
        note(fail(shadow_ + "/" + name, "unlink", e));
        ++l;  // still the program's: kept, and unlinked again at the next sync
        continue;
      }
    }
    l = links_.erase(l);
  }
  // Then a known inode not at its recorded name any more, deepest first.
  std::vector<std::pair<int, uint64_t>> gone;
  for (auto& [ino, n] : nodes_) {
    if (!complete) break;
    if (n.node == FUSE_ROOT_ID || at_recorded_place(ino, n)) continue;
    gone.emplace_back(0, ino);
  }
  // Depth of a recorded name: the length of its parent chain.
  for (auto& [depth, ino] : gone) {
    uint64_t p = nodes_[ino].parent_ino;
    for (int k = 0; k < kMaxDepth && nodes_.count(p) && nodes_[p].node != FUSE_ROOT_ID; ++k, ++depth) p = nodes_[p].parent_ino;
  }
  std::sort(gone.begin(), gone.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (auto& [depth, ino] : gone) {
    Node n = nodes_[ino];
    uint64_t parent = node_of_dir(n.parent_ino);
    if (parent && !occupied(n.parent_ino, n.name, ino)) {  // else a rename replaced it already
      int e = S_ISDIR(n.mode) ? client_->rmdir(parent, n.name) : client_->unlink(parent, n.name);
      if (e && e != ENOENT) {
        note(fail(shadow_ + "/" + n.name, "remove", e));
        continue;  // still the program's: kept, and removed again at the next sync
      }
    }
    nodes_.erase(ino);
    // Still reachable by another name (a hard link recorded apart): that name becomes its own.
    for (auto l = links_.begin(); l != links_.end(); ++l) {
      if (std::get<0>(*l) != ino) continue;
      n.parent_ino = std::get<1>(*l);
      n.name = std::get<2>(*l);
      links_.erase(l);
      // Its node too: a libfuse2 program's node is a path (fuse2fs answered the old one's
      // SETATTR with ENOENT at every later sync).
      FuseClient::Entry e;
      if (uint64_t p = node_of_dir(n.parent_ino); p && client_->lookup(p, n.name, &e) == 0) n.node = e.node;
      nodes_[ino] = n;
      break;
    }
  }
  // The attributes of a known object the view changed: content (regular files), then times and
  // mode. The mode goes last unless it gives the owner write permission (fuse2fs, without
  // fakeroot, refuses to set the times of what its owner may not write: chmod 444 f; sync).
  auto write_attrs = [&](Seen& s, Node& n) {
    const mode_t perm = s.st.st_mode & 07777;
    if (ts_eq(n.ctime, s.st.st_ctim) || S_ISLNK(s.st.st_mode)) return;  // untouched
    if (S_ISREG(s.st.st_mode) && !n.filled) {
      // Changed (chmod, utimes) without being opened: attributes only, the content is the FUSE side's.
    } else if (S_ISREG(s.st.st_mode) && (!ts_eq(n.mtime, s.st.st_mtim) || n.size != s.st.st_size)) {
      fuse_setattr_in tr{};
      tr.valid = FATTR_SIZE;
      tr.size = 0;
      uint64_t fh = 0;
      int err = client_->open(n.node, O_WRONLY, false, &fh);
      if (!err) err = client_->setattr(n.node, tr, nullptr);
      if (!err) err = write_content(n, s.path, fh, &s.st);
      if (!err) err = client_->flush(n.node, fh);
      if (!err) err = client_->fsync(n.node, fh, false);
      (void)client_->release(n.node, fh, false);
      if (err) {
        if (err != kGone) note(fail(s.path, "write", err));
        return;
      }
    }
    fuse_setattr_in in = times_of(s.st);
    if (S_ISREG(s.st.st_mode) && !n.filled && n.size != s.st.st_size) {
      in.valid |= FATTR_SIZE;  // truncate(2) of a file never opened
      in.size = static_cast<uint64_t>(s.st.st_size);
    }
    // (An object of another owner keeps its mode: chmod is EPERM for the view, as on the kernel's
    // default_permissions, and its shadow's owner bits are the view's class's, never written back.)
    fuse_setattr_in md{};
    if ((n.mode & 07777) != perm && !owner_only(dev_, static_cast<ino_t>(s.ino))) md.valid = FATTR_MODE;
    md.mode = s.st.st_mode;
    const bool mode_first = md.valid && (perm & S_IWUSR);
    if (mode_first) {
      if (int e = client_->setattr(n.node, md, nullptr)) {
        note(fail(s.path, "setattr", e));
        return;
      }
    }
    if (int e = client_->setattr(n.node, in, nullptr)) {
      note(fail(s.path, "setattr", e));
      return;
    }
    if (md.valid && !mode_first) {
      if (int e = client_->setattr(n.node, md, nullptr)) {
        note(fail(s.path, "setattr", e));
        return;
      }
    }
    n.ctime = s.st.st_ctim;
    n.mtime = s.st.st_mtim;
    n.size = s.st.st_size;
    n.mode = s.st.st_mode;
  };
  // Directories whose attributes wait for step 5: making a name in one sets its mtime.
  std::vector<Seen*> dirs_last;
  // 3. New names (parents first, as walked): make them; 4. changed content and attributes.
  for (Seen& s : seen) {
    uint64_t parent = node_of_dir(s.parent_ino);
    if (!parent) continue;  // its directory failed to be made
    auto it = nodes_.find(s.ino);
    const mode_t perm = s.st.st_mode & 07777;
    if (it != nodes_.end() && !(it->second.parent_ino == s.parent_ino && it->second.name == s.name)) {
      if (!S_ISDIR(s.st.st_mode) && !links_.count({s.ino, s.parent_ino, s.name}) &&
          !occupied(s.parent_ino, s.name, s.ino)) {  // a new name of a known inode
        FuseClient::Entry e;
        if (int le = client_->link(it->second.node, parent, s.name, &e)) note(fail(s.path, "link", le));
        else links_.insert({s.ino, s.parent_ino, s.name});
      }
      continue;
    }
    if (it == nodes_.end()) {
      if (occupied(s.parent_ino, s.name, s.ino)) continue;  // made at the next sync, once removed
      FuseClient::Entry e;
      Node n;
      n.parent_ino = s.parent_ino;
      n.name = s.name;
      n.filled = true;
      int err = 0;
      bool made_file = false;  // a regular file the program has, whatever followed
      // The kernel looks a name up before it makes it, and libfuse2 programs rely on that:
      // fuse2fs's CREATE of a name it has adds a second entry of that name (e2fsck: duplicate
      // entry). One there that the tree does not know (a make that failed half-way) is EEXIST.
      if (FuseClient::Entry there; client_->lookup(parent, s.name, &there) == 0) {
        note(fail(s.path, "create", EEXIST));
        continue;
      }
      // A regular file is made writable by its owner (fuse2fs, without fakeroot, opens a file
      // CREATE made 0444 for writing with EACCES, after making its entry): its mode after.
      const mode_t made_perm = S_ISREG(s.st.st_mode) ? perm | S_IWUSR : perm;
      if (S_ISDIR(s.st.st_mode)) {
        err = client_->mkdir(parent, s.name, perm | kMadeDir, &e);
      } else if (S_ISLNK(s.st.st_mode)) {
        char target[4096];
        ssize_t k = host_readlink(s.path, target, sizeof target);
        if (k < 0 && (errno == ENOENT || errno == EINVAL)) continue;  // gone since the walk (or no longer a link)
        err = k < 0 ? errno : client_->symlink(parent, s.name, std::string(target, static_cast<size_t>(k)), &e);
      } else if (S_ISREG(s.st.st_mode)) {
        uint64_t fh = 0;
        err = client_->create(parent, s.name, S_IFREG | made_perm, O_WRONLY | O_CREAT | O_EXCL, &e, &fh);
        if (err == ENOSYS) {  // no CREATE: MKNOD then OPEN
          err = client_->mknod(parent, s.name, S_IFREG | made_perm, 0, &e);
          made_file = !err;
          if (!err) err = client_->open(e.node, O_WRONLY, false, &fh);
        } else {
          made_file = !err;
        }
        if (!err) {
          n.node = e.node;
          err = write_content(n, s.path, fh, &s.st);
          int fe = client_->flush(e.node, fh);
          if (!fe) fe = client_->fsync(e.node, fh, false);
          (void)client_->release(e.node, fh, false);
          if (!err) err = fe;
        }
      } else if (S_ISFIFO(s.st.st_mode)) {
        err = client_->mknod(parent, s.name, S_IFIFO | perm, 0, &e);
      } else {
        continue;
      }
      if (err && !made_file) {
        note(fail(s.path, "create", err));
        continue;
      }
      n.node = e.node;
      n.fuse_ino = e.attr.ino;
      // The walk's stat: the object exists on the program's side now, whatever the view did to
      // it meanwhile (had it been left out because its path was gone, the program would keep
      // a name the tree does not know: its directory's removal failed with ENOTEMPTY).
      remember(s.st, n);
      if (err) {
        // Made, but its content did not all go: recorded all the same (made again, the name
        // would be there twice: fuse2fs checks no name it is asked to link), written again at
        // the next sync (or removed: kGone).
        if (err != kGone) note(fail(s.path, "write", err));
        if (auto m = nodes_.find(s.ino); m != nodes_.end()) {
          m->second.ctime = m->second.mtime = {};
          m->second.mode = S_IFREG | made_perm;  // its mode too, if it was made u+w
        }
        continue;
      }
      if (S_ISDIR(s.st.st_mode)) {  // its mode and times in step 5, as step 0's
        Node& made = nodes_[s.ino];
        made.ctime = {};
        made.mode = S_IFDIR | perm | kMadeDir;
        dirs_last.push_back(&s);
        continue;
      }
      // Times as the view left them (they were set before the content went in).
      if (!S_ISLNK(s.st.st_mode)) {
        fuse_setattr_in in = times_of(s.st);
        (void)client_->setattr(e.node, in, nullptr);
      }
      if (made_perm != perm) {  // its mode after its times (fuse2fs sets times only where the owner may write)
        fuse_setattr_in md{};
        md.valid = FATTR_MODE;
        md.mode = s.st.st_mode;
        if (int me = client_->setattr(e.node, md, nullptr)) {
          note(fail(s.path, "setattr", me));
          Node& made = nodes_[s.ino];  // tried again at the next sync
          made.ctime = {};
          made.mode = S_IFREG | made_perm;
        }
      }
      continue;
    }
    if (S_ISDIR(s.st.st_mode)) {
      dirs_last.push_back(&s);
      continue;
    }
    write_attrs(s, it->second);
  }
  // 5. Directories' attributes, now that every name in them is made.
  for (Seen* s : dirs_last)
    if (auto it = nodes_.find(s->ino); it != nodes_.end()) write_attrs(*s, it->second);
  // The directory's fsync through a handle of its own (a libfuse program's fh may be a pointer).
  uint64_t dfh = 0;
  if (client_->open(FUSE_ROOT_ID, O_RDONLY | O_DIRECTORY, true, &dfh) == 0) {
    if (int e = client_->fsync(FUSE_ROOT_ID, dfh, true); e && e != ENOSYS) note(e);
    (void)client_->release(FUSE_ROOT_ID, dfh, true);
  }
  return first_err == EINTR ? EINTR : first_err ? EIO : 0;
}

// ---------------------------------------------------------------------------------------------
// The monitor's side (pvm/fs.cc and the capture core call these).

FuseTree* fuse_tree_of(const Config& cfg, const std::string& host) {
  for (const auto& t : cfg.fuse_trees)
    if (t && t->holds(host)) return t.get();
  return nullptr;
}
// Waiting for the program: receiving handed over first, abandoned when the caller goes away
// or has a signal to take (the kernel then restarts the call after it, or says EINTR).
FuseCallerWait::FuseCallerWait(Call& c) {
  if (c.before_wait) c.before_wait();
  FuseClient::set_cancelled([&c] { return !c.id_valid() || signal_pending(c.tid); });
}
FuseCallerWait::~FuseCallerWait() { FuseClient::set_cancelled(nullptr); }

int fuse_before_open(const Config& cfg, Call& c, const std::string& host, const struct stat& st, int flags) {
  if (cfg.fuse_trees.empty() || !S_ISREG(st.st_mode)) return 0;
  FuseTree* t = fuse_tree_of(cfg, host);
  if (!t) return 0;
  // An open that truncates replaces the content: no need to read it (if the open will succeed).
  const bool truncating = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && ::access(HostAt(host).path().c_str(), W_OK) == 0;
  FuseCallerWait w(c);
  int e = t->fill_for_open(host, st, truncating);
  return e == EINTR ? kERestartSys : e;
}

Answer do_fuse_sync(const Config& cfg, Call& c) {
  if (cfg.fuse_trees.empty()) return Answer::cont();
  std::vector<FuseTree*> trees;
  if (c.nr == SYS_sync) {
    for (const auto& t : cfg.fuse_trees) trees.push_back(t.get());
  } else {
    // fsync, fdatasync, syncfs of a descriptor: the tree that holds its file.
    std::string host = read_link(fd_path(c.tid, c.arg_int(0)));
    if (FuseTree* t = fuse_tree_of(cfg, host + "/x")) trees.push_back(t);  // the shadow's root, or below it
  }
  if (trees.empty()) return Answer::cont();
  FuseCallerWait w(c);
  int err = 0;
  for (FuseTree* t : trees)
    if (int e = t->sync(); e && !err) err = e;
  if (err == EINTR) return Answer::error(kERestartSys);  // a signal: the call restarts after it
  if (err && c.nr != SYS_sync) return Answer::error(err);
  return Answer::cont();  // the host's own sync of the shadow, as asked
}

// An id the program reports → the host id view_uid()/view_gid() turn into what the view shows.
static uint32_t owner_as_host(const Config& cfg, uint32_t id, uint32_t own, uint32_t shown) {
  return id == (cfg.root ? shown : own) ? own : kOverflowId;
}

void fuse_adjust_stat(const Config& cfg, struct stat* st) {
  for (const auto& t : cfg.fuse_trees) {
    uint64_t size = static_cast<uint64_t>(st->st_size), blocks = static_cast<uint64_t>(st->st_blocks),
             nlink = st->st_nlink;
    uint32_t uid, gid, mode = st->st_mode;
    if (t->adjust_stat(st->st_dev, st->st_ino, st->st_ctim, &size, &blocks, &nlink, &uid, &gid, &mode)) {
      st->st_mode = mode;
      st->st_size = static_cast<off_t>(size);
      st->st_blocks = static_cast<blkcnt_t>(blocks);
      st->st_nlink = static_cast<nlink_t>(nlink);
      st->st_uid = owner_as_host(cfg, uid, cfg.uid, cfg.shown_uid);
      st->st_gid = owner_as_host(cfg, gid, cfg.gid, cfg.shown_gid);
      return;
    }
  }
}

int fuse_chmod_check(const Config& cfg, const struct stat& st) {
  for (const auto& t : cfg.fuse_trees)
    if (int e = t->owner_only(st.st_dev, st.st_ino)) return e;
  return 0;
}

void fuse_adjust_statx(const Config& cfg, struct statx* stx) {
  const dev_t dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
  const timespec ctime{stx->stx_ctime.tv_sec, stx->stx_ctime.tv_nsec};
  for (const auto& t : cfg.fuse_trees) {
    uint64_t size = stx->stx_size, blocks = stx->stx_blocks, nlink = stx->stx_nlink;
    uint32_t uid, gid, mode = stx->stx_mode;
    if (t->adjust_stat(dev, stx->stx_ino, ctime, &size, &blocks, &nlink, &uid, &gid, &mode)) {
      stx->stx_mode = static_cast<uint16_t>(mode);
      stx->stx_size = size;
      stx->stx_blocks = blocks;
      stx->stx_nlink = static_cast<uint32_t>(nlink);
      stx->stx_uid = owner_as_host(cfg, uid, cfg.uid, cfg.shown_uid);
      stx->stx_gid = owner_as_host(cfg, gid, cfg.gid, cfg.shown_gid);
      return;
    }
  }
}

bool fuse_mount_names(const Config& cfg, const std::string& host, std::string* source, std::string* type) {
  for (const auto& t : cfg.fuse_trees) {
    if (t->shadow() != host) continue;
    const std::string& prog = t->client().name();
    *source = prog.substr(prog.rfind('/') + 1);
    *type = "fuse." + *source;
    return true;
  }
  return false;
}

int fuse_statfs(const Config& cfg, const std::string& host, struct statfs* out) {
  FuseTree* t = cfg.fuse_trees.empty() ? nullptr : fuse_tree_of(cfg, host + "/x");
  if (!t) return -1;
  fuse_kstatfs k{};
  if (int e = t->client().statfs(&k)) return e;
  *out = {};
  out->f_type = 0x65735546;  // FUSE_SUPER_MAGIC
  out->f_bsize = k.bsize;
  out->f_frsize = k.frsize ? k.frsize : k.bsize;
  out->f_blocks = k.blocks;
  out->f_bfree = k.bfree;
  out->f_bavail = k.bavail;
  out->f_files = k.files;
  out->f_ffree = k.ffree;
  out->f_namelen = k.namelen;
  return 0;
}

}  // namespace vu::pvm
