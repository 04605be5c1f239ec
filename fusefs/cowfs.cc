// vu-cowfs — a copy-on-write layer over libfuse3, for views where kernel overlayfs cannot give
// the semantics of --cow (see fusefs.h): LAYER receives every change, TARGET is read-only to us.
//
//   vu-cowfs LAYER TARGET [-d]      (started by the keeper inside the view; stays in the
//                                    foreground until TARGET is unmounted)
//   vu-cowfs LAYER STAGING --root-fs the root filesystem (alone) copy-on-write, on STAGING
//
// The layer is overlayfs's: a whiteout is a 0/0 character device, an opaque directory carries
// user.overlay.opaque=y ("userxattr"), so kernel overlayfs reads what vu-cowfs wrote and the
// other way round. Owners: a file of the lower layer appears as the daemon's own uid/gid in the
// view (root under --root): the view is the owner of its copy; a file of the layer shows its
// real owner (so chown works wherever the view maps the id: --map-users), an unmapped one the
// daemon's. Permissions are the kernel's (default_permissions), for every user of the view
// (allow_other).
//
// Theory of operation. libfuse's low-level API: the kernel's node ids are our Inodes, one per
// file whatever its names, so the kernel caches a file's attributes and pages once — a hard
// link's second name sees what the first wrote (the high-level API's node per path made the
// writeback cache and kept pages serve one name stale data and write it back). Every Inode
// knows its names (parent Inode, name); a request works on its first name. A directory's Inode
// holds an O_PATH descriptor of its directory in each layer that the view sees there (the
// layer's, and the lower layer's unless a whiteout or an opaque directory on the way hides it),
// opened when first needed and closed by FORGET, so a request is *at() calls on one name
// relative to its parent's descriptors: no walk, no path, however deep (a path longer than
// PATH_MAX from the mount's root works as on any filesystem). Overlay semantics are decided
// once per directory, when its descriptors are opened; only vu-cowfs changes the layer, and
// every change that alters what a directory sees (a copy-up, a whiteout, an opaque mark) goes
// through it. Directories have one name; a file of the layer is found again by its (st_dev,
// st_ino) when the kernel looks up another of its names; a lower file is one Inode per name
// (copy-up breaks lower hard links, as overlayfs without index=on). Data goes through file
// descriptors (replies by splice), without the kernel's writeback cache (opt-in:
// VU_COWFS_WRITEBACK=1; writes were faster without it here, and a full layer then fails the
// writer's write() itself), kept pages, and 1 MiB requests, on one thread: bench/fs.sh shows
// what each of those gave.
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "fusefs/layer_format.h"

