#include "fusefs/fusefs.h"

#include <fcntl.h>
#include <dirent.h>
#include <fts.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/strings.h"
#include "base/unique_fd.h"

namespace vu::fusefs {

namespace {

// How many entries below a layer's target `auto` looks at before giving up on the kernel.
constexpr int kOwnershipWalkLimit = 20000;

bool has_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (const std::string& dir : str::split(path && *path ? path : "/usr/bin:/bin", ':'))
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

// overlayfs options take ',' as separator and ':' between lower layers; '\' escapes both
// in lowerdir (not in upperdir/workdir, where ',' cannot be written at all).
Result<std::string> overlay_path(const std::string& p, bool lower) {
  std::string out;
  for (char c : p) {
    if (c == ',') return Error::usage("--cow: " + str::quote(p) + " contains ',', which overlayfs options cannot carry")
                     .hint("rename the directory, or add :fuse to use vu-cowfs");
    if (c == ':' || c == '\\') {
      if (!lower) return Error::usage("--cow: " + str::quote(p) + " contains ':' or '\\'").hint("add :fuse to use vu-cowfs");
      out += '\\';
    }
    out += c;
  }
  return out;
}

constexpr const char kWorkPrefix[] = ".vu-cow-work";


// Work directories beside a layer left by a vu that was killed (SIGKILL leaves no time to
// remove them): ours, and unlocked. A running vu holds the lock on its own (prepare_cow), so
// it is provably gone when the lock can be taken; a directory being made is locked before use
// and re-checked (see lock_work).
void remove_orphan_work_dirs(const std::string& parent) {
  DIR* d = ::opendir(parent.c_str());
  if (!d) return;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, kWorkPrefix, sizeof kWorkPrefix - 1) != 0 || e->d_name[sizeof kWorkPrefix - 1] != '.') continue;
    UniqueFd fd(::openat(::dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) < 0 || st.st_uid != ::getuid()) continue;
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) continue;  // a live vu's
    remove_tree(parent + "/" + e->d_name);
  }
  ::closedir(d);
}

// Locks a fresh work directory. A cleaner (another vu's remove_orphan_work_dirs) may have
// taken it between mkdtemp and the lock: then it is gone (no links) and we make another.
Result<UniqueFd> lock_work(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::sys("open", errno, path);
  if (::flock(fd.get(), LOCK_EX) < 0) return Error::sys("flock", errno, path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::sys("fstat", errno, path);
  if (st.st_nlink == 0) return UniqueFd();
  return fd;
}

}  // namespace

Result<CowSpec> parse_cow(std::string_view arg) {
  auto f = str::split(arg, ':');
  if (f.size() < 2 || f.size() > 3 || f[0].empty() || f[1].empty())
    return Error::usage("--cow " + str::quote(arg) + ": expected LAYER:TARGET[:kernel|fuse]")
        .hint("e.g. --cow /tmp/layer:/usr: changes to /usr in the view land in /tmp/layer");
  CowSpec c;
  c.layer = VU_TRY(bindmount::host_path(f[0]));
  c.target = VU_TRY(bindmount::view_path(f[1], "--cow"));
  if (f.size() == 3) {
    if (f[2] == "kernel") c.impl = CowImpl::kKernel;
    else if (f[2] == "fuse") c.impl = CowImpl::kFuse;
    else if (f[2] != "auto")
      return Error::usage("--cow " + str::quote(arg) + ": unknown option " + str::quote(f[2]))
          .hint("options: kernel (overlayfs), fuse (vu-cowfs), auto (the default)");
  }
  return c;
}

Result<FuseMount> parse_fuse(std::string_view cmd, std::string_view target) {
  if (str::trim(cmd).empty()) return Error::usage("--fuse: empty command").hint("e.g. --fuse 'squashfuse app.sqfs' /opt/app");
  FuseMount m;
  m.target = VU_TRY(bindmount::view_path(target, "--fuse"));
  m.argv = {"/bin/sh", "-c", "exec " + std::string(cmd) + " \"$1\"", "vu-fuse", m.target};
  m.what = "--fuse " + str::quote(cmd);
  return m;
}

