#include "pvm/cow.h"

#include "fusefs/layer_format.h"
#include "pvm/host_at.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

namespace vu::pvm {

namespace {
using layer_format::make_whiteout;
using layer_format::openat2_retry;
using layer_format::stored_xattr_name;
// The lower (st_dev, st_ino) of a copied-up file: what stat shows for it (overlayfs keeps it
// in user.overlay.origin, as a file handle only the kernel can make; this name is ours, and
// hidden from the view like every user.overlay.* of the layer).
constexpr const char kOrigin[] = "user.overlay.vu.origin";
// A copy larger than this hands the monitor's receiving over first (never-block rule).
constexpr off_t kLongCopy = 1 << 20;

std::string parent_of(const std::string& rel) {
  size_t s = rel.rfind('/');
  return s == std::string::npos ? "." : rel.substr(0, s);
}
std::string base_of(const std::string& rel) {
  size_t s = rel.rfind('/');
  return s == std::string::npos ? rel : rel.substr(s + 1);
}
std::string join(const std::string& dir, std::string_view name) {
  return dir == "." ? std::string(name) : dir + "/" + std::string(name);
}
std::string proc_fd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string stored_name(const std::string& name) { return stored_xattr_name(name.c_str()); }

// rel below root as a (descriptor, rest) pair when rel is too long for one call (a path of
// nearly PATH_MAX bytes from the caller's cwd is longer from the cow's root: pvm/host_at.h). The
// chunks are opened as open_beneath opens (beneath root, no symlink followed), so a lookup of
// the rest below the last one is still beneath root.
struct Under {
  UniqueFd hold;
  int fd = -1;
  std::string rest;
  int err = 0;
};
Under under(int root, const std::string& rel) {
  Under u;
  u.fd = root;
  size_t start = 0;
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  while (rel.size() - start >= kShortPath) {
    const size_t k = rel.rfind('/', std::min(start + kShortPath - 1, rel.size() - 2));
    if (k == std::string::npos || k <= start) {
      u.err = ENAMETOOLONG;
      return u;
    }
    long fd = openat2_retry(u.fd, rel.substr(start, k - start).c_str(), how);
    if (fd < 0) {
      u.err = errno;
      return u;
    }
    u.hold.reset(static_cast<int>(fd));
    u.fd = u.hold.get();
    start = k + 1;
  }
  u.rest = rel.substr(start);
  return u;
}

// Opens rel below the directory `root` without following any symlink or leaving it
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): the lower tree may hold symlinks anyone planted,
// and a walk of ours already expanded the view's own. -1 with errno.
int open_beneath(int root, const std::string& rel, int flags, mode_t mode = 0) {
  if (rel.size() >= kShortPath) {
    Under u = under(root, rel);
    if (u.err) return errno = u.err, -1;
    return open_beneath(u.fd, u.rest, flags, mode);
  }
  struct open_how how {};
  constexpr int kValid = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT |
                         O_LARGEFILE | O_DIRECTORY | O_NOATIME | O_TMPFILE | O_PATH | O_NOCTTY;
  how.flags = static_cast<uint64_t>((flags & kValid) | O_NOFOLLOW | O_CLOEXEC);
  if ((flags & O_PATH)) how.flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode & 07777 : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(openat2_retry(root, rel.c_str(), how));
}

// The layer directory holding rel (O_PATH), for the *at calls on its base name.
UniqueFd parent_fd(int root, const std::string& rel) {
  return UniqueFd(open_beneath(root, parent_of(rel), O_PATH | O_DIRECTORY));
}

// lstat of rel below root, no symlink followed on the way either: someone who can write the
// lower tree may swap a directory the view's walk went through for a symlink to anywhere.
// A name with no directory on the way is one fstatat; deeper ones an O_PATH descriptor (a
// symlink's own when rel is one). 0 or an errno (ELOOP: a symlink on the way).
int stat_beneath(int root, const std::string& rel, struct stat* st) {
  if (rel.find('/') == std::string::npos && rel != "..")
    return ::fstatat(root, rel.c_str(), st, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
  UniqueFd o(open_beneath(root, rel, O_PATH));
  if (!o) return errno;
  return ::fstat(o.get(), st) < 0 ? errno : 0;
}

void copy_xattrs(int from, int to) {
  // from/to: descriptors (O_PATH ones through /proc/self/fd: symlinks carry no user xattrs).
  char names[8192];
  const std::string f = proc_fd(from), t = proc_fd(to);
  ssize_t len = ::listxattr(f.c_str(), names, sizeof names);
  if (len <= 0) return;
  std::vector<char> value(65536);
  for (char* p = names; p < names + len; p += std::strlen(p) + 1) {
    if (layer_format::is_layer_xattr(p)) continue;  // the layer's own
    ssize_t v = ::getxattr(f.c_str(), p, value.data(), value.size());
    if (v < 0) continue;  // security.* we may not read
    (void)::setxattr(t.c_str(), p, value.data(), static_cast<size_t>(v), 0);  // best effort, as overlayfs
  }
}

bool origin_of(const std::string& path, dev_t* dev, ino_t* ino) {
  char v[64];
  ssize_t n = ::getxattr(HostAt(path).path().c_str(), kOrigin, v, sizeof v - 1);
  if (n <= 0) return false;
  v[n] = 0;
  unsigned long long d, i;
  if (std::sscanf(v, "%llu:%llu", &d, &i) != 2) return false;
  *dev = static_cast<dev_t>(d);
  *ino = static_cast<ino_t>(i);
  return true;
}

}  // namespace


Result<void> Cow::prepare_layer(const std::string& upper, const std::string& lower) {
  std::string lower_real = lower;
  if (char* r = ::realpath(lower.c_str(), nullptr)) lower_real = r, std::free(r);
  std::string upper_real = upper;
  if (char* r = ::realpath(upper.c_str(), nullptr)) upper_real = r, std::free(r);
  if (is_within(upper_real, lower_real) || is_within(lower_real, upper_real))
    return Error::usage("--cow: the layer " + upper + " and the target's directory " + lower + " overlap")
        .hint("put the layer outside the directory it receives the changes of");
  const bool made = ::mkdir(upper.c_str(), 0700) == 0;
  if (!made && errno != EEXIST) return Error::sys("--cow: create layer", errno, upper);
  // From here on the directory itself, by its descriptor: checked, then used.
  UniqueFd fd(::open(upper.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::sys("--cow: layer", errno, upper, ErrorKind::kUsage).hint("give a directory (not a symlink)");
  VU_TRY_VOID(check_layer(fd.get(), upper));
  if (made) (void)::chmod(proc_fd(fd.get()).c_str(), 0700);  // past the umask
  // A whiteout is a 0/0 character device: some filesystems cannot make one; find out now.
  const char probe[] = ".vu-whiteout-probe";
  struct stat st;
  if (::mknodat(fd.get(), probe, S_IFCHR | 0600, makedev(0, 0)) < 0 &&
      !(errno == EEXIST && ::fstatat(fd.get(), probe, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)))
    return Error::sys("--cow: cannot make a whiteout (0/0 character device) in", errno, upper, ErrorKind::kUsage)
        .hint("put the layer on a filesystem such as ext4, xfs, btrfs or tmpfs (/tmp)");
  ::unlinkat(fd.get(), probe, 0);
  return Ok{};
}

// What is in the layer appears in the view and runs as the view's user: the directory opened
// (fd) must be the caller's and writable by no one else (sticky excepted, as fusefs::choose_cow,
// which checked the path before: this checks what is actually used, a swap meanwhile included).
Result<void> Cow::check_layer(int fd, const std::string& upper) {
  struct stat st;
  if (::fstat(fd, &st) < 0) return Error::sys("--cow: layer", errno, upper);
  if (!S_ISDIR(st.st_mode)) return Error::make(ErrorKind::kSetup, "--cow: layer " + upper + " is not a directory");
  if (st.st_uid != ::geteuid())
    return Error::make(ErrorKind::kSetup,
                       "--cow: layer " + upper + " is not yours (owner uid " + std::to_string(st.st_uid) + ")")
        .hint("another user could put files in your view through it; use a directory you made (or let vu make it)");
  if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX))
    return Error::make(ErrorKind::kSetup, "--cow: layer " + upper + " can be written by group or others")
        .hint("they could put files in your view through it: chmod go-w " + upper);
  return Ok{};
}

Result<std::shared_ptr<Cow>> Cow::open(const std::string& upper, const std::string& lower, uid_t uid, gid_t gid) {
  std::shared_ptr<Cow> c(new Cow);
  c->upper_path_ = upper;
  c->lower_path_ = lower;
  c->uid_ = uid;
  c->gid_ = gid;
  c->upper_.reset(::open(upper.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!c->upper_) return Error::sys("--cow: layer", errno, upper, ErrorKind::kUsage);
  VU_TRY_VOID(check_layer(c->upper_.get(), upper));  // the descriptor every change goes through
  c->lower_.reset(::open(lower.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!c->lower_) return Error::sys("--cow: target", errno, lower, ErrorKind::kUsage);
  struct stat st;
  if (::fstat(c->lower_.get(), &st) < 0) return Error::sys("fstat", errno, lower);
  c->lower_dev_ = st.st_dev;
  c->lower_mode_ = st.st_mode & 07777;
  return c;
}

std::string Cow::host_of(const std::string& rel, int layer) const {
  const std::string& root = layer == 2 ? lower_path_ : upper_path_;
  if (rel == ".") return root;
  return root == "/" ? "/" + rel : root + "/" + rel;
}

int Cow::layer_of(const std::string& host, std::string* rel) const {
  for (int layer : {1, 2}) {
    const std::string& root = layer == 1 ? upper_path_ : lower_path_;
    if (!is_within(host, root)) continue;
    *rel = host.size() == root.size() ? "." : host.substr(root == "/" ? 1 : root.size() + 1);
    return layer;
  }
  return 0;
}

ssize_t Cow::read_link(const std::string& rel, int layer, char* buf, size_t size) const {
  UniqueFd o(open_beneath(layer == 2 ? lower_.get() : upper_.get(), rel, O_PATH));
  if (!o) return -1;
  return ::readlinkat(o.get(), "", buf, size);
}

namespace {
// A name one step below a directory: no '/', not "." or "..".
bool plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}
}  // namespace

int Cow::child(const std::string& rel, const Dir& d, std::string_view name, CowNode* n, struct stat* st,
               Dir* next) const {
  *n = CowNode{};
  const std::string r = join(rel, name);
  bool opaque = false;
  // The lower layer's lookup stays below its root and follows no symlink on the way (the
  // caller's walk already expanded the view's own symlinks: one met here was put in meanwhile by
  // someone who can write the lower tree). The layer is the caller's own, 0700: a symlink there
  // was planted by the view itself, whose code pvm does not confine (README "pvm: the same view,
  // not the same isolation"); every change in it is RESOLVE_BENEATH anyway. One fstatat there
  // keeps the lookups of merged trees cheaper (stat_beneath costs three calls).
  if (d.upper) {
    Under u;  // a long rel: in chunks (a missing chunk is the name's ENOENT)
    if (r.size() >= kShortPath && (u = under(upper_.get(), r)).err && u.err != ENOENT) return u.err;
    const int ufd = u.hold ? u.fd : upper_.get();
    const char* urel = u.hold ? u.rest.c_str() : r.c_str();
    if (u.err) {
      errno = ENOENT;
    } else if (::fstatat(ufd, urel, st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (is_whiteout(*st)) {
        n->whiteout = true;
        return ENOENT;
      }
      n->layer = 1;
      if (S_ISDIR(st->st_mode) && d.lower) opaque = layer_format::is_opaque_at(ufd, urel);
    } else if (errno != ENOENT) {
      return errno;
    }
  }
  std::shared_ptr<UniqueFd> lower_fd;
  if (d.lower) {
    // In the lower layer, one name below the directory's descriptor when the walk holds one:
    // that descriptor was opened the same way from the lower root (one name at a time,
    // O_NOFOLLOW, never "." or ".."), so this lookup is still beneath the root and follows no
    // symlink, as stat_beneath's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS walk from the root.
    const int base = !plain_name(name) ? -1 : d.lower_fd ? d.lower_fd->get() : rel == "." ? lower_.get() : -1;
    const std::string nm(name);
    struct stat lst;
    int e = 0;
    if (base < 0) {
      e = stat_beneath(lower_.get(), r, &lst);
    } else if (next) {
      // Going through it: opening it as a directory says it is one (its stat is not needed on
      // the way) and gives the next step its base.
      int fd = ::openat(base, nm.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        lower_fd = std::make_shared<UniqueFd>(fd);
        lst = {};
        lst.st_mode = S_IFDIR;
      } else if (errno == ENOTDIR || errno == ELOOP) {  // not a directory: what it is
        e = ::fstatat(base, nm.c_str(), &lst, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
      } else {
        e = errno;
      }
    } else {
      e = ::fstatat(base, nm.c_str(), &lst, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
    }
    if (e == 0) {
      n->in_lower = true;
      n->lower_dev = lst.st_dev;
      n->lower_ino = lst.st_ino;
      n->lower_type = lst.st_mode & S_IFMT;
      if (n->layer == 0) {
        n->layer = 2;
        *st = lst;
      }
      n->lower_below = S_ISDIR(lst.st_mode) && S_ISDIR(st->st_mode) && !opaque;
    } else if (e != ENOENT) {
      return e;
    }
  }
  if (!n->layer) return ENOENT;
  if (next && S_ISDIR(st->st_mode)) {
    *next = dir_of(*n, *st);
    if (next->lower) next->lower_fd = std::move(lower_fd);
  }
  return 0;
}

Cow::Dir Cow::dir_of(const CowNode& n, const struct stat& st) {
  Dir d;
  d.upper = n.layer == 1 && S_ISDIR(st.st_mode);
  d.lower = n.layer == 2 ? S_ISDIR(st.st_mode) : n.lower_below;
  return d;
}

int Cow::lookup(const std::string& rel, CowNode* n, struct stat* st, Dir* dir) const {
  Dir d;
  if (rel == ".") {
    *n = CowNode{};
    n->layer = 1;
    n->in_lower = n->lower_below = true;
    struct stat lst;
    if (::fstat(lower_.get(), &lst) == 0) n->lower_dev = lst.st_dev, n->lower_ino = lst.st_ino, n->lower_type = S_IFDIR;
    if (::fstat(upper_.get(), st) < 0) return errno;
    if (dir) *dir = d;
    return 0;
  }
  std::string cur = ".";
  size_t pos = 0;
  for (;;) {
    size_t next = rel.find('/', pos);
    std::string_view name = std::string_view(rel).substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    const bool last = next == std::string::npos;
    Dir nd;  // the walk holds the lower directory's descriptor from one step to the next
    if (int e = child(cur, d, name, n, st, last ? nullptr : &nd)) return e;
    if (last) {
      if (dir) {
        *dir = dir_of(*n, *st);
        const int base = d.lower_fd ? d.lower_fd->get() : cur == "." ? lower_.get() : -1;
        if (dir->lower && base >= 0 && plain_name(name)) {  // for the caller's next steps
          int fd = ::openat(base, std::string(name).c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd >= 0) dir->lower_fd = std::make_shared<UniqueFd>(fd);
        }
      }
      return 0;
    }
    cur = join(cur, name);
    if (!S_ISDIR(st->st_mode)) return ENOTDIR;
    d = std::move(nd);
    pos = next + 1;
  }
}

void Cow::present(const std::string& rel, const CowNode& n, struct stat* st) const {
  if (n.layer == 2) {
    st->st_uid = uid_;  // a file of the lower layer is the view's
    st->st_gid = gid_;
    return;
  }
  if (rel == "." && (st->st_mode & 07777) == 0700) st->st_mode = (st->st_mode & S_IFMT) | lower_mode_;
  dev_t d;
  ino_t i;
  if (S_ISDIR(st->st_mode) && n.in_lower && n.lower_type == S_IFDIR) {
    st->st_dev = n.lower_dev;  // a directory of both layers: the lower one's identity
    st->st_ino = n.lower_ino;
  } else if (!S_ISDIR(st->st_mode) && st->st_nlink && S_ISREG(st->st_mode) && origin_of(host_of(rel, 1), &d, &i)) {
    st->st_dev = d;  // copied up: the lower file's identity
    st->st_ino = i;
  } else {
    st->st_dev = lower_dev_;
  }
}

void Cow::present_fd(const std::string& host, struct stat* st) const {
  std::string rel;
  int layer = layer_of(host, &rel);
  if (!layer) return;
  CowNode n;
  struct stat now;
  // The object the path names now, if it is the descriptor's: stat's answer for it.
  if (lookup(rel, &n, &now) == 0 && host_of(rel, n.layer) == host && now.st_ino == st->st_ino && now.st_dev == st->st_dev) {
    present(rel, n, st);
    return;
  }
  n = CowNode{};
  n.layer = layer;
  present(rel, n, st);
}

// ---- changes ---------------------------------------------------------------------------------

int Cow::copy_up(const std::string& rel, const std::function<void()>& before_long) {
  CowNode n;
  struct stat st;
  // What the layer has under a name is what the view sees there (it comes first): nothing to
  // copy, and one fstatat instead of a walk (chmod, utimes… of the layer's own files). A
  // symlink planted on the way only makes the call that follows fail (RESOLVE_NO_SYMLINKS).
  if (rel == "." || (stat_beneath(upper_.get(), rel, &st) == 0 && !is_whiteout(st))) return 0;
  if (int e = lookup(rel, &n, &st)) return e;
  if (n.layer == 1) return 0;
  if (S_ISREG(st.st_mode)) {
    // Parents under the lock; the data outside it.
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (int e = copy_up_locked(parent_of(rel), before_long)) return e;
    }
    return copy_up_locked(rel, before_long);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return copy_up_locked(rel, before_long);
}

// Also called without the lock for a regular file's data (its parents are done): everything it
// makes appears under its name in one step (mkdirat, symlinkat, mknodat, linkat), and a name
// someone else made meanwhile is theirs to keep.
int Cow::copy_up_locked(const std::string& rel, const std::function<void()>& before_long) {
  // The missing ancestors first, top down: a loop, not a recursion (a deep tree must not run a
  // worker out of stack).
  std::vector<std::string> chain;
  for (std::string r = rel; r != "."; r = parent_of(r)) chain.push_back(r);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    if (int e = copy_one_locked(*it, before_long)) return e;
  return 0;
}

// One name whose parent the layer has.
int Cow::copy_one_locked(const std::string& rel, const std::function<void()>& before_long) {
  CowNode n;
  struct stat st;
  if (stat_beneath(upper_.get(), rel, &st) == 0 && !is_whiteout(st)) return 0;
  if (int e = lookup(rel, &n, &st)) return e;
  if (n.layer == 1) return 0;
  UniqueFd parent = parent_fd(upper_.get(), rel);
  if (!parent) return errno;
  const std::string name = base_of(rel);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(parent.get(), name.c_str(), (st.st_mode & 07777) | S_IRWXU) < 0 && errno != EEXIST) return errno;
    UniqueFd in(open_beneath(lower_.get(), rel, O_PATH | O_DIRECTORY));
    UniqueFd out(open_beneath(upper_.get(), rel, O_PATH | O_DIRECTORY));
    if (!out) return errno;
    if (in) copy_xattrs(in.get(), out.get());
    ::chmod(proc_fd(out.get()).c_str(), st.st_mode & 07777);
    ::utimensat(AT_FDCWD, proc_fd(out.get()).c_str(), times, 0);
    return 0;
  }
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t k = read_link(rel, 2, target, sizeof target - 1);
    if (k < 0) return errno;
    target[k] = 0;
    if (::symlinkat(target, parent.get(), name.c_str()) < 0) return errno == EEXIST ? 0 : errno;
    ::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return 0;
  }
  if (!S_ISREG(st.st_mode)) {
    if (::mknodat(parent.get(), name.c_str(), st.st_mode, st.st_rdev) < 0) return errno == EEXIST ? 0 : errno;
    ::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return 0;
  }
  // O_NONBLOCK and the check: a FIFO put in its place meanwhile must not hold this worker.
  UniqueFd in(open_beneath(lower_.get(), rel, O_RDONLY | O_NONBLOCK));
  if (!in) return errno;
  struct stat now;
  if (::fstat(in.get(), &now) < 0) return errno;
  if (!S_ISREG(now.st_mode) || now.st_dev != st.st_dev || now.st_ino != st.st_ino) return EAGAIN;
  // A file with no name, linked once complete; where the layer's filesystem lacks O_TMPFILE, a
  // fresh random name (O_EXCL: never an existing file, never through a symlink), linked too.
  std::string tmp;
  UniqueFd out(open_beneath(upper_.get(), parent_of(rel), O_TMPFILE | O_RDWR, 0600));
  if (!out && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    for (int tries = 0; !out && tries < 100; ++tries) {
      unsigned char rnd[8];
      if (::getrandom(rnd, sizeof rnd, 0) != sizeof rnd) break;
      char b[40];
      std::snprintf(b, sizeof b, ".vu-pvm-copy.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                    rnd[5], rnd[6], rnd[7]);
      tmp = b;
      out.reset(::openat(parent.get(), b, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!out && errno != EEXIST) break;
    }
  }
  if (!out) return errno;
  if (st.st_size > kLongCopy && before_long) before_long();
  int err = 0;
  for (off_t left = st.st_size; left > 0;) {
    ssize_t k = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
    if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
      char buf[1 << 16];
      k = ::read(in.get(), buf, sizeof buf);
      // A short write is how a full disk first shows (errno is still copy_file_range's EXDEV):
      // write the rest, whose failure says why (ENOSPC, EDQUOT).
      for (ssize_t done = 0; k > 0 && done < k;) {
        ssize_t w = ::write(out.get(), buf + done, static_cast<size_t>(k - done));
        if (w < 0) k = -1;
        else done += w;
      }
    }
    if (k < 0) {
      err = errno;
      break;
    }
    if (k == 0) break;
    left -= k;
  }
  if (!err) {
    copy_xattrs(in.get(), out.get());
    char origin[64];
    int len = std::snprintf(origin, sizeof origin, "%llu:%llu", static_cast<unsigned long long>(st.st_dev),
                            static_cast<unsigned long long>(st.st_ino));
    (void)::fsetxattr(out.get(), kOrigin, origin, static_cast<size_t>(len), 0);
    if (::fchmod(out.get(), st.st_mode & 07777) < 0) err = errno;
    ::futimens(out.get(), times);
  }
  if (!err) {
    int rc = tmp.empty() ? ::linkat(AT_FDCWD, proc_fd(out.get()).c_str(), parent.get(), name.c_str(), AT_SYMLINK_FOLLOW)
                         : ::linkat(parent.get(), tmp.c_str(), parent.get(), name.c_str(), 0);
    if (rc < 0 && errno != EEXIST) err = errno;  // EEXIST: another process's copy won, and is whole
  }
  if (!tmp.empty()) ::unlinkat(parent.get(), tmp.c_str(), 0);
  return err;
}

// Makes ready to create rel in the layer: its parents copied up, a whiteout under its name
// dropped (*hid_lower: something of the lower layer was deleted there). Under the lock.
int Cow::prepare_create(const std::string& rel, bool* hid_lower) {
  CowNode n;
  struct stat st;
  int e = lookup(rel, &n, &st);
  if (e == 0) return EEXIST;
  if (e != ENOENT) return e;
  if ((e = copy_up_locked(parent_of(rel), {}))) return e;
  *hid_lower = n.whiteout;
  if (n.whiteout) {
    UniqueFd parent = parent_fd(upper_.get(), rel);
    if (!parent) return errno;
    // Only the whiteout: a file the view made there meanwhile (a call the kernel ran) stays.
    struct stat w;
    const std::string name = base_of(rel);
    if (::fstatat(parent.get(), name.c_str(), &w, AT_SYMLINK_NOFOLLOW) == 0 && !is_whiteout(w)) return EEXIST;
    if (::unlinkat(parent.get(), name.c_str(), 0) < 0 && errno != ENOENT) return errno;
  }
  return 0;
}

int Cow::prepare_name(const std::string& rel) {
  std::lock_guard<std::mutex> lock(mu_);
  bool hid = false;
  return prepare_create(rel, &hid);
}

int Cow::mkdir(const std::string& rel, mode_t mode) {
  std::lock_guard<std::mutex> lock(mu_);
  bool hid = false;
  if (int e = prepare_create(rel, &hid)) return e;
  UniqueFd parent = parent_fd(upper_.get(), rel);
  if (!parent) return errno;
  const std::string name = base_of(rel);
  if (::mkdirat(parent.get(), name.c_str(), mode) < 0) return errno;
  if (hid) {
    // Something of the lower layer was deleted here: the new directory must not show it.
    UniqueFd d(open_beneath(upper_.get(), rel, O_PATH | O_DIRECTORY));
    if (!d || !layer_format::set_opaque_at(d.get(), "")) {
      int e = errno;
      ::unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR);
      make_whiteout(parent.get(), name.c_str());
      return e;
    }
  }
  return 0;
}

int Cow::mknod(const std::string& rel, mode_t mode, dev_t dev) {
  if (S_ISCHR(mode) && dev == makedev(0, 0)) return EPERM;  // how the layer says "deleted" (as overlayfs)
  std::lock_guard<std::mutex> lock(mu_);
  bool hid = false;
  if (int e = prepare_create(rel, &hid)) return e;
  UniqueFd parent = parent_fd(upper_.get(), rel);
  if (!parent) return errno;
  return ::mknodat(parent.get(), base_of(rel).c_str(), mode, dev) < 0 ? errno : 0;
}

int Cow::symlink(const std::string& target, const std::string& rel) {
  std::lock_guard<std::mutex> lock(mu_);
  bool hid = false;
  if (int e = prepare_create(rel, &hid)) return e;
  UniqueFd parent = parent_fd(upper_.get(), rel);
  if (!parent) return errno;
  return ::symlinkat(target.c_str(), parent.get(), base_of(rel).c_str()) < 0 ? errno : 0;
}

int Cow::list(const std::string& rel, const CowNode& n, std::vector<Entry>* out, bool* whiteouts) const {
  std::map<std::string, std::pair<uint64_t, unsigned char>> names;
  std::set<std::string> hidden;
  *whiteouts = false;
  auto scan = [&](int root, bool upper) -> int {
    int fd = open_beneath(root, rel, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return errno;
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (upper) {
        struct stat st;
        if ((e->d_type == DT_CHR || e->d_type == DT_UNKNOWN) &&
            ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
          hidden.insert(name);
          *whiteouts = true;
          continue;
        }
        names.emplace(name, std::make_pair(e->d_ino, e->d_type));
      } else if (!hidden.count(name)) {
        auto [it, fresh] = names.emplace(name, std::make_pair(e->d_ino, e->d_type));
        // A name of both layers of one type: the lower's number, as stat shows it (a directory
        // of both layers, a copied-up file's origin).
        if (!fresh && it->second.second == e->d_type) it->second.first = e->d_ino;
      }
    }
    ::closedir(d);
    return 0;
  };
  if (n.layer == 1)
    if (int e = scan(upper_.get(), true)) return e;
  if (n.layer == 2 || n.lower_below)
    if (int e = scan(lower_.get(), false)) return e;
  for (auto& [name, v] : names) out->push_back({name, v.second, v.first});
  return 0;
}

std::optional<std::vector<Cow::Entry>> Cow::listing(const std::string& host) const {
  std::string rel;
  if (layer_of(host, &rel) != 1) return std::nullopt;  // only the lower layer's: the host's listing
  CowNode n;
  struct stat st;
  if (lookup(rel, &n, &st) || n.layer != 1 || !S_ISDIR(st.st_mode)) return std::nullopt;
  std::vector<Entry> entries;
  bool whiteouts = false;
  if (list(rel, n, &entries, &whiteouts)) return std::nullopt;
  if (!n.lower_below && !whiteouts) return std::nullopt;  // the layer's own directory, as it is
  present(rel, n, &st);
  std::vector<Entry> out;
  out.reserve(entries.size() + 2);
  out.push_back({".", DT_DIR, st.st_ino});
  out.push_back({"..", DT_DIR, 0});
  for (Entry& e : entries) out.push_back(std::move(e));
  return out;
}

int Cow::remove_locked(const std::string& rel, bool dir) {
  CowNode n;
  struct stat st;
  if (int e = lookup(rel, &n, &st)) return e;
  if (dir && !S_ISDIR(st.st_mode)) return ENOTDIR;
  if (!dir && S_ISDIR(st.st_mode)) return EISDIR;
  if (dir && n.layer == 1 && !n.lower_below) {
    // A directory only the layer shows: the kernel says whether it is empty (and needs no
    // right to read it: a 0222 directory goes too). One left with whiteouts only is emptied
    // below.
    UniqueFd parent = parent_fd(upper_.get(), rel);
    if (!parent) return errno;
    const std::string name = base_of(rel);
    if (::unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR) == 0)
      return n.in_lower && !make_whiteout(parent.get(), name.c_str()) ? errno : 0;
    if (errno != ENOTEMPTY && errno != EEXIST) return errno;
  }
  if (dir) {
    std::vector<Entry> names;
    bool whiteouts;
    if (int e = list(rel, n, &names, &whiteouts)) return e;
    if (!names.empty()) return ENOTEMPTY;
  }
  if (int e = copy_up_locked(parent_of(rel), {})) return e;
  UniqueFd parent = parent_fd(upper_.get(), rel);
  if (!parent) return errno;
  const std::string name = base_of(rel);
  if (n.layer == 1) {
    // What goes is what was looked up: a process of the view may have made something else of
    // the name meanwhile (a call the kernel ran in a directory only the layer has), and a name
    // made in the directory is theirs to keep: only whiteouts are dropped, the rmdir then says
    // ENOTEMPTY. (A change between this check and the unlinkat is the view's own race, as on
    // any filesystem: the name's object at that moment goes.)
    struct stat now;
    if (::fstatat(parent.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) < 0) return errno;
    if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) return EAGAIN;
    if (dir) {
      int fd = open_beneath(upper_.get(), rel, O_RDONLY | O_DIRECTORY);
      if (fd >= 0) {
        DIR* d = ::fdopendir(fd);
        struct stat w;
        while (struct dirent* e = d ? ::readdir(d) : nullptr)
          if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..") &&
              ::fstatat(fd, e->d_name, &w, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(w))
            ::unlinkat(fd, e->d_name, 0);
        if (d) ::closedir(d);
        else ::close(fd);
      }
    }
    if (::unlinkat(parent.get(), name.c_str(), dir ? AT_REMOVEDIR : 0) < 0) return errno == EEXIST ? ENOTEMPTY : errno;
  }
  if (n.in_lower && !make_whiteout(parent.get(), name.c_str())) return errno;
  return 0;
}