namespace {

using vu::layer_format::is_whiteout;
using vu::layer_format::stored_xattr_name;

// The layer format (whiteouts, opaque directories, the view's user.overlay.* escaped) is
// fusefs/layer_format.h's.
constexpr int kUnknown = -2;  // a directory's descriptor not opened yet (or given back)

struct State {
  int upper = -1, lower = -1;  // O_PATH directory descriptors, opened before the mount
  uid_t uid = 0;
  gid_t gid = 0;
  uid_t overflow_uid = 65534;  // how the view sees an owner it does not map
  gid_t overflow_gid = 65534;
  bool writeback = false;
  double timeout = 1.0;
  size_t dir_fds = 0;          // directories' descriptors open now
  size_t dir_fd_budget = 256;  // above it they are given back (reopened when needed)
  std::recursive_mutex tree;   // the Inode tables, copy-ups and changes to the tree's shape
};
State g;

bool is_dot(const std::string& name) { return name == "."; }

// The *xattr calls have no *at() form: the name through the directory's descriptor.
std::string proc_at(int dirfd, const std::string& name) { return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name; }

bool opaque_at(int dirfd, const std::string& name) { return vu::layer_format::is_opaque_at(dirfd, name.c_str()); }

// ---- the kernel's nodes ----

// One per file the kernel holds (nlookup > 0). Its node id is its address (the root's is
// FUSE_ROOT_ID). `links` are its names the kernel knows; requests use the first.
struct Inode {
  uint64_t nlookup = 0;
  mode_t type = 0;  // S_IFMT bits
  int layer = 0;    // where dev/ino were found: 1 upper, 2 lower
  dev_t dev = 0;
  ino_t ino = 0;
  std::vector<std::pair<Inode*, std::string>> links;
  int orphan = -1;  // O_PATH of the file once its last name is gone while the kernel holds it
  bool no_xattrs = false;  // made by the view and given no attribute since: no file capability
                           // (the kernel asks before every write; answered without a syscall)
  // A directory's O_PATH descriptors: its directory in the layer (ufd) and the lower layer's
  // that shows through it (lfd). -1: none (not copied up yet; nothing below, or hidden by a
  // whiteout or an opaque directory on the way); kUnknown: not opened (dir_fds opens them).
  int ufd = kUnknown, lfd = kUnknown;
};
Inode g_root;
std::map<std::pair<Inode*, std::string>, Inode*> g_names;   // (parent, name) -> Inode
std::map<std::pair<dev_t, ino_t>, Inode*> g_upper_files;     // non-directories of the layer

Inode* inode_of(fuse_ino_t i) { return i == FUSE_ROOT_ID ? &g_root : reinterpret_cast<Inode*>(i); }
fuse_ino_t id_of(Inode* n) { return n == &g_root ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(n); }

void close_dir_fds(Inode* d) {
  if (d == &g_root) return;  // the layers' own descriptors
  for (int* fd : {&d->ufd, &d->lfd}) {
    if (*fd >= 0) {
      ::close(*fd);
      --g.dir_fds;
    }
    *fd = kUnknown;
  }
}

// Opens d's descriptors (its parent's first). The layer's directory under d's name, if it is
// one; the lower layer's if the parent shows one, nothing in the layer hides it (a whiteout, a
// file) and the layer's directory is not opaque.
int dir_fds(Inode* d) {
  if (d->ufd != kUnknown && d->lfd != kUnknown) return 0;
  if (d->links.empty()) return -ENOENT;  // removed; only its handles reach it
  Inode* p = d->links[0].first;
  const char* name = d->links[0].second.c_str();
  if (int e = dir_fds(p)) return e;
  close_dir_fds(d);
  constexpr int kDir = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int ufd = -1, lfd = -1;
  bool hidden = false;
  if (p->ufd >= 0 && (ufd = ::openat(p->ufd, name, kDir)) < 0) {
    if (errno != ENOENT && errno != ENOTDIR) return -errno;
    hidden = errno == ENOTDIR;  // a whiteout (or a file) has the name in the layer
  }
  if (p->lfd >= 0 && !hidden && (lfd = ::openat(p->lfd, name, kDir)) < 0 && errno != ENOENT && errno != ENOTDIR) {
    int e = errno;
    if (ufd >= 0) ::close(ufd);
    return -e;
  }
  if (lfd >= 0 && ufd >= 0 && opaque_at(ufd, ".")) {  // read only where something is below
    ::close(lfd);
    lfd = -1;
  }
  d->ufd = ufd;
  d->lfd = lfd;
  g.dir_fds += (ufd >= 0) + (lfd >= 0);
  return 0;
}

// Above the budget (RLIMIT_NOFILE), every directory gives its descriptors back; they are
// opened again as requests need them. Only between requests: none holds one then.
void trim_dir_fds() {
  if (g.dir_fds <= g.dir_fd_budget) return;
  for (auto& entry : g_names)
    if (entry.second->type == S_IFDIR) close_dir_fds(entry.second);
}

// Where a name is. layer: 1 upper, 2 lower. lower_below: for a directory, whether the lower
// layer's directory of the same name shows through (merged).
struct Node {
  int layer = 0;
  struct stat st {};
  bool in_lower = false;     // the lower layer has this name visible (hidden only by upper's copy)
  bool lower_below = false;  // directory: lower entries show through
  bool whiteout = false;     // ENOENT because the layer has a whiteout under the name
};

// `name` in the directory d (its descriptors open: dir_fds), in view terms. n->st is the
// layer's own stat (present() makes it the view's). "." in the root is the root.
int resolve_at(Inode* d, const std::string& name, Node* n) {
  *n = Node{};
  struct stat st;
  if (d->ufd >= 0) {
    if (::fstatat(d->ufd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (is_whiteout(st)) {
        n->whiteout = true;
        return -ENOENT;
      }
      n->layer = 1;
      n->st = st;
    } else if (errno != ENOENT) {
      return -errno;
    }
  }
  if (d->lfd >= 0) {
    if (::fstatat(d->lfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      n->in_lower = true;
      if (n->layer == 0) {
        n->layer = 2;
        n->st = st;
      }
      n->lower_below = S_ISDIR(st.st_mode) && S_ISDIR(n->st.st_mode) &&
                       !(n->layer == 1 && !is_dot(name) && opaque_at(d->ufd, name));
      // The layer's root is 0700 (no one else may enter the layer on the host, see
      // prepare_cow); the view sees the target's own mode there, unless it chose another.
      if (is_dot(name) && n->layer == 1 && (n->st.st_mode & 07777) == 0700)
        n->st.st_mode = (n->st.st_mode & S_IFMT) | (st.st_mode & 07777);
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return -errno;
    }
  }
  return n->layer ? 0 : -ENOENT;
}

// An Inode's place: its directory (descriptors open) and its name there; the root is "." in
// itself.
struct Loc {
  Inode* dir;
  std::string name;
  int ufd() const { return dir->ufd; }
  int fd(int layer) const { return layer == 1 ? dir->ufd : dir->lfd; }
};
int loc_of(Inode* x, Loc* l) {
  if (x == &g_root) {
    *l = {&g_root, "."};
    return 0;
  }
  if (x->links.empty()) return -ENOENT;  // unlinked, still open: only its handles reach it
  *l = {x->links[0].first, x->links[0].second};
  return dir_fds(l->dir);
}

int resolve_inode(Inode* x, Node* n, Loc* l) {
  if (int e = loc_of(x, l)) return e;
  return resolve_at(l->dir, l->name, n);
}

// The attributes the view sees: a lower file is the view's; a layer file keeps its owner
// unless the view does not map it. A symlink always keeps its owner: by it the kernel's
// fs.protected_symlinks refuses to follow, in a sticky world-writable directory (/tmp), a link
// another user planted there (shown as the view's, it would be followed into the view's files).
struct stat present(const Node& n) {
  struct stat st = n.st;
  if (S_ISLNK(st.st_mode)) return st;
  if (n.layer == 2 || st.st_uid == g.overflow_uid) st.st_uid = g.uid;
  if (n.layer == 2 || st.st_gid == g.overflow_gid) st.st_gid = g.gid;
  return st;
}
void present_fd(struct stat* st) {
  if (S_ISLNK(st->st_mode)) return;  // (as in present())
  if (st->st_uid == g.overflow_uid) st->st_uid = g.uid;
  if (st->st_gid == g.overflow_gid) st->st_gid = g.gid;
}

// Every open in a layer goes through here: the name is one the kernel resolved in the view, so
// it never has a symlink on the way; one found there was planted (the lower layer may be a
// directory others can write, e.g. /tmp) and is not followed, nor is anything outside the layer.
int open_in(int dir, const std::string& r, int flags, mode_t mode = 0) {
  struct open_how how {};
  // openat2 refuses bits outside the open flags (EINVAL); the kernel's FUSE_OPEN may carry some.
  constexpr int kValid = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC |
                         O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOATIME | O_TMPFILE;
  how.flags = static_cast<uint64_t>((flags & kValid) | O_NOFOLLOW | O_CLOEXEC);
  how.mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode & 07777 : 0;  // no S_IFREG
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(vu::layer_format::openat2_retry(dir, r.c_str(), how));
}

// A file open_in opened with O_NONBLOCK, kept only if it is a regular file (its O_NONBLOCK then
// as the caller asked). The lower layer may be a directory others write (/tmp): a FIFO put
// under a name between the kernel's lookup and the open would hold vu-cowfs, and with it the
// whole view, until someone wrote to it (pvm/cow.cc checks the same). 0, or -errno with fd
// closed: ESTALE when the name is no longer a regular file (the kernel looks it up again).
int regular_only(int fd, int caller_flags) {
  struct stat st;
  int e = ::fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : ESTALE;
  if (!e && !(caller_flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) e = errno;
  if (e) ::close(fd);
  return -e;
}

int copy_xattrs(const std::string& from, const std::string& to) {
  char names[8192];
  ssize_t len = ::llistxattr(from.c_str(), names, sizeof names);
  if (len < 0) return errno == ENOTSUP ? 0 : -errno;
  for (char* p = names; p < names + len; p += std::strlen(p) + 1) {
    if (vu::layer_format::is_layer_xattr(p))
      continue;  // the layer's own bookkeeping; the view's escaped attributes are copied
    char value[65536];
    ssize_t v = ::lgetxattr(from.c_str(), p, value, sizeof value);
    if (v < 0) continue;  // e.g. security.* we may not read
    (void)::lsetxattr(to.c_str(), p, value, static_cast<size_t>(v), 0);  // best effort, as overlayfs
  }
  return 0;
}

int copy_up_dir(Inode* d);

// Makes `name` in the directory d the layer's (copying d up first), unless it is already.
int copy_up_at(Inode* d, const std::string& name) {
  if (int e = dir_fds(d)) return e;
  Node n;
  if (int e = resolve_at(d, name, &n)) return e;
  if (n.layer == 1) return 0;
  if (int e = copy_up_dir(d)) return e;
  const struct stat& st = n.st;  // the lower file's
  const char* nm = name.c_str();
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(d->ufd, nm, (st.st_mode & 07777) | S_IRWXU) < 0 && errno != EEXIST) return -errno;
    copy_xattrs(proc_at(d->lfd, name), proc_at(d->ufd, name));
    ::fchmodat(d->ufd, nm, st.st_mode & 07777, 0);
    // Its Inode knew it had no directory in the layer: it opens its descriptors again.
    if (auto it = g_names.find({d, name}); it != g_names.end() && it->second->type == S_IFDIR)
      close_dir_fds(it->second);
  } else if (S_ISREG(st.st_mode)) {
    // Into a file with no name (O_TMPFILE), linked under the name once complete: a crash
    // leaves no half copy and no name exists that anyone could plant a symlink or a file on.
    // Where the layer's filesystem has no O_TMPFILE: a fresh random name, O_EXCL (never an
    // existing file, never through a symlink), renamed over the name.
    int in = open_in(d->lfd, name, O_RDONLY | O_NONBLOCK);
    if (in < 0) return -errno;
    if (int e = regular_only(in, O_NONBLOCK)) return e;
    std::string tmp;
    int out = open_in(d->ufd, ".", O_TMPFILE | O_RDWR, 0600);
    if (out < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      unsigned char rnd[8];
      for (int tries = 0; out < 0 && tries < 100; ++tries) {
        if (::getrandom(rnd, sizeof rnd, 0) != sizeof rnd) break;
        char tname[32];
        std::snprintf(tname, sizeof tname, ".vu-cowfs-copy.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                      rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        tmp = tname;
        out = open_in(d->ufd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (out < 0 && errno != EEXIST) break;
      }
    }
    if (out < 0) {
      int e = errno;
      ::close(in);
      return -e;
    }
    int err = 0;
    for (off_t left = st.st_size; left > 0;) {
      ssize_t k = ::copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(left), 0);
      if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
        char buf[1 << 16];
        k = ::read(in, buf, sizeof buf);
        if (k > 0 && ::write(out, buf, static_cast<size_t>(k)) != k) k = -1;
      }
      if (k < 0) {
        err = -errno;
        break;
      }
      if (k == 0) break;
      left -= k;
    }
    ::close(in);
    const std::string out_proc = "/proc/self/fd/" + std::to_string(out);
    if (!err) copy_xattrs(proc_at(d->lfd, name), out_proc);
    if (!err && ::fchmod(out, st.st_mode & 07777) < 0) err = -errno;
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (!err) ::futimens(out, times);
    if (!err && tmp.empty() && ::linkat(AT_FDCWD, out_proc.c_str(), d->ufd, nm, AT_SYMLINK_FOLLOW) < 0) err = -errno;
    if (!err && !tmp.empty() && ::renameat(d->ufd, tmp.c_str(), d->ufd, nm) < 0) err = -errno;
    if (err && !tmp.empty()) ::unlinkat(d->ufd, tmp.c_str(), 0);
    ::close(out);
    return err;
  } else if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t k = ::readlinkat(d->lfd, nm, target, sizeof target - 1);
    if (k < 0) return -errno;
    target[k] = 0;
    if (::symlinkat(target, d->ufd, nm) < 0) return -errno;
  } else {
    if (::mknodat(d->ufd, nm, st.st_mode, st.st_rdev) < 0) return -errno;
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(d->ufd, nm, times, AT_SYMLINK_NOFOLLOW);
  return 0;
}

// Makes the directory d exist in the layer (copying up its ancestors).
int copy_up_dir(Inode* d) {
  if (int e = dir_fds(d)) return e;
  if (d->ufd >= 0) return 0;
  Loc l;
  if (int e = loc_of(d, &l)) return e;
  if (int e = copy_up_at(l.dir, l.name)) return e;
  close_dir_fds(d);
  if (int e = dir_fds(d)) return e;
  return d->ufd >= 0 ? 0 : -EIO;
}

int make_whiteout(int dirfd, const std::string& name) {
  return vu::layer_format::make_whiteout(dirfd, name.c_str()) ? 0 : -errno;
}

// A name about to be taken in the layer's directory: drop a whiteout standing there. Returns
// whether something of the lower layer was hidden under that name.
bool clear_whiteout(int dirfd, const std::string& name) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
    ::unlinkat(dirfd, name.c_str(), 0);
    return true;
  }
  return false;
}