Result<FuseMount> parse_mount(std::string_view arg) {
  auto f = str::split(arg, ':');
  if (f.size() < 3 || f.size() > 4 || f[0] != "image" || f[1].empty() || f[2].empty())
    return Error::usage("--mount " + str::quote(arg) + ": expected image:FILE:TARGET[:ro]")
        .hint("e.g. --mount image:disk.img:/mnt (ext2/3/4 through fuse2fs, squashfs through squashfuse)");
  bool ro = false;
  if (f.size() == 4) {
    if (f[3] != "ro" && f[3] != "rw") return Error::usage("--mount " + str::quote(arg) + ": unknown option " + str::quote(f[3])).hint("options: ro, rw");
    ro = f[3] == "ro";
  }
  std::string file = VU_TRY(bindmount::host_path(f[1]));
  FuseMount m;
  m.target = VU_TRY(bindmount::view_path(f[2], "--mount"));
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("--mount: image", errno, file, ErrorKind::kUsage).hint("the image is a file on the host; check the path");
  unsigned char head[2048] = {};
  ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
  if (n < 0) return Error::sys("--mount: read", errno, file, ErrorKind::kUsage);
  std::string prog;
  if (n >= 4 && std::memcmp(head, "hsqs", 4) == 0) {
    prog = "squashfuse";
    m.argv = {prog, file, m.target};  // read-only by nature
  } else if (n >= 1082 && head[1080] == 0x53 && head[1081] == 0xEF) {
    prog = "fuse2fs";
    // fuse2fs is a libfuse2 program: it refuses a non-empty mountpoint unless told. Every user
    // of the view reaches the image (allow_other) with the kernel's permission checks against
    // the image's owners (default_permissions: fakeroot alone lets anyone do anything).
    m.argv = {prog, file, m.target, "-o",
              std::string(ro ? "ro" : "rw") + ",fakeroot,nonempty,allow_other,default_permissions"};
  } else {
    return Error::usage("--mount: " + file + ": unknown image type")
        .hint("supported: ext2/ext3/ext4 (fuse2fs) and squashfs (squashfuse); any other FUSE "
              "program works with --fuse 'PROGRAM ARGS' TARGET");
  }
  if (!has_program(prog))
    return Error::make(ErrorKind::kSetup, "--mount: " + file + " needs " + prog + ", which is not installed")
        .hint("as root: apt-get install " + prog);
  m.what = prog + " " + file;
  return m;
}