int Cow::remove(const std::string& rel, bool dir) {
  std::lock_guard<std::mutex> lock(mu_);
  int e = EAGAIN;
  for (int tries = 0; e == EAGAIN && tries < 4; ++tries) e = remove_locked(rel, dir);  // changed meanwhile
  return e;
}

int Cow::rename(const std::string& from, const std::string& to, unsigned flags) {
  if (flags & ~RENAME_NOREPLACE) return EINVAL;  // EXCHANGE, WHITEOUT: as overlayfs without redirect_dir
  if (from == to) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  CowNode nf, nt;
  struct stat sf, stt;
  if (int e = lookup(from, &nf, &sf)) return e;
  int et = lookup(to, &nt, &stt);
  if (et && et != ENOENT) return et;
  const bool to_exists = et == 0;
  if (to_exists && (flags & RENAME_NOREPLACE)) return EEXIST;
  const bool from_dir = S_ISDIR(sf.st_mode);
  if (to_exists) {
    if (S_ISDIR(stt.st_mode) && !from_dir) return EISDIR;
    if (!S_ISDIR(stt.st_mode) && from_dir) return ENOTDIR;
  }
  if (from_dir && (to == from || to.compare(0, from.size() + 1, from + "/") == 0)) return EINVAL;
  // A directory the lower layer has cannot move without redirects: EXDEV (mv then copies it).
  if (from_dir && nf.in_lower) return EXDEV;
  if (to_exists && S_ISDIR(stt.st_mode)) {
    std::vector<Entry> names;
    bool whiteouts;
    if (int e = list(to, nt, &names, &whiteouts)) return e;
    if (!names.empty()) return ENOTEMPTY;
    if (nt.in_lower)  // replacing a lower directory: out of the view first; the new one is opaque
      if (int e = remove_locked(to, true)) return e;
  }
  if (int e = copy_up_locked(from, {})) return e;
  if (int e = copy_up_locked(parent_of(to), {})) return e;
  UniqueFd pf = parent_fd(upper_.get(), from), pt = parent_fd(upper_.get(), to);
  if (!pf || !pt) return errno;
  const std::string bf = base_of(from), bt = base_of(to);
  struct stat w, f;
  // Two names of one file: rename does nothing (POSIX), and leaves no whiteout either.
  if (to_exists && ::fstatat(pf.get(), bf.c_str(), &f, AT_SYMLINK_NOFOLLOW) == 0 &&
      ::fstatat(pt.get(), bt.c_str(), &w, AT_SYMLINK_NOFOLLOW) == 0 && f.st_dev == w.st_dev && f.st_ino == w.st_ino)
    return 0;
  bool hid = to_exists && nt.in_lower;
  if (::fstatat(pt.get(), bt.c_str(), &w, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(w)) {
    if (::unlinkat(pt.get(), bt.c_str(), 0) < 0) return errno;
    hid = true;
  }
  if (::renameat(pf.get(), bf.c_str(), pt.get(), bt.c_str()) < 0) return errno;
  if (from_dir && hid) {
    UniqueFd d(open_beneath(upper_.get(), to, O_PATH | O_DIRECTORY));
    if (d) layer_format::set_opaque_at(d.get(), "");
  }
  if (nf.in_lower && !make_whiteout(pf.get(), bf.c_str())) return errno;
  return 0;
}

int Cow::link(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  bool hid = false;
  if (int e = prepare_create(to, &hid)) return e;
  if (int e = copy_up_locked(from, {})) return e;
  UniqueFd pf = parent_fd(upper_.get(), from), pt = parent_fd(upper_.get(), to);
  if (!pf || !pt) return errno;
  return ::linkat(pf.get(), base_of(from).c_str(), pt.get(), base_of(to).c_str(), 0) < 0 ? errno : 0;
}

int Cow::open(const std::string& rel, int flags, mode_t mode, const std::function<void()>& before_long, bool as_root) {
  int fd = -EAGAIN;
  // -EAGAIN: the lower object changed between the lookup and the open (open_lower): once more.
  for (int tries = 0; fd == -EAGAIN && tries < 4; ++tries) fd = open_once(rel, flags, mode, before_long, as_root);
  return fd;
}

int Cow::open_once(const std::string& rel, int flags, mode_t mode, const std::function<void()>& before_long,
                   bool as_root) {
  CowNode n;
  struct stat st;
  // A name to create is looked up once, under the lock (prepare_create).
  int e = (flags & O_CREAT) ? ENOENT : lookup(rel, &n, &st);
  if (e == ENOENT && (flags & O_CREAT)) {
    std::lock_guard<std::mutex> lock(mu_);
    bool hid = false;
    e = prepare_create(rel, &hid);
    if (e == EEXIST && !(flags & O_EXCL)) {
      e = lookup(rel, &n, &st);  // made meanwhile: opened below
    } else if (e) {
      return -e;
    } else {
      int fd = open_beneath(upper_.get(), rel, flags | O_EXCL, mode);
      return fd < 0 ? -errno : fd;
    }
  }
  if (e) return -e;
  if ((flags & O_CREAT) && (flags & O_EXCL)) return -EEXIST;
  const bool tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
  if (tmpfile && n.layer == 2 && S_ISDIR(st.st_mode)) {  // a file for the layer
    if (int e2 = copy_up(rel, before_long)) return -e2;
    n.layer = 1;
  }
  const bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (writes && n.layer == 2 && S_ISREG(st.st_mode)) {
    if (int e2 = copy_up(rel, before_long)) return -e2;
    if (int e2 = lookup(rel, &n, &st)) return -e2;  // the layer's copy now
  }
  if (n.layer == 2) return open_lower(rel, st, flags);
  int fd = open_beneath(upper_.get(), rel, flags & ~(O_CREAT | O_EXCL));
  if (fd < 0 && errno == EACCES && as_root && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
      st.st_uid == uid_) {
    // Root's override on the layer's own file: the owner's bits opened for this one open (the
    // layer is 0700 on the host: no one else can use the moment).
    UniqueFd o = UniqueFd(open_beneath(upper_.get(), rel, O_PATH));
    const std::string p = o ? proc_fd(o.get()) : std::string();
    if (o && ::chmod(p.c_str(), (st.st_mode & 07777) | S_IRUSR | S_IWUSR | (S_ISDIR(st.st_mode) ? S_IXUSR : 0)) == 0) {
      fd = open_beneath(upper_.get(), rel, flags & ~(O_CREAT | O_EXCL));
      const int saved = errno;
      (void)::chmod(p.c_str(), st.st_mode & 07777);
      errno = saved;
    } else {
      errno = EACCES;
    }
  }
  return fd < 0 ? -errno : fd;
}

// A descriptor of the lower layer's object rel that lookup() found (st): that very object, and
// never one through which a write reaches the lower tree. Someone who can write the lower tree
// may swap the name between the lookup and the open (a FIFO for a regular file): the object is
// pinned by an O_PATH descriptor first, checked against st, and only then opened, through
// /proc/self/fd. What is opened for writing here is a FIFO, socket or device (a regular file
// was copied up, a directory cannot be written), whose writes leave the lower tree as it is.
int Cow::open_lower(const std::string& rel, const struct stat& st, int flags) const {
  const bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if ((flags & O_TMPFILE) == O_TMPFILE) return -ENOTDIR;  // a directory was copied up
  UniqueFd o(open_beneath(lower_.get(), rel, O_PATH));
  if (!o) return -errno;
  struct stat now;
  if (::fstat(o.get(), &now) < 0) return -errno;
  if (now.st_dev != st.st_dev || now.st_ino != st.st_ino || (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT))
    return -EAGAIN;  // changed since the lookup: the view's next try sees the new one
  if ((flags & O_DIRECTORY) && !S_ISDIR(now.st_mode)) return -ENOTDIR;
  if (S_ISDIR(now.st_mode) && writes) return -EISDIR;
  if (S_ISREG(now.st_mode) && writes) return -EAGAIN;  // made the layer's meanwhile: look again
  if (flags & O_PATH) return o.release();
  if (S_ISLNK(now.st_mode)) return -ELOOP;  // O_NOFOLLOW on a symlink (a followed one was expanded)
  const int fd = ::open(proc_fd(o.get()).c_str(),
                        (flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW | O_PATH)) | O_NOCTTY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

namespace {
// An O_PATH descriptor of rel in the layer (copied up by the caller), for calls by its
// /proc/self/fd path (which never follows a symlink on the way).
UniqueFd upper_object(int root, const std::string& rel) { return UniqueFd(open_beneath(root, rel, O_PATH)); }
}  // namespace

int Cow::chmod(const std::string& rel, mode_t mode) {
  if (int e = copy_up(rel)) return e;
  UniqueFd o = upper_object(upper_.get(), rel);
  if (!o) return errno;
  return ::chmod(proc_fd(o.get()).c_str(), mode) < 0 ? errno : 0;
}

int Cow::chown(const std::string& rel, uid_t u, gid_t g) {
  if (int e = copy_up(rel)) return e;
  UniqueFd o = upper_object(upper_.get(), rel);
  if (!o) return errno;
  return ::fchownat(o.get(), "", u, g, AT_EMPTY_PATH) < 0 ? errno : 0;
}

int Cow::truncate(const std::string& rel, off_t len) {
  if (int e = copy_up(rel)) return e;
  // O_NONBLOCK and the check: a FIFO there (the view's own, or a lower one copied up) must not
  // hold this worker until a reader comes; truncate(2) of one is EINVAL.
  UniqueFd f(open_beneath(upper_.get(), rel, O_WRONLY | O_NONBLOCK));
  if (!f) return errno == ENXIO ? EINVAL : errno;
  struct stat st;
  if (::fstat(f.get(), &st) < 0) return errno;
  if (!S_ISREG(st.st_mode)) return EINVAL;
  return ::ftruncate(f.get(), len) < 0 ? errno : 0;
}

int Cow::utimens(const std::string& rel, const struct timespec* times) {
  if (int e = copy_up(rel)) return e;
  UniqueFd p = parent_fd(upper_.get(), rel);
  if (!p) return errno;
  return ::utimensat(p.get(), base_of(rel).c_str(), times, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

int Cow::setxattr(const std::string& rel, const std::string& name, const void* value, size_t size, int flags) {
  if (int e = copy_up(rel)) return e;
  UniqueFd o = upper_object(upper_.get(), rel);
  if (!o) return errno;
  return ::setxattr(proc_fd(o.get()).c_str(), stored_name(name).c_str(), value, size, flags) < 0 ? errno : 0;
}

int Cow::removexattr(const std::string& rel, const std::string& name) {
  if (int e = copy_up(rel)) return e;
  UniqueFd o = upper_object(upper_.get(), rel);
  if (!o) return errno;
  return ::removexattr(proc_fd(o.get()).c_str(), stored_name(name).c_str()) < 0 ? errno : 0;
}

ssize_t Cow::getxattr(const std::string& rel, const CowNode& n, const std::string& name, void* buf, size_t size) const {
  UniqueFd o(open_beneath(n.layer == 1 ? upper_.get() : lower_.get(), rel, O_PATH));
  if (!o) return -errno;
  ssize_t k = ::getxattr(proc_fd(o.get()).c_str(), stored_name(name).c_str(), buf, size);
  return k < 0 ? -errno : k;
}

ssize_t Cow::listxattr(const std::string& rel, const CowNode& n, char* buf, size_t size) const {
  UniqueFd o(open_beneath(n.layer == 1 ? upper_.get() : lower_.get(), rel, O_PATH));
  if (!o) return -errno;
  std::vector<char> names(65536);
  ssize_t k = ::listxattr(proc_fd(o.get()).c_str(), names.data(), names.size());
  if (k < 0) return -errno;
  const std::string out = layer_format::view_xattr_names(names.data(), static_cast<size_t>(k));
  if (size == 0) return static_cast<ssize_t>(out.size());
  if (out.size() > size) return -ERANGE;
  std::memcpy(buf, out.data(), out.size());
  return static_cast<ssize_t>(out.size());
}

int cow_of_host(const PathMap& map, const std::string& host, Cow** cow, std::string* rel) {
  if (!map.has_cow() || host.empty() || host[0] != '/') return 0;
  for (const Mount& m : map.mounts())
    if (m.cow)
      if (int layer = m.cow->layer_of(host, rel)) {
        *cow = m.cow.get();
        return layer;
      }
  return 0;
}

}  // namespace vu::pvm