// The merged entries of the directory `name` in d (resolved to n), without whiteouts:
// name -> (d_ino, d_type).
using Listing = std::map<std::string, std::pair<ino_t, unsigned char>>;
int list_dir(Inode* d, const std::string& name, const Node& n, Listing* names) {
  std::set<std::string> hidden;
  auto scan = [&](int base, bool upper) -> int {
    int fd = open_in(base, name, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
      ::close(fd);
      return -errno;
    }
    while (struct dirent* e = ::readdir(dir)) {
      std::string entry = e->d_name;
      if (entry == "." || entry == "..") continue;
      if (upper) {
        if (e->d_type == DT_CHR) {
          struct stat st;
          if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
            hidden.insert(entry);
            continue;
          }
        }
        names->emplace(entry, std::make_pair(e->d_ino, e->d_type));
      } else if (!hidden.count(entry)) {
        names->emplace(entry, std::make_pair(e->d_ino, e->d_type));  // keeps the upper's entry
      }
    }
    ::closedir(dir);
    return 0;
  };
  if (n.layer == 1)
    if (int e = scan(d->ufd, true)) return e;
  if (n.lower_below || n.layer == 2)
    if (int e = scan(d->lfd, false)) return e;
  return 0;
}

// Common preamble of every call that creates `name` in d: d in the layer, no existing entry in
// the view, a whiteout under the name dropped (*hid_lower: there was one; a directory made
// there must then be opaque). Where the lower layer shows nothing (a directory of the view's
// own), the create itself says EEXIST: nothing to resolve first (see created()).
int prepare_create(Inode* d, const std::string& name, bool* hid_lower) {
  if (int e = dir_fds(d)) return e;
  *hid_lower = false;
  if (d->lfd < 0 && d->ufd >= 0) return 0;
  Node n;
  int e = resolve_at(d, name, &n);
  if (e == 0) return -EEXIST;
  if (e != -ENOENT) return e;
  if ((e = copy_up_dir(d))) return e;
  *hid_lower = n.whiteout;
  if (n.whiteout && ::unlinkat(d->ufd, name.c_str(), 0) < 0) return -errno;
  return 0;
}