Result<void> choose_cow(CowSpec& c, uid_t uid, gid_t gid) {
  struct stat st;
  if (::lstat(c.layer.c_str(), &st) == 0) {
    // What is in the layer appears in the view, and runs as the view's user: a layer someone
    // else made, or can write to, would let them put files there (a /tmp/layer made 0777 by
    // another user before yours: their bin/ls in your --root view).
    if (S_ISLNK(st.st_mode))
      return Error::usage("--cow: layer " + c.layer + " is a symlink").hint("give the directory itself");
    if (!S_ISDIR(st.st_mode)) return Error::usage("--cow: layer " + c.layer + " is not a directory");
    if (st.st_uid != uid)
      return Error::usage("--cow: layer " + c.layer + " is not yours (owner uid " + std::to_string(st.st_uid) + ")")
          .hint("another user could put files in your view through it; use a directory you made (or let vu make it)");
    if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX))
      return Error::usage("--cow: layer " + c.layer + " can be written by group or others")
          .hint("they could put files in your view through it: chmod go-w " + c.layer);
    if (::access(c.layer.c_str(), W_OK) < 0)
      return Error::sys("--cow: layer", errno, c.layer, ErrorKind::kUsage).hint("the layer must be writable by you");
  } else {
    std::string parent = c.layer.substr(0, c.layer.rfind('/'));
    if (errno != ENOENT || ::access(parent.empty() ? "/" : parent.c_str(), W_OK) < 0)
      return Error::sys("--cow: layer", errno == ENOENT ? ENOENT : errno, c.layer, ErrorKind::kUsage)
          .hint("the layer is a directory on the host that receives the view's changes; it is "
                "created if missing, but its parent must exist and be writable");
  }
  if (c.impl == CowImpl::kFuse) {
    c.why = "vu-cowfs (FUSE), as asked";
    return Ok{};
  }
  if (c.target == "/") {
    if (c.impl == CowImpl::kKernel)
      return Error::usage("--cow " + c.layer + ":/:kernel: a copy-on-write root needs vu-cowfs").hint("drop :kernel");
    c.impl = CowImpl::kFuse;
    c.why = "vu-cowfs (FUSE): a copy-on-write root (the root filesystem; other mounts stay as they are)";
    return Ok{};
  }
  // On the host, TARGET is the host's path (a bind in front of it changes nothing here: the
  // walk is a hint for `auto`, the mount itself takes the view's TARGET).
  bool all_own = true;
  int seen = 0;
  std::string first_foreign;
  char* roots[] = {const_cast<char*>(c.target.c_str()), nullptr};
  FTS* fts = ::fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR, nullptr);
  if (!fts) all_own = false;
  for (FTSENT* e; fts && (e = ::fts_read(fts));) {
    if (e->fts_info == FTS_DP) continue;
    if (e->fts_info == FTS_NS || e->fts_info == FTS_DNR || e->fts_info == FTS_ERR ||
        e->fts_statp->st_uid != uid || e->fts_statp->st_gid != gid || ++seen > kOwnershipWalkLimit) {
      all_own = false;
      first_foreign = seen > kOwnershipWalkLimit ? "" : e->fts_path;
      break;
    }
    if (e->fts_level == 0 && !S_ISDIR(e->fts_statp->st_mode)) {
      ::fts_close(fts);
      return Error::usage("--cow: target " + c.target + " is not a directory");
    }
  }
  if (fts) ::fts_close(fts);
  if (all_own) {
    std::string layer_real(c.layer), target_real(c.target);
    if (char* r = ::realpath(c.layer.c_str(), nullptr)) { layer_real = r; std::free(r); }
    if (char* r = ::realpath(c.target.c_str(), nullptr)) { target_real = r; std::free(r); }
    if (str::starts_with(layer_real + "/", target_real + "/") || str::starts_with(target_real + "/", layer_real + "/")) {
      all_own = false;
      first_foreign = "the layer and the target overlap";
    }
  }
  if (c.impl == CowImpl::kKernel) {
    if (!all_own)
      return Error::usage("--cow " + c.layer + ":" + c.target + ":kernel: overlayfs cannot make every file yours: " +
                          (first_foreign.empty() ? "more than " + std::to_string(kOwnershipWalkLimit) + " files to check" : first_foreign + " is not owned by you"))
          .hint("drop :kernel (vu then uses vu-cowfs, its FUSE layer)");
    c.why = "kernel overlayfs, as asked";
    return Ok{};
  }
  // overlayfs mounts in a user namespace since Linux 5.11.
  struct utsname u;
  int major = 0, minor = 0;
  if (all_own && ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
      (major < 5 || (major == 5 && minor < 11))) {
    all_own = false;
    first_foreign = std::string("kernel overlayfs needs Linux 5.11 in a user namespace; this is ") + u.release;
  }
  c.impl = all_own ? CowImpl::kKernel : CowImpl::kFuse;
  c.why = all_own ? "kernel overlayfs: every file below " + c.target + " is yours"
          : first_foreign.empty() ? "vu-cowfs (FUSE): more than " + std::to_string(kOwnershipWalkLimit) + " files below " + c.target + " (add :kernel if they are all yours)"
          : first_foreign.find('/') == 0 ? "vu-cowfs (FUSE): " + first_foreign + " is not yours (overlayfs in a user namespace cannot copy it up)"
                                         : "vu-cowfs (FUSE): " + first_foreign;
  return Ok{};
}

std::string program_of(const FuseMount& m) {
  if (m.argv.empty()) return {};
  auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
  if (m.argv.size() > 2 && m.argv[1] == "-c" && m.argv[2].starts_with("exec ")) {
    std::string cmd = m.argv[2].substr(5);
    return base(cmd.substr(0, cmd.find(' ')));
  }
  return base(m.argv[0]);
}

std::string fuse_shim_library() { return sys::vu_library("VU_FUSE_SHIM_LIB", "libvu-fuse-shim.so"); }

std::string fuse_program_preload(const FuseMount& m, const char* current) {
  // A --fuse line runs through sh -c 'exec CMD "$1"', and CMD may reach fuse2fs through any
  // wrapper (env, nice, a script, a leading blank): preloaded, the shim is in whatever the line
  // runs, and guards only a libfuse2 program that has libext2fs (pvm/fuse_shim.c).
  const bool shell_line = m.argv.size() > 2 && m.argv[0] == "/bin/sh" && m.argv[1] == "-c";
  if (!shell_line && program_of(m) != "fuse2fs") return {};
  std::string shim = fuse_shim_library();
  if (shim.empty()) return {};
  std::string v = "LD_PRELOAD=" + shim;
  if (current && *current) v += std::string(":") + current;  // the user's own, after ours
  return v;
}

