// vu-cowfs — a copy-on-write layer over libfuse3, for views where kernel overlayfs cannot give
// the semantics of --cow (see fusefs.h): LAYER receives every change, TARGET is read-only to us.
//
//   vu-cowfs LAYER TARGET [-d]      (started by the keeper inside the view; stays in the
//                                    foreground until TARGET is unmounted)
//   vu-cowfs LAYER STAGING --root-fs the root filesystem (alone) copy-on-write, on STAGING
//
// The layer is overlayfs's: a whiteout is a 0/0 character device, an opaque directory carries
// user.overlay.opaque=y ("userxattr"), so kernel overlayfs reads what vu-cowfs wrote and the
// other way round. Every file appears owned by the daemon's own uid/gid in the view (root under
// --root): the view is the owner of its copy. Permissions are the kernel's (default_permissions).
//
// The high-level (path) API: overlay semantics are about paths (a whiteout or an opaque
// directory anywhere on the way hides the lower layer), and the kernel caches lookups, so a
// path walk per request that misses the cache costs little. Data goes through file descriptors
// (read_buf/write_buf; replies by splice), with the kernel's writeback cache and 1 MiB
// requests, on one thread: bench/fs.sh shows what each of those gave.
#define FUSE_USE_VERSION 35
#include <fuse3/fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr const char kOpaque[] = "user.overlay.opaque";
constexpr const char kPrivatePrefix[] = "user.overlay.";

struct State {
  int upper = -1, lower = -1;  // O_PATH directory descriptors, opened before the mount
  std::string upper_proc, lower_proc;  // "/proc/self/fd/N/" for the *xattr calls
  uid_t uid = 0;
  gid_t gid = 0;
  bool writeback = true;
  std::mutex tree;  // copy-ups and changes to the tree's shape
};
State g;

// "/a/b" → "a/b"; "/" → ".".
std::string rel(const char* path) { return path[1] ? std::string(path + 1) : std::string("."); }
std::string parent_of(const std::string& r) {
  size_t s = r.rfind('/');
  return s == std::string::npos ? "." : r.substr(0, s);
}
bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

bool opaque(const std::string& r) {
  char v[4];
  ssize_t n = ::lgetxattr((g.upper_proc + r).c_str(), kOpaque, v, sizeof v);
  return n == 1 && v[0] == 'y';
}

// Where a path is. layer: 1 upper, 2 lower. lower_below: for a directory, whether the lower
// layer's directory of the same name shows through (merged).
struct Node {
  int layer = 0;
  struct stat st {};
  bool in_lower = false;     // the lower layer has this path visible (hidden only by upper's copy)
  bool lower_below = false;  // directory: lower entries show through
};

// Resolves in view terms: whiteouts and opaque directories on the way hide the lower layer.
int resolve(const std::string& r, Node* n) {
  *n = Node{};
  bool lower_visible = true;  // no opaque directory or non-directory above r in the upper layer
  bool below_hidden = false;  // r itself is an opaque directory
  bool upper_walk = true;
  // The upper layer, component by component, while its directories exist.
  size_t pos = 0;
  while (upper_walk) {
    size_t next = r == "." ? std::string::npos : r.find('/', pos);
    std::string prefix = next == std::string::npos ? r : r.substr(0, next);
    struct stat st;
    if (::fstatat(g.upper, prefix.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno != ENOENT && errno != ENOTDIR) return -errno;
      upper_walk = false;
      break;
    }
    const bool last = next == std::string::npos;
    if (is_whiteout(st)) return -ENOENT;
    if (!S_ISDIR(st.st_mode)) {
      if (!last) return -ENOTDIR;
      n->layer = 1;
      n->st = st;
      break;
    }
    const bool is_opaque = prefix != "." && opaque(prefix);
    if (last) {
      n->layer = 1;
      n->st = st;
      below_hidden = is_opaque;
      break;
    }
    if (is_opaque) lower_visible = false;
    pos = next + 1;
  }
  if (lower_visible) {
    struct stat st;
    if (::fstatat(g.lower, r.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      n->in_lower = true;
      if (n->layer == 0) {
        n->layer = 2;
        n->st = st;
      }
      n->lower_below = S_ISDIR(st.st_mode) && S_ISDIR(n->st.st_mode) && !below_hidden;
      // The layer's root is 0700 (no one else may enter the layer on the host, see
      // prepare_cow); the view sees the target's own mode there, unless it chose another.
      if (r == "." && n->layer == 1 && (n->st.st_mode & 07777) == 0700)
        n->st.st_mode = (n->st.st_mode & S_IFMT) | (st.st_mode & 07777);
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return -errno;
    }
  }
  if (n->layer == 0) return -ENOENT;
  n->st.st_uid = g.uid;
  n->st.st_gid = g.gid;
  return 0;
}

// Every open in a layer goes through here: the path is one the kernel resolved in the view, so
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
  long fd;
  do fd = ::syscall(SYS_openat2, dir, r.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);  // RESOLVE_* lookups may ask for a retry under rename
  return static_cast<int>(fd);
}