// The result of the call that created `name` in d (rc < 0: errno): EEXIST where only a
// whiteout stood (prepare_create did not look) drops the whiteout and asks for one more try.
bool retry_over_whiteout(Inode* d, const std::string& name, int rc, bool* hid_lower) {
  if (rc >= 0 || errno != EEXIST || *hid_lower) return false;
  struct stat st;
  if (::fstatat(d->ufd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || !is_whiteout(st)) {
    errno = EEXIST;
    return false;
  }
  if (::unlinkat(d->ufd, name.c_str(), 0) < 0) return false;
  *hid_lower = true;
  return true;
}

int remove_entry(Inode* d, const std::string& name, bool dir) {
  if (int e = dir_fds(d)) return e;
  Node n;
  if (int e = resolve_at(d, name, &n)) return e;
  if (dir && !S_ISDIR(n.st.st_mode)) return -ENOTDIR;
  if (!dir && S_ISDIR(n.st.st_mode)) return -EISDIR;
  if (dir) {
    Listing names;
    if (int e = list_dir(d, name, n, &names)) return e;
    if (!names.empty()) return -ENOTEMPTY;
  }
  if (n.layer == 1) {
    if (dir) {
      // Only whiteouts can be left in it.
      int fd = open_in(d->ufd, name, O_RDONLY | O_DIRECTORY);
      if (fd >= 0) {
        DIR* dd = ::fdopendir(fd);
        while (struct dirent* e = dd ? ::readdir(dd) : nullptr)
          if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) ::unlinkat(fd, e->d_name, 0);
        if (dd) ::closedir(dd);
        else ::close(fd);
      }
    }
    if (::unlinkat(d->ufd, name.c_str(), dir ? AT_REMOVEDIR : 0) < 0) return -errno;
  } else if (int e = copy_up_dir(d)) {
    return e;
  }
  return n.in_lower ? make_whiteout(d->ufd, name) : 0;
}

int rename_at(Inode* p, const std::string& name, Inode* np, const std::string& newname, unsigned int flags) {
  if (flags & ~RENAME_NOREPLACE) return -EINVAL;  // RENAME_EXCHANGE, RENAME_WHITEOUT: as overlayfs without redirect_dir
  if (int e = dir_fds(p)) return e;
  if (int e = dir_fds(np)) return e;
  Node nf, nt;
  if (int e = resolve_at(p, name, &nf)) return e;
  int et = resolve_at(np, newname, &nt);
  if (et && et != -ENOENT) return et;
  const bool to_exists = et == 0;
  if (to_exists && (flags & RENAME_NOREPLACE)) return -EEXIST;
  // A directory the lower layer has cannot move without redirects: EXDEV, and mv copies it,
  // as on overlayfs with redirect_dir off.
  if (S_ISDIR(nf.st.st_mode) && (nf.in_lower || nf.layer == 2)) return -EXDEV;
  if (to_exists) {
    if (S_ISDIR(nt.st.st_mode) && !S_ISDIR(nf.st.st_mode)) return -EISDIR;
    if (!S_ISDIR(nt.st.st_mode) && S_ISDIR(nf.st.st_mode)) return -ENOTDIR;
    if (S_ISDIR(nt.st.st_mode)) {
      Listing names;
      if (int e = list_dir(np, newname, nt, &names)) return e;
      if (!names.empty()) return -ENOTEMPTY;
      if (nt.in_lower || nt.layer == 2) {
        // Replacing a lower directory: remove it from the view first, then the new one is opaque.
        if (int e = remove_entry(np, newname, true)) return e;
      }
    }
  }
  if (int e = copy_up_at(p, name)) return e;
  if (int e = copy_up_dir(np)) return e;
  const bool hid = clear_whiteout(np->ufd, newname) || (to_exists && nt.in_lower);
  if (::renameat(p->ufd, name.c_str(), np->ufd, newname.c_str()) < 0) return -errno;
  if (S_ISDIR(nf.st.st_mode) && hid) vu::layer_format::set_opaque_at(np->ufd, newname.c_str());
  if (nf.in_lower) return make_whiteout(p->ufd, name);
  return 0;
}

void forget_key(Inode* x) {
  if (x->layer != 1 || x->type == S_IFDIR) return;
  auto it = g_upper_files.find({x->dev, x->ino});
  if (it != g_upper_files.end() && it->second == x) g_upper_files.erase(it);
}

// Records where x's file is now (a copy-up moves it to the layer).
void rekey(Inode* x, const Node& n) {
  if (x == &g_root) return;
  forget_key(x);
  x->layer = n.layer;
  x->dev = n.st.st_dev;
  x->ino = n.st.st_ino;
  if (x->layer == 1 && x->type != S_IFDIR) g_upper_files[{x->dev, x->ino}] = x;
}

void drop_link(Inode* parent, const std::string& name) {
  auto it = g_names.find({parent, name});
  if (it == g_names.end()) return;
  Inode* x = it->second;
  g_names.erase(it);
  for (auto l = x->links.begin(); l != x->links.end(); ++l)
    if (l->first == parent && l->second == name) {
      x->links.erase(l);
      break;
    }
}

void add_link(Inode* x, Inode* parent, const std::string& name) {
  g_names[{parent, name}] = x;
  x->links.emplace_back(parent, name);
}

// The Inode for `name` in `parent`, which resolved to n (one more lookup for the kernel).
Inode* node_for(Inode* parent, const char* name, const Node& n) {
  const mode_t type = n.st.st_mode & S_IFMT;
  Inode* x = nullptr;
  if (auto it = g_names.find({parent, name}); it != g_names.end()) {
    x = it->second;
    // The same file: a directory by its name; a layer file by its identity; a lower file may
    // have been copied up meanwhile.
    const bool same = x->type == type && (type == S_IFDIR || x->layer == 2 || (x->dev == n.st.st_dev && x->ino == n.st.st_ino));
    if (!same) {
      drop_link(parent, name);
      x = nullptr;
    }
  }
  if (!x && n.layer == 1 && type != S_IFDIR) {
    if (auto it = g_upper_files.find({n.st.st_dev, n.st.st_ino}); it != g_upper_files.end()) {
      x = it->second;  // another name of a file the kernel knows: a hard link
      add_link(x, parent, name);
    }
  }
  if (!x) {
    x = new Inode;
    x->type = type;
    add_link(x, parent, name);
  }
  rekey(x, n);
  ++x->nlookup;
  return x;
}