std::vector<std::string> fuse_program_env(const FuseMount& m, const std::vector<std::string>& base) {
  const std::string* current = nullptr;
  for (const std::string& e : base)
    if (e.starts_with("LD_PRELOAD=")) current = &e;
  std::string preload = fuse_program_preload(m, current ? current->c_str() + 11 : nullptr);
  if (preload.empty()) return {};
  std::vector<std::string> env;
  for (const std::string& e : base)
    if (!e.starts_with("LD_PRELOAD=")) env.push_back(e);
  env.push_back(std::move(preload));
  return env;
}

std::string cowfs_path() {
  if (const char* env = std::getenv("VU_COWFS"); env && *env) return env;
  std::string dir = sys::exe_dir();
  return dir.empty() ? "vu-cowfs" : dir + "/vu-cowfs";
}

Result<CowMount> prepare_cow(const CowSpec& c) {
  CowMount m;
  // For vu-cowfs 0700: the layer holds the view's copies with the target's modes (a
  // world-writable /var/tmp, files only the view should read); no one else may enter it on the
  // host, and vu-cowfs shows the target's mode on the view's side. Kernel overlayfs shows the
  // layer's own mode as the target's (other users of the view could not enter a 0700 one), so
  // there the layer gets the target's mode; overlayfs copies up through its 0700 work directory.
  mode_t mode = 0700;
  struct stat target;
  if (c.impl == CowImpl::kKernel && ::stat(c.target.c_str(), &target) == 0) mode = target.st_mode & 0777;
  if (::mkdir(c.layer.c_str(), mode) == 0) ::chmod(c.layer.c_str(), mode);  // past the umask
  else if (errno != EEXIST) return Error::sys("--cow: create layer", errno, c.layer);
  // A whiteout is a 0/0 character device; some filesystems (vfat, some FUSE) cannot make
  // device nodes at all: find out now, not at the first delete.
  std::string probe = c.layer + "/.vu-whiteout-probe";
  if (::mknod(probe.c_str(), S_IFCHR | 0600, makedev(0, 0)) < 0 && errno != EEXIST)
    return Error::sys("--cow: cannot make a whiteout (0/0 character device) in", errno, c.layer, ErrorKind::kUsage)
        .hint("put the layer on a filesystem such as ext4, xfs, btrfs or tmpfs (/tmp)");
  ::unlink(probe.c_str());
  if (c.impl == CowImpl::kKernel) {
    std::string parent = c.layer.substr(0, c.layer.rfind('/'));
    if (parent.empty()) parent = "/";
    remove_orphan_work_dirs(parent);
    for (int tries = 0; !m.work_lock && tries < 5; ++tries) {
      m.work.reset();
      m.work.emplace(VU_TRY(TempDir::make_in(parent, kWorkPrefix)));
      m.work_lock = VU_TRY(lock_work(m.work->path()));
    }
    if (!m.work_lock) return Error::make(ErrorKind::kSetup, "--cow: the work directory beside " + c.layer + " keeps disappearing");
    struct stat a, b;
    if (::stat(m.work->path().c_str(), &a) == 0 && ::stat(c.layer.c_str(), &b) == 0 && a.st_dev != b.st_dev)
      return Error::usage("--cow: layer " + c.layer + " is a mountpoint: overlayfs needs its work directory on the same filesystem")
          .hint("use a directory inside it (" + c.layer + "/layer), or add :fuse");
    m.kernel = true;
    m.mount.kind = bindmount::Kind::kOverlay;
    m.mount.source = c.layer;
    m.mount.target = c.target;
    m.mount.data = "lowerdir=" + VU_TRY(overlay_path(c.target, true)) + ",upperdir=" + VU_TRY(overlay_path(c.layer, false)) +
                   ",workdir=" + VU_TRY(overlay_path(m.work->path(), false)) + ",userxattr";
    return m;
  }
  std::string prog = cowfs_path();
  if (::access(prog.c_str(), X_OK) < 0)
    return Error::sys("--cow: vu-cowfs", errno, prog).hint("vu-cowfs is installed next to vu; reinstall vu, or set VU_COWFS");
  m.fuse.target = c.target;
  m.fuse.argv = {prog, c.layer, c.target};
  m.fuse.what = "copy-on-write layer " + c.layer + " (vu-cowfs)";
  if (c.target == "/") {
    m.work.emplace(VU_TRY(TempDir::make("vu-cow-root")));
    m.fuse.target = m.work->path();
    m.fuse.argv = {prog, c.layer, m.fuse.target, "--root-fs"};
    m.fuse.new_root = true;
  }
  return m;
}

std::string to_string(const CowSpec& c) {
  return "cow " + c.target + " <- layer " + c.layer + (c.why.empty() ? "" : ": " + c.why);
}

}  // namespace vu::fusefs