int layer_fd(const Node& n) { return n.layer == 1 ? g.upper : g.lower; }
const std::string& layer_proc(const Node& n) { return n.layer == 1 ? g.upper_proc : g.lower_proc; }

int copy_xattrs(const std::string& from, const std::string& to) {
  char names[8192];
  ssize_t len = ::llistxattr(from.c_str(), names, sizeof names);
  if (len < 0) return errno == ENOTSUP ? 0 : -errno;
  for (char* p = names; p < names + len; p += std::strlen(p) + 1) {
    if (std::strncmp(p, kPrivatePrefix, sizeof kPrivatePrefix - 1) == 0 &&
        std::strncmp(p, "user.overlay.overlay.", 21) != 0)
      continue;  // the layer's own bookkeeping; the view's escaped attributes are copied
    char value[65536];
    ssize_t v = ::lgetxattr(from.c_str(), p, value, sizeof value);
    if (v < 0) continue;  // e.g. security.* we may not read
    (void)::lsetxattr(to.c_str(), p, value, static_cast<size_t>(v), 0);  // best effort, as overlayfs
  }
  return 0;
}

int copy_up(const std::string& r);

// Makes the directory r exist in the upper layer (copying up its ancestors).
int ensure_upper_dir(const std::string& r) {
  if (r == ".") return 0;
  return copy_up(r);
}