void forget_one(Inode* x, uint64_t n) {
  if (x == &g_root) return;
  x->nlookup -= std::min(n, x->nlookup);
  if (x->nlookup) return;
  for (const auto& [parent, name] : x->links)
    if (auto it = g_names.find({parent, name}); it != g_names.end() && it->second == x) g_names.erase(it);
  forget_key(x);
  if (x->orphan >= 0) ::close(x->orphan);
  close_dir_fds(x);
  delete x;
}

void fill_entry(Inode* x, const Node& n, struct fuse_entry_param* e) {
  *e = fuse_entry_param{};
  e->ino = id_of(x);
  e->attr = present(n);
  e->attr_timeout = g.timeout;
  e->entry_timeout = g.timeout;
}

// Answers a request that made or found `name` in `parent` with its entry.
void reply_entry(fuse_req_t req, Inode* parent, const std::string& name) {
  Node n;
  if (int e = resolve_at(parent, name, &n)) {
    fuse_reply_err(req, -e);
    return;
  }
  struct fuse_entry_param e;
  fill_entry(node_for(parent, name.c_str(), n), n, &e);
  fuse_reply_entry(req, &e);
}

// A file the view made belongs to whoever made it: the daemon creates it, then gives it to
// the caller (possible where the view maps ids and we are its root; else it stays ours, which
// is then the caller anyway). Its group is the caller's, or the directory's when that is
// set-group-ID (the layer's filesystem already did that). chown clears S_ISUID/S_ISGID: put
// them back.
void give_to_caller(fuse_req_t req, Inode* d, const std::string& name, mode_t mode) {
  const struct fuse_ctx* c = fuse_req_ctx(req);
  if (c->uid == g.uid && c->gid == g.gid) return;  // the daemon's own already
  struct stat parent;
  const bool sgid_dir = ::fstat(d->ufd, &parent) == 0 && (parent.st_mode & S_ISGID);
  const uid_t uid = c->uid == g.uid ? static_cast<uid_t>(-1) : c->uid;
  const gid_t gid = sgid_dir || c->gid == g.gid ? static_cast<gid_t>(-1) : c->gid;
  if (uid == static_cast<uid_t>(-1) && gid == static_cast<gid_t>(-1)) return;
  if (::fchownat(d->ufd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) == 0 && (mode & 07000) && !S_ISLNK(mode))
    ::fchmodat(d->ufd, name.c_str(), mode & 07777, 0);
}

// A handle: the descriptor, and whether it is the layer's file (a read-only open of a lower
// file must never be changed through it: fchmod, futimens… go by name and copy up).
uint64_t make_fh(int fd, bool upper) { return static_cast<uint64_t>(static_cast<uint32_t>(fd)) | (upper ? 1ull << 32 : 0); }
int fh_fd(const struct fuse_file_info* fi) { return static_cast<int>(static_cast<uint32_t>(fi->fh)); }
bool fh_upper(const struct fuse_file_info* fi) { return (fi->fh >> 32) & 1; }

#define LOCKED                                       \
  std::lock_guard<std::recursive_mutex> lock(g.tree); \
  trim_dir_fds()

