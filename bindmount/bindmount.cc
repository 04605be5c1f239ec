#include "bindmount/bindmount.h"

#include <fcntl.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/strings.h"

namespace vu::bindmount {

namespace {

// Normalizes an absolute path lexically ("//a/./b/" → "/a/b"); ".." is refused by the caller.
std::string normalize(std::string_view p) {
  std::string out;
  for (const std::string& part : str::split(p, '/')) {
    if (part.empty() || part == ".") continue;
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

Result<void> check_target(std::string_view t, std::string_view what) {
  if (t.empty() || t[0] != '/')
    return Error::usage(std::string(what) + ": target " + str::quote(t) +
                        " is not an absolute path")
        .hint("targets name a place inside the view, e.g. /mnt or /etc/resolv.conf");
  for (const std::string& part : str::split(t, '/'))
    if (part == "..")
      return Error::usage(std::string(what) + ": target " + str::quote(t) + " contains '..'");
  return Ok{};
}

}  // namespace

Result<std::string> view_path(std::string_view target, std::string_view what) {
  VU_TRY_VOID(check_target(target, what));
  return normalize(target);
}

Result<std::string> host_path(std::string_view path) {
  if (!path.empty() && path[0] == '/') return std::string(path);
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) return Error::sys("getcwd", errno, {}, ErrorKind::kUsage);
  return std::string(cwd) + "/" + std::string(path);
}

Result<MountSpec> parse_bind(std::string_view arg, bool ro_default) {
  const char* what = ro_default ? "--ro-bind" : "--bind";
  auto f = str::split(arg, ':');
  if (f.size() < 2 || f.size() > 3 || f[0].empty() || f[1].empty())
    return Error::usage(std::string(what) + " " + str::quote(arg) +
                        ": expected SOURCE:TARGET[:ro|rw]")
        .hint("e.g. --bind /tmp/r:/etc/resolv.conf or --bind /srv/data:/mnt:ro");
  MountSpec m;
  m.source = VU_TRY(host_path(f[0]));
  m.read_only = ro_default;
  if (f.size() == 3) {
    for (const std::string& o : str::split(f[2], ',')) {
      if (o == "ro") m.read_only = true;
      else if (o == "rw") m.read_only = false;
      else if (o == "rec") m.recursive = true;
      else if (o == "norec") m.recursive = false;
      else
        return Error::usage(std::string(what) + " " + str::quote(arg) + ": unknown option " +
                            str::quote(o))
            .hint("bind options are ro, rw, rec, norec");
    }
  }
  m.target = VU_TRY(view_path(f[1], what));
  return m;
}

Result<MountSpec> parse_tmpfs(std::string_view arg) {
  MountSpec m;
  m.kind = Kind::kTmpfs;
  m.source = "tmpfs";
  size_t colon = arg.find(':');
  m.target = std::string(arg.substr(0, colon));
  std::string mode = "0755", size;
  if (colon != std::string_view::npos) {
    for (const std::string& o : str::split(arg.substr(colon + 1), ',')) {
      unsigned long v;
      if (str::starts_with(o, "size=") && o.size() > 5 &&
          o.find_first_not_of("0123456789kmgKMG%", 5) == std::string::npos) {
        size = o.substr(5);
      } else if (str::starts_with(o, "mode=") && o.size() > 5 &&
                 o.find_first_not_of("01234567", 5) == std::string::npos &&
                 str::parse_uint(o.substr(5), 07777, &v)) {
        mode = o.substr(5);
      } else if (o == "ro") {
        m.read_only = true;
      } else {
        return Error::usage("--tmpfs " + str::quote(arg) + ": unknown or malformed option " +
                            str::quote(o))
            .hint("tmpfs options are size=BYTES[k|m|g], mode=OCTAL, ro");
      }
    }
  }
  m.target = VU_TRY(view_path(m.target, "--tmpfs"));
  m.data = "mode=" + mode + (size.empty() ? "" : ",size=" + size);
  return m;
}

Result<void> check(const MountSpec& m) {
  const char* what = m.kind == Kind::kBind ? "bind" : m.kind == Kind::kTmpfs ? "tmpfs" : "cow";
  VU_TRY_VOID(check_target(m.target, what));
  // Mounting over / in a mount namespace leaves the process's root where it was: the view
  // would still show the host's /. Until vu replaces the root, refuse rather than ignore it.
  if (m.target == "/" && (m.kind == Kind::kBind || m.kind == Kind::kTmpfs))
    return Error::usage(std::string(m.kind == Kind::kBind ? "--bind " + m.source + ":/" : "--tmpfs /") +
                        ": replacing the view's root directory is not supported")
        .hint("bind or mount below / instead (e.g. --bind DIR:/mnt); --cow LAYER:/ --root gives a "
              "copy-on-write root");
  if (m.kind == Kind::kBind) {
    struct stat st;
    if (::stat(m.source.c_str(), &st) < 0) {
      return Error::sys(std::string(what) + " " + m.source + " -> " + m.target + ": source", errno,
                        {}, ErrorKind::kUsage)
          .hint("the source is a path on the host; create it first or fix the spelling");
    }
  }
  return Ok{};
}

std::string to_string(const MountSpec& m) {
  std::string s = m.kind == Kind::kBind    ? "bind " + m.source + " -> " + m.target
                  : m.kind == Kind::kTmpfs ? "tmpfs " + m.target + " (" + m.data + ")"
                  : m.kind == Kind::kMountpoint ? "mountpoint " + m.target
                  : m.kind == Kind::kSymlink    ? "symlink " + m.target + " -> " + m.source
                                           : "cow " + m.target + " <- layer " + m.source + " (kernel overlayfs)";
  if (m.read_only) s += " (ro)";
  if (m.kind == Kind::kBind && !m.recursive) s += " (norec)";
  return s;
}

namespace {

// Flags the kernel locks on mounts inherited into an unprivileged namespace; a remount must
// repeat them or it fails with EPERM.
unsigned long locked_flags(const char* path) {
  struct statvfs sv;
  if (::statvfs(path, &sv) < 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

bool fail(Failure* f, int index, Stage stage) {
  f->index = index;
  f->stage = stage;
  f->err = errno;
  return false;
}

// Bind with the classic API (kernels without open_tree, i.e. before 5.2).
bool bind_legacy(const MountSpec& m, int i, Failure* f) {
  unsigned long fl = MS_BIND | (m.recursive ? MS_REC : 0);
  if (::mount(m.source.c_str(), m.target.c_str(), nullptr, fl, nullptr) < 0)
    return fail(f, i, Stage::kBind);
  if (m.read_only &&
      ::mount(nullptr, m.target.c_str(), nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(m.target.c_str()), nullptr) < 0)
    return fail(f, i, Stage::kRemount);
  return true;
}

bool bind_one(const MountSpec& m, int i, Failure* f) {
  unsigned rec = m.recursive ? AT_RECURSIVE : 0;
  int fd = ::open_tree(AT_FDCWD, m.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (fd < 0) {
    if (errno == ENOSYS) return bind_legacy(m, i, f);
    return fail(f, i, Stage::kOpenTree);
  }
  if (m.read_only) {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(fd, "", AT_EMPTY_PATH | rec, &attr, sizeof attr) < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      return fail(f, i, Stage::kSetAttr);
    }
  }
  if (::move_mount(fd, "", AT_FDCWD, m.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return fail(f, i, Stage::kMoveMount);
  }
  ::close(fd);
  return true;
}

// ---- Creating missing targets -------------------------------------------------------------
//
// A target that does not exist (--tmpfs /scratch) cannot be created on the host: that would
// leave something behind, and / is not ours to write. Instead, the deepest existing ancestor A
// is covered by a tmpfs T that mirrors it: every entry of A is re-created in T as a mount point
// (a symlink is copied) and bound back recursively, then the missing path is made in T. T is
// made read-only at the end if the caller could not write A. When A is /, T is mounted over the
// old root and the process chroots into it. Later targets under T are created in T directly.
// All of it without allocation: getdents64 on a stack buffer, paths in fixed buffers.

constexpr int kMaxSynth = 16;
struct Synth {
  int fd[kMaxSynth];    // T's mount fds (to make them read-only at the end), -1 for tmpfs mounts
  dev_t dev[kMaxSynth]; // devices on which vu may create entries (T's and the spec's tmpfs)
  bool ro[kMaxSynth];
  int n = 0;
};

bool ours(const Synth& s, dev_t dev) {
  for (int i = 0; i < s.n; ++i)
    if (s.dev[i] == dev) return true;
  return false;
}

// Makes the placeholder for entry `name` of A (type from d_type or fstatat) inside T and binds
// the original on it. Symlinks are copied. Returns 0 or errno.
int mirror_entry(int afd, int tfd, const char* name, unsigned char type) {
  if (type == DT_UNKNOWN) {
    struct stat st;
    if (::fstatat(afd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno;
    type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
  }
  if (type == DT_LNK) {
    char target[4096];
    ssize_t n = ::readlinkat(afd, name, target, sizeof target - 1);
    if (n < 0) return errno;
    target[n] = 0;
    return ::symlinkat(target, tfd, name) < 0 ? errno : 0;
  }
  if (type == DT_DIR) {
    if (::mkdirat(tfd, name, 0755) < 0) return errno;
  } else {
    int fd = ::openat(tfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    ::close(fd);
  }
  int efd = ::open_tree(afd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
  if (efd < 0) return errno;
  int r = ::move_mount(efd, "", tfd, name, MOVE_MOUNT_F_EMPTY_PATH);
  int err = r < 0 ? errno : 0;
  ::close(efd);
  return err;
}

// Covers directory `a` with a mirroring tmpfs. Returns 0 or errno.
int synthesize(const char* a, Synth* s) {
  if (s->n == kMaxSynth) return ENOSPC;
  struct stat ast;
  int afd = ::open(a, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (afd < 0) return errno;
  int err = 0, tfd = -1, fsfd = -1;
  if (::fstat(afd, &ast) < 0) { err = errno; goto out; }
  fsfd = ::fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fsfd < 0) { err = errno; goto out; }
  {
    // T's root gets A's permission bits (the fd fsmount returns is O_PATH: no fchmod).
    char mode[8];
    unsigned m = ast.st_mode & 07777;
    for (int i = 5; i >= 0; --i, m >>= 3) mode[i] = static_cast<char>('0' + (m & 7));
    mode[6] = 0;
    if (::fsconfig(fsfd, FSCONFIG_SET_STRING, "mode", mode, 0) < 0) { err = errno; goto out; }
  }
  if (::fsconfig(fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) { err = errno; goto out; }
  tfd = ::fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (tfd < 0) { err = errno; goto out; }
  // Attach first, so that T is in our mount tree and can receive the entries.
  if (::move_mount(tfd, "", AT_FDCWD, a, MOVE_MOUNT_F_EMPTY_PATH) < 0) { err = errno; goto out; }
  {
    char buf[8192];
    for (;;) {
      long n = ::syscall(SYS_getdents64, afd, buf, sizeof buf);
      if (n < 0) { err = errno; goto out; }
      if (n == 0) break;
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<struct dirent64*>(buf + off);
        off += d->d_reclen;
        const char* nm = d->d_name;
        if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
        if ((err = mirror_entry(afd, tfd, nm, d->d_type))) goto out;
      }
    }
  }
  if (a[0] == '/' && a[1] == 0) {
    // T sits on top of the old root, which absolute lookups still start from: enter T.
    if (::fchdir(tfd) < 0 || ::chroot(".") < 0) { err = errno; goto out; }
  }
  s->fd[s->n] = tfd;
  s->dev[s->n] = 0;
  {
    struct stat tst;
    if (::fstat(tfd, &tst) == 0) s->dev[s->n] = tst.st_dev;
  }
  s->ro[s->n] = false;  // set by the caller, which checked A before T covered it
  s->n++;
  tfd = -1;
out:
  if (tfd >= 0) ::close(tfd);
  if (fsfd >= 0) ::close(fsfd);
  ::close(afd);
  return err;
}

// Makes sure `target` exists in the view, as a directory or (want_dir false) a file.
int ensure_target(const char* target, bool want_dir, Synth* s) {
  struct stat st;
  if (::stat(target, &st) == 0) return 0;
  if (errno != ENOENT) return errno;
  char path[4096];
  size_t len = std::strlen(target);
  if (len >= sizeof path) return ENAMETOOLONG;
  std::memcpy(path, target, len + 1);
  // Deepest existing ancestor.
  size_t cut = len;
  for (;;) {
    while (cut > 0 && path[cut] != '/') --cut;
    char saved = path[cut ? cut : 1];
    path[cut ? cut : 1] = 0;
    int r = ::stat(path, &st);
    int e = errno;
    path[cut ? cut : 1] = saved;
    if (r == 0) break;
    if (e != ENOENT) return e;
    if (cut == 0) return ENOENT;
    --cut;
  }
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  if (!ours(*s, st.st_dev)) {
    char anc[4096];
    std::memcpy(anc, path, cut ? cut : 1);
    anc[cut ? cut : 1] = 0;
    bool writable = ::access(anc, W_OK) == 0;
    if (int err = synthesize(anc, s)) return err;
    s->ro[s->n - 1] = !writable;
  }
  // Create the missing components below the ancestor, which is now ours.
  for (size_t i = cut + 1; i <= len; ++i) {
    if (path[i] != '/' && path[i] != 0) continue;
    char saved = path[i];
    path[i] = 0;
    bool last = saved == 0;
    int r;
    if (!last || want_dir) {
      r = ::mkdir(path, 0755);
    } else {
      r = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (r >= 0) ::close(r);
    }
    int e = errno;
    path[i] = saved;
    if (r < 0 && e != EEXIST) return e;
  }
  return 0;
}

bool source_is_dir(const MountSpec& m) {
  struct stat st;
  return m.kind != Kind::kBind || ::stat(m.source.c_str(), &st) < 0 || S_ISDIR(st.st_mode);
}

}  // namespace

bool apply(const MountSpec* mounts, size_t n, Failure* f) {
  Synth synth;
  bool ok = true;
  for (size_t i = 0; i < n && ok; ++i) {
    const MountSpec& m = mounts[i];
    int idx = static_cast<int>(i);
    if (m.kind == Kind::kSymlink) {
      if (::symlink(m.source.c_str(), m.target.c_str()) < 0 && errno != EEXIST) ok = fail(f, idx, Stage::kTarget);
      continue;
    }
    if (int err = ensure_target(m.target.c_str(), source_is_dir(m), &synth)) {
      errno = err;
      ok = fail(f, idx, Stage::kTarget);
      break;
    }
    if (m.kind == Kind::kBind) {
      ok = bind_one(m, idx, f);
      continue;
    }
    if (m.kind == Kind::kMountpoint) continue;
    if (m.kind == Kind::kOverlay) {
      // The lower layer is the target as the view sees it now; overlayfs opens it before the
      // new mount covers it.
      if (::mount("overlay", m.target.c_str(), "overlay", 0, m.data.c_str()) < 0) {
        ok = fail(f, idx, Stage::kOverlay);
        break;
      }
      // Writable: a later target missing below it is made in it (it lands in the layer), not
      // in a mirror (--rootfs R --cow LAYER:/ binds /etc/resolv.conf into a tree without one).
      struct stat ost;
      if (synth.n < kMaxSynth && ::stat(m.target.c_str(), &ost) == 0) {
        synth.fd[synth.n] = -1;
        synth.dev[synth.n] = ost.st_dev;
        synth.ro[synth.n++] = false;
      }
      continue;
    }
    unsigned long fl = MS_NOSUID | MS_NODEV | (m.read_only ? MS_RDONLY : 0);
    if (::mount("tmpfs", m.target.c_str(), "tmpfs", fl, m.data.c_str()) < 0) {
      ok = fail(f, idx, Stage::kTmpfs);
      break;
    }
    struct stat st;
    if (!m.read_only && synth.n < kMaxSynth && ::stat(m.target.c_str(), &st) == 0) {
      synth.fd[synth.n] = -1;
      synth.dev[synth.n] = st.st_dev;
      synth.ro[synth.n++] = false;
    }
  }
  for (int i = 0; i < synth.n; ++i) {
    if (synth.fd[i] < 0) continue;
    if (ok && synth.ro[i]) {
      struct mount_attr attr {};
      attr.attr_set = MOUNT_ATTR_RDONLY;
      if (::mount_setattr(synth.fd[i], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        ok = fail(f, static_cast<int>(n) - 1, Stage::kTarget);
    }
    ::close(synth.fd[i]);
  }
  return ok;
}

Error describe(const MountSpec& m, const Failure& f) {
  static const char* const kOp[] = {"mount",  "open_tree", "mount_setattr", "move_mount",
                                    "mount",  "remount",   "mount tmpfs",   "create target",
                                    "mount overlay"};
  const char* op = kOp[static_cast<int>(f.stage)];
  Error e = Error::sys(to_string(m) + ": " + op, f.err);
  const bool src_side = f.stage == Stage::kOpenTree ||
                        (f.stage == Stage::kBind && f.err == ENOENT);
  switch (f.err) {
    case ENOENT:
      if (src_side)
        return std::move(e).hint("the source " + m.source + " does not exist inside the view");
      return std::move(e).hint("a directory on the way to " + m.target +
                               " disappeared while the view was being built");
    case ENOTDIR:
    case EISDIR:
    case EINVAL: {
      struct stat ss, ts;
      if (m.kind == Kind::kBind && ::stat(m.source.c_str(), &ss) == 0 &&
          ::stat(m.target.c_str(), &ts) == 0 && S_ISDIR(ss.st_mode) != S_ISDIR(ts.st_mode))
        return std::move(e).hint(std::string("the source is a ") +
                                 (S_ISDIR(ss.st_mode) ? "directory and the target a file"
                                                      : "file and the target a directory") +
                                 ": source and target must both be directories or both be files");
      if (f.err == EINVAL && m.kind == Kind::kTmpfs)
        return std::move(e).hint("check the tmpfs size= and mode= values");
      return std::move(e).hint("source and target must both be directories or both be files");
    }
    case EPERM:
    case EACCES:
      return std::move(e).hint(
          "the kernel refused the mount inside the user namespace; on read-only binds over "
          "locked mounts, or targets under /proc or /sys, this is expected");
    default:
      return e;
  }
}

}  // namespace vu::bindmount