// A name about to be created in the upper layer: drop a whiteout standing there. Returns
// whether something of the lower layer was hidden under that name (a directory made there
// must then be opaque).
bool clear_whiteout(const std::string& r) {
  struct stat st;
  if (::fstatat(g.upper, r.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
    ::unlinkat(g.upper, r.c_str(), 0);
    return true;
  }
  return false;
}

int copy_up(const std::string& r) {
  Node n;
  if (int e = resolve(r, &n)) return e;
  if (n.layer == 1) return 0;
  if (int e = ensure_upper_dir(parent_of(r))) return e;
  const struct stat& st = n.st;  // the lower file's (owner squashed, not used here)
  const std::string to = g.upper_proc + r;
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(g.upper, r.c_str(), (st.st_mode & 07777) | S_IRWXU) < 0 && errno != EEXIST) return -errno;
    copy_xattrs(g.lower_proc + r, to);
    ::fchmodat(g.upper, r.c_str(), st.st_mode & 07777, 0);
  } else if (S_ISREG(st.st_mode)) {
    // Into a file with no name (O_TMPFILE), linked under r once complete: a crash leaves no
    // half copy and no name exists that anyone could plant a symlink or a file on. Where the
    // layer's filesystem has no O_TMPFILE: a fresh random name, O_EXCL (never an existing file,
    // never through a symlink), renamed over r.
    int in = open_in(g.lower, r, O_RDONLY);
    if (in < 0) return -errno;
    std::string tmp;
    int out = open_in(g.upper, parent_of(r), O_TMPFILE | O_RDWR, 0600);
    if (out < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      unsigned char rnd[8];
      for (int tries = 0; out < 0 && tries < 100; ++tries) {
        if (::getrandom(rnd, sizeof rnd, 0) != sizeof rnd) break;
        char name[32];
        std::snprintf(name, sizeof name, ".vu-cowfs-copy.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                      rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        tmp = parent_of(r) + "/" + name;
        out = open_in(g.upper, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
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
    if (!err) copy_xattrs(g.lower_proc + r, out_proc);
    if (!err && ::fchmod(out, st.st_mode & 07777) < 0) err = -errno;
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (!err) ::futimens(out, times);
    if (!err && tmp.empty() && ::linkat(AT_FDCWD, out_proc.c_str(), g.upper, r.c_str(), AT_SYMLINK_FOLLOW) < 0) err = -errno;
    if (!err && !tmp.empty() && ::renameat(g.upper, tmp.c_str(), g.upper, r.c_str()) < 0) err = -errno;
    if (err && !tmp.empty()) ::unlinkat(g.upper, tmp.c_str(), 0);
    ::close(out);
    return err;
  } else if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t k = ::readlinkat(g.lower, r.c_str(), target, sizeof target - 1);
    if (k < 0) return -errno;
    target[k] = 0;
    if (::symlinkat(target, g.upper, r.c_str()) < 0) return -errno;
  } else {
    if (::mknodat(g.upper, r.c_str(), st.st_mode, st.st_rdev) < 0) return -errno;
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(g.upper, r.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return 0;
}

int make_whiteout(const std::string& r) {
  if (::mknodat(g.upper, r.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0) return -errno;
  return 0;
}

// The merged entries of a directory (names only), without whiteouts.
int list_dir(const std::string& r, const Node& n, std::set<std::string>* names) {
  std::set<std::string> hidden;
  auto scan = [&](int base, bool upper) -> int {
    int fd = open_in(base, r, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return -errno;
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (upper) {
        if (e->d_type == DT_CHR) {
          struct stat st;
          if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
            hidden.insert(name);
            continue;
          }
        }
        names->insert(name);
      } else if (!hidden.count(name)) {
        names->insert(name);
      }
    }
    ::closedir(d);
    return 0;
  };
  if (n.layer == 1)
    if (int e = scan(g.upper, true)) return e;
  if (n.lower_below || n.layer == 2)
    if (int e = scan(g.lower, false)) return e;
  return 0;
}

// ---- operations ----

int op_getattr(const char* path, struct stat* st, struct fuse_file_info* fi) {
  if (fi) {
    if (::fstat(static_cast<int>(fi->fh), st) < 0) return -errno;
    st->st_uid = g.uid;
    st->st_gid = g.gid;
    return 0;
  }
  Node n;
  if (int e = resolve(rel(path), &n)) return e;
  *st = n.st;
  return 0;
}

int op_readlink(const char* path, char* buf, size_t size) {
  Node n;
  std::string r = rel(path);
  if (int e = resolve(r, &n)) return e;
  ssize_t k = ::readlinkat(layer_fd(n), r.c_str(), buf, size - 1);
  if (k < 0) return -errno;
  buf[k] = 0;
  return 0;
}

// With nullpath_ok, libfuse passes no path to calls that have a handle: a directory's handle
// is its path.
int op_opendir(const char* path, struct fuse_file_info* fi) {
  Node n;
  std::string r = rel(path);
  if (int e = resolve(r, &n)) return e;
  if (!S_ISDIR(n.st.st_mode)) return -ENOTDIR;
  fi->fh = reinterpret_cast<uint64_t>(new std::string(r));
  return 0;
}

int op_releasedir(const char*, struct fuse_file_info* fi) {
  delete reinterpret_cast<std::string*>(fi->fh);
  return 0;
}

int op_readdir(const char*, void* buf, fuse_fill_dir_t fill, off_t, struct fuse_file_info* fi,
               enum fuse_readdir_flags) {
  Node n;
  const std::string& r = *reinterpret_cast<std::string*>(fi->fh);
  if (int e = resolve(r, &n)) return e;
  if (!S_ISDIR(n.st.st_mode)) return -ENOTDIR;
  std::set<std::string> names;
  if (int e = list_dir(r, n, &names)) return e;
  fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  for (const std::string& name : names) fill(buf, name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  return 0;
}

// Common preamble of every call that creates the name r: the parent in the upper layer, no
// existing entry in the view, a whiteout under the name dropped.
int prepare_create(const std::string& r, bool* hid_lower) {
  Node n;
  int e = resolve(r, &n);
  if (e == 0) return -EEXIST;
  if (e != -ENOENT) return e;
  if ((e = ensure_upper_dir(parent_of(r)))) return e;
  *hid_lower = clear_whiteout(r);
  return 0;
}

int op_mkdir(const char* path, mode_t mode) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  bool hid;
  if (int e = prepare_create(r, &hid)) return e;
  if (::mkdirat(g.upper, r.c_str(), mode) < 0) return -errno;
  // Something of the lower layer was deleted here: the new directory must not show its entries.
  if (hid && ::lsetxattr((g.upper_proc + r).c_str(), kOpaque, "y", 1, 0) < 0) return -errno;
  return 0;
}

int op_mknod(const char* path, mode_t mode, dev_t dev) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  bool hid;
  if (int e = prepare_create(r, &hid)) return e;
  return ::mknodat(g.upper, r.c_str(), mode, dev) < 0 ? -errno : 0;
}

int op_symlink(const char* target, const char* path) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  bool hid;
  if (int e = prepare_create(r, &hid)) return e;
  return ::symlinkat(target, g.upper, r.c_str()) < 0 ? -errno : 0;
}

int remove_entry(const std::string& r, bool dir) {
  Node n;
  if (int e = resolve(r, &n)) return e;
  if (dir && !S_ISDIR(n.st.st_mode)) return -ENOTDIR;
  if (!dir && S_ISDIR(n.st.st_mode)) return -EISDIR;
  if (dir) {
    std::set<std::string> names;
    if (int e = list_dir(r, n, &names)) return e;
    if (!names.empty()) return -ENOTEMPTY;
  }
  if (n.layer == 1) {
    if (dir) {
      // Only whiteouts can be left in it.
      int fd = open_in(g.upper, r, O_RDONLY | O_DIRECTORY);
      if (fd >= 0) {
        DIR* d = ::fdopendir(fd);
        while (struct dirent* e = d ? ::readdir(d) : nullptr)
          if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) ::unlinkat(fd, e->d_name, 0);
        if (d) ::closedir(d);
      }
    }
    if (::unlinkat(g.upper, r.c_str(), dir ? AT_REMOVEDIR : 0) < 0) return -errno;
  } else if (int e = ensure_upper_dir(parent_of(r))) {
    return e;
  }
  return n.in_lower ? make_whiteout(r) : 0;
}

int op_unlink(const char* path) {
  std::lock_guard<std::mutex> lock(g.tree);
  return remove_entry(rel(path), false);
}

int op_rmdir(const char* path) {
  std::lock_guard<std::mutex> lock(g.tree);
  return remove_entry(rel(path), true);
}

int op_rename(const char* from, const char* to, unsigned int flags) {
  if (flags & ~RENAME_NOREPLACE) return -EINVAL;  // RENAME_EXCHANGE, RENAME_WHITEOUT: as overlayfs without redirect_dir
  std::lock_guard<std::mutex> lock(g.tree);
  std::string rf = rel(from), rt = rel(to);
  Node nf, nt;
  if (int e = resolve(rf, &nf)) return e;
  int et = resolve(rt, &nt);
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
      std::set<std::string> names;
      if (int e = list_dir(rt, nt, &names)) return e;
      if (!names.empty()) return -ENOTEMPTY;
      if (nt.in_lower || nt.layer == 2) {
        // Replacing a lower directory: remove it from the view first, then the new one is opaque.
        if (int e = remove_entry(rt, true)) return e;
      }
    }
  }
  if (int e = copy_up(rf)) return e;
  if (int e = ensure_upper_dir(parent_of(rt))) return e;
  const bool hid = clear_whiteout(rt) || (to_exists && nt.in_lower);
  if (::renameat(g.upper, rf.c_str(), g.upper, rt.c_str()) < 0) return -errno;
  if (S_ISDIR(nf.st.st_mode) && hid) ::lsetxattr((g.upper_proc + rt).c_str(), kOpaque, "y", 1, 0);
  if (nf.in_lower) return make_whiteout(rf);
  return 0;
}