// ---- operations ----

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  LOCKED;
  Inode* p = inode_of(parent);
  Node n;
  int e = dir_fds(p);
  if (!e) e = resolve_at(p, name, &n);
  if (e == -ENOENT) {
    // Negative entry, cached for the timeout: only we create names.
    struct fuse_entry_param ne {};
    ne.entry_timeout = g.timeout;
    return (void)fuse_reply_entry(req, &ne);
  }
  if (e) return (void)fuse_reply_err(req, -e);
  struct fuse_entry_param entry;
  fill_entry(node_for(p, name, n), n, &entry);
  fuse_reply_entry(req, &entry);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  {
    LOCKED;
    forget_one(inode_of(ino), nlookup);
  }
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  {
    LOCKED;
    for (size_t i = 0; i < count; ++i) forget_one(inode_of(forgets[i].ino), forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

// Before `name` in `parent` goes away (unlink, rename over it): if it is the last name of a
// file the kernel still holds (open, or fstat after unlink), keep the file reachable.
void keep_if_last(Inode* parent, const std::string& name) {
  auto it = g_names.find({parent, name});
  if (it == g_names.end()) return;
  Inode* x = it->second;
  if (x->type == S_IFDIR || x->links.size() != 1 || x->orphan >= 0) return;
  Node n;
  if (dir_fds(parent) == 0 && resolve_at(parent, name, &n) == 0)
    x->orphan = ::openat(n.layer == 1 ? parent->ufd : parent->lfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

int stat_inode(Inode* x, struct stat* st) {
  if (x->links.empty() && x->orphan >= 0) {
    if (::fstat(x->orphan, st) < 0) return -errno;
    if (x->layer == 2 && !S_ISLNK(st->st_mode)) st->st_uid = g.uid, st->st_gid = g.gid;
    if (x->layer == 2) st->st_nlink = 0;
    present_fd(st);
    return 0;
  }
  Loc l;
  if (int e = loc_of(x, &l)) return e;
  // A layer file is where it was (only we change the layer): its stat is the layer's.
  if (x->layer == 1 && x->type != S_IFDIR && l.ufd() >= 0) {
    if (::fstatat(l.ufd(), l.name.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0 && (st->st_mode & S_IFMT) == x->type &&
        st->st_ino == x->ino) {
      present_fd(st);
      return 0;
    }
  }
  Node n;
  if (int e = resolve_at(l.dir, l.name, &n)) return e;
  rekey(x, n);
  *st = present(n);
  return 0;
}

// x's place, copied up first unless it is the layer's already.
int upper_loc(Inode* x, Loc* l) {
  if (int e = loc_of(x, l)) return e;
  if (x->layer == 1 && x->type != S_IFDIR && l->ufd() >= 0) return 0;
  if (int e = copy_up_at(l->dir, l->name)) return e;
  Node n;
  if (resolve_at(l->dir, l->name, &n) == 0) rekey(x, n);
  return 0;
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  struct stat st;
  if (fi && fh_upper(fi)) {
    if (::fstat(fh_fd(fi), &st) < 0) return (void)fuse_reply_err(req, errno);
    present_fd(&st);
    return (void)fuse_reply_attr(req, &st, g.timeout);
  }
  // By name: a handle of a lower file may be older than the file's copy-up.
  LOCKED;
  int e = stat_inode(inode_of(ino), &st);
  if (e == -ENOENT && fi && ::fstat(fh_fd(fi), &st) == 0) {  // unlinked, still open
    st.st_uid = g.uid;
    st.st_gid = g.gid;
    e = 0;
  }
  if (e) return (void)fuse_reply_err(req, -e);
  fuse_reply_attr(req, &st, g.timeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info* fi) {
  LOCKED;
  Inode* x = inode_of(ino);
  int fd = fi && fh_upper(fi) ? fh_fd(fi) : -1;
  Loc l{};
  if (fd < 0)
    if (int e = upper_loc(x, &l)) return (void)fuse_reply_err(req, -e);
  const char* nm = l.name.c_str();
  const uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
  const gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
  int rc = 0;
  if (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1))
    rc = fd >= 0 ? ::fchown(fd, uid, gid) : ::fchownat(l.ufd(), nm, uid, gid, AT_SYMLINK_NOFOLLOW);
  if (!rc && (to_set & FUSE_SET_ATTR_MODE))
    rc = fd >= 0 ? ::fchmod(fd, attr->st_mode & 07777) : ::fchmodat(l.ufd(), nm, attr->st_mode & 07777, 0);
  if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
    if (fd >= 0) {
      rc = ::ftruncate(fd, attr->st_size);
    } else {
      int t = open_in(l.ufd(), l.name, O_WRONLY);
      rc = t < 0 ? -1 : ::ftruncate(t, attr->st_size);
      int e = errno;
      if (t >= 0) ::close(t);
      errno = e;
    }
  }
  if (!rc && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
    struct timespec tv[2];
    tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) tv[0].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_ATIME) tv[0] = attr->st_atim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) tv[1].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_MTIME) tv[1] = attr->st_mtim;
    rc = fd >= 0 ? ::futimens(fd, tv) : ::utimensat(l.ufd(), nm, tv, AT_SYMLINK_NOFOLLOW);
  }
  if (rc) return (void)fuse_reply_err(req, errno);
  struct stat st;
  if (fd >= 0) {
    if (::fstat(fd, &st) < 0) return (void)fuse_reply_err(req, errno);
    present_fd(&st);
  } else if (int e = stat_inode(x, &st)) {
    return (void)fuse_reply_err(req, -e);
  }
  fuse_reply_attr(req, &st, g.timeout);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  LOCKED;
  Loc l;
  Node n;
  if (int e = resolve_inode(inode_of(ino), &n, &l)) return (void)fuse_reply_err(req, -e);
  char buf[PATH_MAX + 1];
  ssize_t k = ::readlinkat(l.fd(n.layer), l.name.c_str(), buf, sizeof buf - 1);
  if (k < 0) return (void)fuse_reply_err(req, errno);
  buf[k] = 0;
  fuse_reply_readlink(req, buf);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  // A 0/0 character device is how the layer says "deleted": the view cannot make one (EPERM,
  // as overlayfs).
  if (S_ISCHR(mode) && rdev == makedev(0, 0)) return (void)fuse_reply_err(req, EPERM);
  LOCKED;
  Inode* p = inode_of(parent);
  bool hid;
  if (int e = prepare_create(p, name, &hid)) return (void)fuse_reply_err(req, -e);
  int rc;
  while (retry_over_whiteout(p, name, rc = ::mknodat(p->ufd, name, mode, rdev), &hid)) {
  }
  if (rc < 0) return (void)fuse_reply_err(req, errno);
  give_to_caller(req, p, name, mode);
  reply_entry(req, p, name);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  LOCKED;
  Inode* p = inode_of(parent);
  bool hid;
  if (int e = prepare_create(p, name, &hid)) return (void)fuse_reply_err(req, -e);
  int rc;
  while (retry_over_whiteout(p, name, rc = ::mkdirat(p->ufd, name, mode), &hid)) {
  }
  if (rc < 0) return (void)fuse_reply_err(req, errno);
  // Something of the lower layer was deleted here: the new directory must not show its entries.
  if (hid && !vu::layer_format::set_opaque_at(p->ufd, name)) {
    int e = errno;
    ::unlinkat(p->ufd, name, AT_REMOVEDIR);
    make_whiteout(p->ufd, name);
    return (void)fuse_reply_err(req, e);
  }
  give_to_caller(req, p, name, S_IFDIR | mode);
  reply_entry(req, p, name);
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  LOCKED;
  Inode* p = inode_of(parent);
  bool hid;
  if (int e = prepare_create(p, name, &hid)) return (void)fuse_reply_err(req, -e);
  int rc;
  while (retry_over_whiteout(p, name, rc = ::symlinkat(target, p->ufd, name), &hid)) {
  }
  if (rc < 0) return (void)fuse_reply_err(req, errno);
  give_to_caller(req, p, name, S_IFLNK | 0777);
  reply_entry(req, p, name);
}

void op_unlink_common(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir) {
  LOCKED;
  Inode* p = inode_of(parent);
  if (!dir) keep_if_last(p, name);
  if (int e = remove_entry(p, name, dir)) return (void)fuse_reply_err(req, -e);
  drop_link(p, name);
  fuse_reply_err(req, 0);
}
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) { op_unlink_common(req, parent, name, false); }
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { op_unlink_common(req, parent, name, true); }

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  LOCKED;
  Inode* p = inode_of(parent);
  Inode* np = inode_of(newparent);
  keep_if_last(np, newname);
  if (int e = rename_at(p, name, np, newname, flags)) return (void)fuse_reply_err(req, -e);
  drop_link(np, newname);  // what was replaced
  if (auto it = g_names.find({p, name}); it != g_names.end()) {
    Inode* x = it->second;
    drop_link(p, name);
    add_link(x, np, newname);
    // The moved name becomes x's first: its old first name may be the one that moved.
    std::rotate(x->links.begin(), x->links.end() - 1, x->links.end());
  }
  fuse_reply_err(req, 0);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  LOCKED;
  Inode* x = inode_of(ino);
  Inode* np = inode_of(newparent);
  Loc from;
  bool hid;
  if (int e = loc_of(x, &from)) return (void)fuse_reply_err(req, -e);
  if (int e = prepare_create(np, newname, &hid)) return (void)fuse_reply_err(req, -e);
  if (int e = copy_up_at(from.dir, from.name)) return (void)fuse_reply_err(req, -e);
  Node n;
  if (int e = resolve_at(from.dir, from.name, &n)) return (void)fuse_reply_err(req, -e);
  rekey(x, n);  // now the layer's file: the new name finds this Inode
  int rc;
  while (retry_over_whiteout(np, newname, rc = ::linkat(from.ufd(), from.name.c_str(), np->ufd, newname, 0), &hid)) {
  }
  if (rc < 0) return (void)fuse_reply_err(req, errno);
  reply_entry(req, np, newname);
}

int open_flags(int flags) {
  if (g.writeback) {
    // The kernel's writeback cache may read to fill partial pages, and handles O_APPEND itself.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  const bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
  int fd;
  bool upper;
  {
    LOCKED;
    Inode* x = inode_of(ino);
    Loc l;
    if (int e = writes ? upper_loc(x, &l) : loc_of(x, &l)) return (void)fuse_reply_err(req, -e);
    if (x->layer != 1 || x->type == S_IFDIR || x == &g_root) {
      Node n;
      if (int e = resolve_at(l.dir, l.name, &n)) return (void)fuse_reply_err(req, -e);
      rekey(x, n);
      upper = n.layer == 1;
    } else {
      upper = true;
    }
    fd = open_in(upper ? l.ufd() : l.dir->lfd, l.name, open_flags(fi->flags) | O_NONBLOCK);
    if (fd < 0) return (void)fuse_reply_err(req, errno);
    if (int e = regular_only(fd, fi->flags)) return (void)fuse_reply_err(req, -e);
  }
  fi->fh = make_fh(fd, upper);
  fi->keep_cache = 1;  // one Inode per file, changed only through us: its pages stay right
  fuse_reply_open(req, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
  LOCKED;
  Inode* p = inode_of(parent);
  bool hid;
  if (int e = prepare_create(p, name, &hid)) return (void)fuse_reply_err(req, -e);
  int fd;
  while (retry_over_whiteout(p, name, fd = open_in(p->ufd, name, open_flags(fi->flags) | O_CREAT | O_EXCL, mode), &hid)) {
  }
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  give_to_caller(req, p, name, mode);
  Node n;  // the new file is the layer's: its own fstat is its resolution
  n.layer = 1;
  if (::fstat(fd, &n.st) < 0) {
    int e = errno;
    ::close(fd);
    return (void)fuse_reply_err(req, e);
  }
  n.in_lower = hid;
  struct fuse_entry_param e;
  Inode* x = node_for(p, name, n);
  x->no_xattrs = x->nlookup == 1 && x->links.size() == 1;  // a new file: nothing copied, nothing set
  fill_entry(x, n, &e);
  fi->fh = make_fh(fd, true);
  fi->keep_cache = 1;
  fuse_reply_create(req, &e, fi);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  struct fuse_bufvec v = FUSE_BUFVEC_INIT(size);
  v.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  v.buf[0].fd = fh_fd(fi);
  v.buf[0].pos = off;
  fuse_reply_data(req, &v, FUSE_BUF_SPLICE_MOVE);
}

// All of it or an error. A short count is not an answer the kernel can use: the writeback
// cache takes any reply without an error as "written" (the rest of the page is lost, and the
// writer's close() says nothing), and a writer without the cache would retry blindly. So a
// short write is continued until the layer's filesystem says why it stopped (ENOSPC, EDQUOT,
// EFBIG), and that error is the reply: the writer's write() or close() gets it.
void op_write_buf(fuse_req_t req, fuse_ino_t, struct fuse_bufvec* buf, off_t off, struct fuse_file_info* fi) {
  const size_t total = fuse_buf_size(buf);
  size_t done = 0;
  while (done < total) {
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(total - done);
    dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    dst.buf[0].fd = fh_fd(fi);
    dst.buf[0].pos = off + static_cast<off_t>(done);
    ssize_t k = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);  // advances buf past what it copied
    if (k < 0) return (void)fuse_reply_err(req, static_cast<int>(-k));
    if (k == 0) return (void)fuse_reply_err(req, EIO);  // no progress and no reason: never "written"
    done += static_cast<size_t>(k);
  }
  fuse_reply_write(req, done);
}

// close(dup()) reports delayed write errors to the closing process — on filesystems that delay
// them (NFS and friends, layer_reports_on_close()). Elsewhere there is no flush operation at
// all: the kernel then stops sending FLUSH (a round trip and two calls for every close()).
bool layer_reports_on_close(int fd) {
  struct statfs sf;
  if (::fstatfs(fd, &sf) < 0) return true;
  switch (static_cast<unsigned long>(sf.f_type)) {
    case 0x6969:      // NFS
    case 0x517b:      // SMB
    case 0xff534d42:  // CIFS
    case 0xfe534d42:  // SMB2
    case 0x65735546:  // FUSE
    case 0x00c36400:  // Ceph
    case 0x5346414f:  // AFS
    case 0x01021997:  // 9p
    case 0x73757245:  // Coda
    case 0x47504653:  // GPFS
    case 0x0bd00bd0:  // Lustre
      return true;
    default:
      return false;
  }
}

void op_flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  int fd = ::dup(fh_fd(fi));
  fuse_reply_err(req, fd < 0 ? errno : ::close(fd) < 0 ? errno : 0);
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  ::close(fh_fd(fi));
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, struct fuse_file_info* fi) {
  int fd = fh_fd(fi);
  fuse_reply_err(req, (datasync ? ::fdatasync(fd) : ::fsync(fd)) < 0 ? errno : 0);
}

// A directory handle: its merged listing, taken at opendir and again at offset 0 (rewinddir).
struct DirHandle {
  std::vector<std::pair<std::string, std::pair<ino_t, unsigned char>>> entries;
};