int op_link(const char* from, const char* to) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string rf = rel(from), rt = rel(to);
  bool hid;
  if (int e = prepare_create(rt, &hid)) return e;
  if (int e = copy_up(rf)) return e;
  return ::linkat(g.upper, rf.c_str(), g.upper, rt.c_str(), 0) < 0 ? -errno : 0;
}

int op_chmod(const char* path, mode_t mode, struct fuse_file_info* fi) {
  if (fi) return ::fchmod(static_cast<int>(fi->fh), mode) < 0 ? -errno : 0;
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  if (int e = copy_up(r)) return e;
  return ::fchmodat(g.upper, r.c_str(), mode, 0) < 0 ? -errno : 0;
}

int op_chown(const char* path, uid_t uid, gid_t gid, struct fuse_file_info* fi) {
  // Every file is the view's: only "to yourself" is meaningful (others are not mapped: EINVAL,
  // as in the user namespace).
  if ((uid != static_cast<uid_t>(-1) && uid != g.uid) || (gid != static_cast<gid_t>(-1) && gid != g.gid))
    return -EINVAL;
  if (fi) return 0;
  Node n;
  return resolve(rel(path), &n);
}

int op_truncate(const char* path, off_t size, struct fuse_file_info* fi) {
  if (fi) return ::ftruncate(static_cast<int>(fi->fh), size) < 0 ? -errno : 0;
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  if (int e = copy_up(r)) return e;
  int fd = open_in(g.upper, r, O_WRONLY);
  if (fd < 0) return -errno;
  int e = ::ftruncate(fd, size) < 0 ? -errno : 0;
  ::close(fd);
  return e;
}

int op_utimens(const char* path, const struct timespec tv[2], struct fuse_file_info* fi) {
  if (fi) return ::futimens(static_cast<int>(fi->fh), tv) < 0 ? -errno : 0;
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  if (int e = copy_up(r)) return e;
  return ::utimensat(g.upper, r.c_str(), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int open_flags(int flags) {
  flags &= ~O_NOFOLLOW;
  if (g.writeback) {
    // The kernel's writeback cache may read to fill partial pages, and handles O_APPEND itself.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags | O_CLOEXEC;
}

int op_open(const char* path, struct fuse_file_info* fi) {
  std::string r = rel(path);
  const bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
  Node n;
  if (writes) {
    std::lock_guard<std::mutex> lock(g.tree);
    if (int e = copy_up(r)) return e;
    n.layer = 1;
  } else if (int e = resolve(r, &n)) {
    return e;
  }
  int fd = open_in(layer_fd(n), r, open_flags(fi->flags));
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  fi->keep_cache = 1;
  return 0;
}

int op_create(const char* path, mode_t mode, struct fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  bool hid;
  if (int e = prepare_create(r, &hid)) return e;
  int fd = open_in(g.upper, r, open_flags(fi->flags) | O_CREAT | O_EXCL, mode);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int op_read_buf(const char*, struct fuse_bufvec** bufp, size_t size, off_t off, struct fuse_file_info* fi) {
  auto* v = static_cast<struct fuse_bufvec*>(std::malloc(sizeof(struct fuse_bufvec)));
  if (!v) return -ENOMEM;
  *v = FUSE_BUFVEC_INIT(size);
  v->buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  v->buf[0].fd = static_cast<int>(fi->fh);
  v->buf[0].pos = off;
  *bufp = v;
  return 0;
}

// All of it or an error. A short count is not an answer the kernel can use: the writeback
// cache takes any reply without an error as "written" (the rest of the page is lost, and the
// writer's close() says nothing), and a writer without the cache would retry blindly. So a
// short write is continued until the layer's filesystem says why it stopped (ENOSPC, EDQUOT,
// EFBIG), and that error is the reply: the writer's write() or close() gets it.
int op_write_buf(const char*, struct fuse_bufvec* buf, off_t off, struct fuse_file_info* fi) {
  const size_t total = fuse_buf_size(buf);
  size_t done = 0;
  while (done < total) {
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(total - done);
    dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    dst.buf[0].fd = static_cast<int>(fi->fh);
    dst.buf[0].pos = off + static_cast<off_t>(done);
    ssize_t k = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);  // advances buf past what it copied
    if (k < 0) return static_cast<int>(k);
    if (k == 0) return -EIO;  // no progress and no reason: never report it as written
    done += static_cast<size_t>(k);
  }
  return static_cast<int>(done);
}

int op_statfs(const char*, struct statvfs* st) { return ::fstatvfs(g.upper, st) < 0 ? -errno : 0; }

int op_flush(const char*, struct fuse_file_info* fi) {
  // close(dup()) reports delayed write errors (NFS and friends) to the closing process.
  int fd = ::dup(static_cast<int>(fi->fh));
  return fd < 0 ? -errno : ::close(fd) < 0 ? -errno : 0;
}

int op_release(const char*, struct fuse_file_info* fi) {
  ::close(static_cast<int>(fi->fh));
  return 0;
}

int op_fsync(const char*, int datasync, struct fuse_file_info* fi) {
  int fd = static_cast<int>(fi->fh);
  return (datasync ? ::fdatasync(fd) : ::fsync(fd)) < 0 ? -errno : 0;
}

// The view's own user.overlay.* attributes are stored escaped as user.overlay.overlay.*, the
// way overlayfs (Linux >= 6.7) keeps them apart from the layer's own (opaque, whiteouts…).
constexpr const char kEscaped[] = "user.overlay.overlay.";
bool private_xattr(const char* name) { return std::strncmp(name, kPrivatePrefix, sizeof kPrivatePrefix - 1) == 0; }
std::string stored_name(const char* name) {
  return private_xattr(name) ? std::string(kEscaped) + (name + sizeof kPrivatePrefix - 1) : std::string(name);
}

int op_setxattr(const char* path, const char* name, const char* value, size_t size, int flags) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  if (int e = copy_up(r)) return e;
  return ::lsetxattr((g.upper_proc + r).c_str(), stored_name(name).c_str(), value, size, flags) < 0 ? -errno : 0;
}

int op_getxattr(const char* path, const char* name, char* value, size_t size) {
  Node n;
  std::string r = rel(path);
  if (int e = resolve(r, &n)) return e;
  ssize_t k = ::lgetxattr((layer_proc(n) + r).c_str(), stored_name(name).c_str(), value, size);
  return k < 0 ? -errno : static_cast<int>(k);
}

int op_listxattr(const char* path, char* list, size_t size) {
  Node n;
  std::string r = rel(path);
  if (int e = resolve(r, &n)) return e;
  char names[65536];
  ssize_t k = ::llistxattr((layer_proc(n) + r).c_str(), names, sizeof names);
  if (k < 0) return -errno;
  std::string out;
  for (char* p = names; p < names + k; p += std::strlen(p) + 1) {
    if (std::strncmp(p, kEscaped, sizeof kEscaped - 1) == 0)
      out += std::string(kPrivatePrefix) + (p + sizeof kEscaped - 1) + '\0';
    else if (!private_xattr(p))
      out.append(p, std::strlen(p) + 1);
  }
  if (size == 0) return static_cast<int>(out.size());
  if (out.size() > size) return -ERANGE;
  std::memcpy(list, out.data(), out.size());
  return static_cast<int>(out.size());
}

int op_removexattr(const char* path, const char* name) {
  std::lock_guard<std::mutex> lock(g.tree);
  std::string r = rel(path);
  if (int e = copy_up(r)) return e;
  return ::lremovexattr((g.upper_proc + r).c_str(), stored_name(name).c_str()) < 0 ? -errno : 0;
}

void* op_init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
  cfg->use_ino = 1;  // the layers' inode numbers: hard links compare equal (test -ef), as on overlayfs
  cfg->nullpath_ok = 1;  // reads and writes on a handle skip building its path
  cfg->entry_timeout = 1.0;
  cfg->attr_timeout = 1.0;
  cfg->negative_timeout = 1.0;
  cfg->kernel_cache = 1;
  const char* env = std::getenv("VU_COWFS_NO_WRITEBACK");
  g.writeback = !(env && *env) && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
  if (g.writeback) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  // Replies carrying file data go by splice (no copy through our memory: reads ~9x faster
  // here, bench/fs.sh); requests are read with splice only when asked (it did not help writes).
  const char* sp = std::getenv("VU_COWFS_SPLICE");
  const std::string splice = sp ? sp : "reply";
  conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ);
  if (splice == "reply" || splice == "all") conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (splice == "all") conn->want |= conn->capable & FUSE_CAP_SPLICE_READ;
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  return nullptr;
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
  g.upper_proc = "/proc/self/fd/" + std::to_string(g.upper) + "/";
  g.lower_proc = "/proc/self/fd/" + std::to_string(g.lower) + "/";
  g.uid = ::getuid();
  g.gid = ::getgid();
  ::umask(0);  // modes come from the callers, already masked by the kernel

  static struct fuse_operations ops {};
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.chmod = op_chmod;
  ops.chown = op_chown;
  ops.truncate = op_truncate;
  ops.open = op_open;
  ops.statfs = op_statfs;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  ops.init = op_init;
  ops.create = op_create;
  ops.utimens = op_utimens;
  ops.write_buf = op_write_buf;
  ops.read_buf = op_read_buf;

  std::string opts = "default_permissions,fsname=vu-cowfs,subtype=cowfs";
  std::vector<char*> args = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-o"), opts.data()};
  for (int i = root_fs ? 4 : 3; i < argc; ++i) args.push_back(argv[i]);
  // One thread: on the 2-core reference VM, handing requests between libfuse's worker threads
  // cost more than it gave (bench/fs.sh: reads 2.1 -> 3.5 GB/s, writes equal). VU_COWFS_THREADS=1
  // gives the multithreaded loop back (a large copy-up then does not hold up other requests).
  if (const char* mt = std::getenv("VU_COWFS_THREADS"); !(mt && *mt == '1')) args.push_back(const_cast<char*>("-s"));
  args.push_back(const_cast<char*>(target));
  return fuse_main(static_cast<int>(args.size()), args.data(), &ops, nullptr);
}