int load_dir(Inode* x, DirHandle* d) {
  Loc l;
  Node n;
  if (int e = resolve_inode(x, &n, &l)) return e;
  if (!S_ISDIR(n.st.st_mode)) return -ENOTDIR;
  Listing names;
  if (int e = list_dir(l.dir, l.name, n, &names)) return e;
  d->entries.clear();
  d->entries.push_back({".", {n.st.st_ino, DT_DIR}});
  d->entries.push_back({"..", {0, DT_DIR}});
  for (auto& e : names) d->entries.push_back(e);
  return 0;
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  LOCKED;
  auto* d = new DirHandle;
  if (int e = load_dir(inode_of(ino), d)) {
    delete d;
    return (void)fuse_reply_err(req, -e);
  }
  fi->fh = reinterpret_cast<uint64_t>(d);
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  if (off == 0) {
    LOCKED;
    if (int e = load_dir(inode_of(ino), d)) return (void)fuse_reply_err(req, -e);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < d->entries.size(); ++i) {
    struct stat st {};
    st.st_ino = d->entries[i].second.first;
    st.st_mode = static_cast<mode_t>(d->entries[i].second.second) << 12;
    size_t len = fuse_add_direntry(req, buf.data() + used, size - used, d->entries[i].first.c_str(), &st,
                                   static_cast<off_t>(i + 1));
    if (len > size - used) break;
    used += len;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st;
  if (::fstatvfs(g.upper, &st) < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &st);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  LOCKED;
  inode_of(ino)->no_xattrs = false;
  Loc l;
  if (int e = upper_loc(inode_of(ino), &l)) return (void)fuse_reply_err(req, -e);
  int rc = ::lsetxattr(proc_at(l.ufd(), l.name).c_str(), stored_xattr_name(name).c_str(), value, size, flags);
  fuse_reply_err(req, rc < 0 ? errno : 0);
}

// Replies to a size query (size 0) with the length, else with the bytes.
void reply_sized(fuse_req_t req, const char* data, ssize_t len, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, static_cast<size_t>(len));
  if (static_cast<size_t>(len) > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, data, static_cast<size_t>(len));
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  LOCKED;
  if (inode_of(ino)->no_xattrs && std::strcmp(name, "security.capability") == 0)
    return (void)fuse_reply_err(req, ENODATA);  // not inherited from a directory, never set
  Loc l;
  Node n;
  if (int e = resolve_inode(inode_of(ino), &n, &l)) return (void)fuse_reply_err(req, -e);
  std::vector<char> value(size ? size : 1);
  ssize_t k = ::lgetxattr(proc_at(l.fd(n.layer), l.name).c_str(), stored_xattr_name(name).c_str(), size ? value.data() : nullptr, size);
  if (k < 0) return (void)fuse_reply_err(req, errno);
  reply_sized(req, value.data(), k, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  LOCKED;
  Loc l;
  Node n;
  if (int e = resolve_inode(inode_of(ino), &n, &l)) return (void)fuse_reply_err(req, -e);
  std::vector<char> names(65536);
  ssize_t k = ::llistxattr(proc_at(l.fd(n.layer), l.name).c_str(), names.data(), names.size());
  if (k < 0) return (void)fuse_reply_err(req, errno);
  const std::string out = vu::layer_format::view_xattr_names(names.data(), static_cast<size_t>(k));
  reply_sized(req, out.data(), static_cast<ssize_t>(out.size()), size);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  LOCKED;
  Loc l;
  if (int e = upper_loc(inode_of(ino), &l)) return (void)fuse_reply_err(req, -e);
  int rc = ::lremovexattr(proc_at(l.ufd(), l.name).c_str(), stored_xattr_name(name).c_str());
  fuse_reply_err(req, rc < 0 ? errno : 0);
}

void op_init(void*, struct fuse_conn_info* conn) {
  const char* env = std::getenv("VU_COWFS_WRITEBACK");
  g.writeback = env && *env == '1' && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
  if (g.writeback) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Replies carrying file data go by splice (no copy through our memory: reads ~9x faster
  // here, bench/fs.sh); requests are read with splice only when asked (it did not help writes).
  const char* sp = std::getenv("VU_COWFS_SPLICE");
  const std::string splice = sp ? sp : "reply";
  conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ);
  if (splice == "reply" || splice == "all") conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (splice == "all") conn->want |= conn->capable & FUSE_CAP_SPLICE_READ;
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
}

// The id the view shows for owners it does not map (/proc/sys/kernel/overflow[ug]id), or -1
// when the view maps that id itself (--map-users): then it is a real owner.
unsigned overflow_id(const char* overflow, const char* map) {
  unsigned v = 65534;
  if (FILE* f = std::fopen(overflow, "re")) {
    if (std::fscanf(f, "%u", &v) != 1) v = 65534;
    std::fclose(f);
  }
  if (FILE* f = std::fopen(map, "re")) {
    unsigned long in, out, count;
    bool mapped = false;
    while (std::fscanf(f, "%lu %lu %lu", &in, &out, &count) == 3) mapped = mapped || (v >= in && v - in < count);
    std::fclose(f);
    if (mapped) v = static_cast<unsigned>(-1);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: vu-cowfs LAYER TARGET [-d]\n"
                 "Mount on TARGET a copy-on-write view of TARGET whose changes land in LAYER\n"
                 "(overlayfs's layer format). Started by `vu run --cow LAYER:TARGET`.\n");
    return 2;
  }
  const char* layer = argv[1];
  const char* target = argv[2];
  g.upper = ::open(layer, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (g.upper < 0) {
    std::fprintf(stderr, "vu-cowfs: layer %s: %s\n", layer, std::strerror(errno));
    return 1;
  }
  const bool root_fs = argc > 3 && std::strcmp(argv[3], "--root-fs") == 0;
  if (root_fs) {
    // A private copy of the mount tree, taken before our own mount exists (so the lower layer
    // cannot reach the staging directory's new contents: no loop). It must be recursive — a
    // user namespace may not copy a mount without the mounts locked on it (EINVAL) — but the
    // view never looks through us at /proc, /dev, …: the keeper binds the real ones over them.
    g.lower = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  } else {
    g.lower = ::open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);  // before the mount covers it
  }
  if (g.lower < 0) {
    std::fprintf(stderr, "vu-cowfs: target %s: %s\n", target, std::strerror(errno));
    return 1;
  }
  g.uid = ::getuid();
  g.gid = ::getgid();
  g.overflow_uid = overflow_id("/proc/sys/kernel/overflowuid", "/proc/self/uid_map");
  g.overflow_gid = overflow_id("/proc/sys/kernel/overflowgid", "/proc/self/gid_map");
  g_root.type = S_IFDIR;
  g_root.nlookup = 1;
  g_root.ufd = g.upper;
  g_root.lfd = g.lower;
  // A descriptor per directory the kernel holds: as many as the hard limit allows, half of
  // them for directories (the rest for open files); above that they are given back.
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      g.dir_fd_budget = std::max<size_t>(64, static_cast<size_t>(rl.rlim_cur) / 2);
  }
  ::umask(0);  // modes come from the callers, already masked by the kernel

  static struct fuse_lowlevel_ops ops {};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  if (layer_reports_on_close(g.upper)) ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.create = op_create;

  // allow_other: every user of the view reaches the files, with the kernel's permission checks
  // (default_permissions) against the owners shown.
  std::string opts = "default_permissions,allow_other,fsname=vu-cowfs,subtype=cowfs";
  struct fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, argv[0]);
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, opts.c_str());
  for (int i = root_fs ? 4 : 3; i < argc; ++i) fuse_opt_add_arg(&args, argv[i]);
  struct fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, nullptr);
  if (!se) return 1;
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, target) == 0) {
      // One thread: on the 2-core reference VM, handing requests between libfuse's worker
      // threads cost more than it gave (bench/fs.sh). VU_COWFS_THREADS=1 gives the
      // multithreaded loop back (a large copy-up then does not hold up other requests).
      const char* mt = std::getenv("VU_COWFS_THREADS");
      rc = (mt && *mt == '1') ? fuse_session_loop_mt(se, nullptr) : fuse_session_loop(se);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc < 0 ? 1 : 0;
}
