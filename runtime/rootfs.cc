#include "runtime/rootfs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "base/strings.h"
#include "base/temp_dir.h"
#include "base/child.h"
#include "base/unique_fd.h"
#include "runtime/image_cache.h"
#include "userns/userns.h"

namespace vu {

namespace {

// The generated files, kept until vu exits (the pvm backend maps them for the view's life).
std::optional<TempDir>& files_dir() {
  static std::optional<TempDir> dir;
  return dir;
}

// Opens `path` inside the tree as the view will see it: symlinks resolve within the tree.
UniqueFd open_in_root(int root, const char* path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return UniqueFd(static_cast<int>(::syscall(SYS_openat2, root, path, &how, sizeof how)));
}

std::string read_in_root(int root, const char* path) {
  UniqueFd fd = open_in_root(root, path, O_RDONLY);
  if (!fd) return {};
  auto text = sys::read_file("/proc/self/fd/" + std::to_string(fd.get()), 4 << 20);
  return text ? *text : std::string();
}

bool has_id(const std::string& text, size_t field, unsigned long id) {
  for (const std::string& line : str::split(text, '\n')) {
    auto f = str::split(line, ':');
    if (f.size() > field && f[field] == std::to_string(id)) return true;
  }
  return false;
}

bindmount::MountSpec bind(const std::string& src, const std::string& dst, bool ro = false) {
  bindmount::MountSpec m;
  m.source = src;
  m.target = dst;
  m.read_only = ro;
  m.host_source = true;
  return m;
}

bindmount::MountSpec tmpfs(const std::string& dst, const char* mode) {
  bindmount::MountSpec m;
  m.kind = bindmount::Kind::kTmpfs;
  m.source = "tmpfs";
  m.target = dst;
  m.data = std::string("mode=") + mode;
  return m;
}

bindmount::MountSpec symlink(const std::string& dst, const std::string& to) {
  bindmount::MountSpec m;
  m.kind = bindmount::Kind::kSymlink;
  m.source = to;
  m.target = dst;
  return m;
}

// Runs vu-unpack (next to vu) with `args`; its standard output.
Result<std::string> run_unpack(const std::string& what, std::vector<std::string> args) {
  std::string helper = sys::exe_dir() + "/vu-unpack";
  args.insert(args.begin(), helper);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto out = VU_TRY(sys::pipe());
  Child c = VU_TRY(Child::clone(0));
  if (c.is_child()) {
    ::dup2(out.second.get(), 1);
    ::execv(helper.c_str(), argv.data());
    ::_exit(127);
  }
  out.second.reset();
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out.first.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  ExitStatus es = VU_TRY(c.wait());
  if (es.signaled || es.value == 127)
    return Error::make(ErrorKind::kSetup, "--rootfs " + what + ": could not run " + helper)
        .hint("vu-unpack is installed next to vu");
  if (es.value == 2)
    return Error::usage("--rootfs " + what + ": not a usable archive or image (see vu-unpack's message above)")
        .hint("give a root tree, a tar archive of one (gz, xz, zstd, bz2), or oci:LAYOUT[:TAG]");
  if (es.value != 0 || text.empty())
    return Error::make(ErrorKind::kSetup, "--rootfs " + what + ": unpacking into " + image_cache::dir() + " failed");
  return text;
}

// An archive's tree: from the cache when this very file (device, inode, size, mtime) was
// unpacked before, else vu-unpack fills the cache and names the tree.
Result<std::string> unpacked_tree(const std::string& archive, const struct stat& st) {
  const std::string cache = image_cache::dir();
  char real[PATH_MAX];
  std::string known = cache + "/by-stat/" + image_cache::stat_key(st);
  struct stat tst;
  if (::realpath(known.c_str(), real) && ::stat(real, &tst) == 0 && S_ISDIR(tst.st_mode)) return std::string(real);
  return std::string(str::trim(VU_TRY(run_unpack(archive, {archive, cache}))));
}

// oci:LAYOUT[:TAG]: the image's tree, and its config's defaults where the spec leaves them
// (environment before --setenv, working directory, command).
Result<std::string> oci_tree(const std::string& given, ViewSpec& spec, std::string* user) {
  std::string rest = given.substr(4), tag;
  if (size_t colon = rest.rfind(':'); colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  std::string layout = VU_TRY(bindmount::host_path(rest));
  std::string out = VU_TRY(run_unpack(given, {"--oci", layout, tag, image_cache::dir()}));
  auto lines = str::split(out, '\n');
  std::string tree = lines.empty() ? std::string() : lines[0];
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> cmd;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t tab = lines[i].find('\t');
    if (tab == std::string::npos) continue;
    std::string key = lines[i].substr(0, tab), value = lines[i].substr(tab + 1);
    for (size_t k = 0; (k = value.find("\\n", k)) != std::string::npos; ++k) value.replace(k, 2, "\n");
    if (key == "env" && value.find('=') != std::string::npos) env.emplace_back(value.substr(0, value.find('=')), value.substr(value.find('=') + 1));
    if (key == "workdir" && !spec.chdir) spec.chdir = value;
    if (key == "cmd") cmd.push_back(value);
    if (key == "user") *user = value;
  }
  spec.setenv.insert(spec.setenv.begin(), env.begin(), env.end());
  if (spec.command.empty() && !cmd.empty()) spec.command = cmd;
  return tree;
}

}  // namespace

std::string passwd_line_for(const std::string& passwd, uid_t uid, gid_t gid, const std::string& name,
                            const std::string& home) {
  if (has_id(passwd, 2, uid)) return {};
  return name + ":x:" + std::to_string(uid) + ":" + std::to_string(gid) + "::" + home + ":/bin/sh\n";
}

std::string group_line_for(const std::string& group, gid_t gid, const std::string& name) {
  if (has_id(group, 2, gid)) return {};
  return name + ":x:" + std::to_string(gid) + ":\n";
}

Result<std::pair<uint32_t, uint32_t>> image_user_ids(const std::string& user, const std::string& passwd,
                                                     const std::string& group) {
  auto number = [](const std::string& s) -> std::optional<uint32_t> {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    unsigned long v = std::stoul(s);
    if (v > 0xfffffffeul) return std::nullopt;
    return static_cast<uint32_t>(v);
  };
  // The line of `text` whose field `key_field` is `key`, split.
  auto entry = [](const std::string& text, size_t key_field, const std::string& key) -> std::vector<std::string> {
    for (const std::string& line : str::split(text, '\n')) {
      auto f = str::split(line, ':');
      if (f.size() > 3 && f[key_field] == key) return f;
    }
    return {};
  };
  const size_t colon = user.find(':');
  const std::string u = user.substr(0, colon), gp = colon == std::string::npos ? "" : user.substr(colon + 1);
  uint32_t uid = 0, gid = 0;
  std::optional<uint32_t> un = number(u);
  std::vector<std::string> pw = un ? entry(passwd, 2, u) : entry(passwd, 0, u);
  if (un) {
    uid = *un;
  } else {
    if (pw.empty()) return Error::usage("the image's user " + u + " is not in the tree's /etc/passwd");
    if (!number(pw[2])) return Error::usage("the tree's /etc/passwd has no usable uid for " + u);
    uid = *number(pw[2]);
  }
  if (!gp.empty()) {
    if (auto gn = number(gp)) {
      gid = *gn;
    } else {
      auto gr = entry(group, 0, gp);
      if (gr.empty() || !number(gr[2])) return Error::usage("the image's group " + gp + " is not in the tree's /etc/group");
      gid = *number(gr[2]);
    }
  } else if (pw.size() > 3 && number(pw[3])) {
    gid = *number(pw[3]);
  }
  return std::make_pair(uid, gid);
}

Result<void> expand_rootfs(ViewSpec& spec) {
  if (!spec.rootfs) return Ok{};
  const std::string given = *spec.rootfs;
  std::string image_user;
  if (given.compare(0, 4, "oci:") == 0) spec.rootfs = VU_TRY(oci_tree(given, spec, &image_user));
  char real[PATH_MAX];
  if (!::realpath(VU_TRY(bindmount::host_path(*spec.rootfs)).c_str(), real))
    return Error::sys("--rootfs", errno, given, ErrorKind::kUsage).hint("the root tree must be an existing directory");
  std::string root = real;
  struct stat st;
  if (::stat(root.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    root = VU_TRY(unpacked_tree(root, st));
  } else if (::stat(root.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) {
    return Error::usage("--rootfs " + given + ": neither a directory nor an archive")
        .hint("give an unpacked root tree or a tar archive of one (OCI images are not supported yet)");
  }
  if (root == "/") return Error::usage("--rootfs /: that is the host's root already").hint("drop --rootfs");
  // --cow LAYER:/ makes the tree writable: kernel overlayfs with the tree as its lower layer.
  for (auto it = spec.cows.begin(); it != spec.cows.end(); ++it) {
    if (it->target != "/") continue;
    fusefs::CowSpec c{it->layer, root, fusefs::CowImpl::kAuto, {}};
    VU_TRY_VOID(fusefs::choose_cow(c, ::getuid(), ::getgid()));
    if (c.impl != fusefs::CowImpl::kKernel)
      return Error::usage("--rootfs " + given + " --cow " + it->layer + ":/: the tree has files that are not yours")
          .hint("a writable tree needs kernel overlayfs, which needs every file below it to be yours (" + c.why + ")");
    c.why = "kernel overlayfs over the tree";
    spec.rootfs_layer = c;
    spec.cows.erase(it);
    break;
  }
  if (!spec.cows.empty() || !spec.fuse.empty())
    return Error::usage("--rootfs with --cow below /, --fuse or --mount is not supported yet")
        .hint("bind what you need into the tree with --bind; --cow LAYER:/ makes the tree writable");
  UniqueFd rfd = VU_TRY(sys::open(root, O_RDONLY | O_DIRECTORY));
  if (!open_in_root(rfd.get(), "bin/sh", O_PATH))
    return Error::usage("--rootfs " + given + ": the tree has no /bin/sh")
        .hint("a root tree needs at least /bin/sh (e.g. busybox, or a debootstrap/mmdebstrap tree)");
  // The image's User, unless --root says otherwise.
  if (!image_user.empty() && spec.identity != userns::Identity::kRoot && !spec.view_ids) {
    auto ids = image_user_ids(image_user, read_in_root(rfd.get(), "etc/passwd"), read_in_root(rfd.get(), "etc/group"));
    if (!ids) return Error::usage("--rootfs " + given + ": " + ids.error().message())
                  .hint("the image's config names a user the tree does not have; --root runs as root instead");
    if (ids->first == 0) spec.identity = userns::Identity::kRoot;
    if (ids->first != 0 || ids->second != 0) spec.view_ids = *ids;
  }
  auto has_dir = [&](const char* p) {
    UniqueFd fd = open_in_root(rfd.get(), p, O_PATH | O_DIRECTORY);
    return fd.valid();
  };

  std::vector<bindmount::MountSpec> m;
  m.push_back(bind(root, "/", !spec.rootfs_layer));  // the ns backend mounts the layer there
  m.back().recursive = false;
  m.push_back(bind("/proc", "/proc"));
  m.push_back(tmpfs("/dev", "0755"));
  for (const char* d : {"null", "zero", "full", "random", "urandom", "tty", "ptmx"})
    if (::access((std::string("/dev/") + d).c_str(), F_OK) == 0) m.push_back(bind(std::string("/dev/") + d, std::string("/dev/") + d));
  m.push_back(bind("/dev/pts", "/dev/pts"));
  m.push_back(tmpfs("/dev/shm", "1777"));
  m.push_back(symlink("/dev/fd", "/proc/self/fd"));
  m.push_back(symlink("/dev/stdin", "/proc/self/fd/0"));
  m.push_back(symlink("/dev/stdout", "/proc/self/fd/1"));
  m.push_back(symlink("/dev/stderr", "/proc/self/fd/2"));
  m.push_back(bind("/sys", "/sys", true));
  m.push_back(tmpfs("/tmp", "1777"));
  const char* home = std::getenv("HOME");
  if (spec.rootfs_home && home && home[0] == '/' && std::string(home) != "/" && ::stat(home, &st) == 0 &&
      S_ISDIR(st.st_mode))
    m.push_back(bind(home, VU_TRY(bindmount::view_path(home, "$HOME"))));
  if (has_dir("etc")) {
    // The caller (or root, under --root) and their group, where the tree does not have them.
    const bool as_root = spec.identity == userns::Identity::kRoot;
    const uid_t uid = spec.view_ids ? spec.view_ids->first : as_root ? 0 : ::getuid();
    const gid_t gid = spec.view_ids ? spec.view_ids->second : as_root ? 0 : ::getgid();
    const std::string name = uid == 0 ? "root" : userns::current_user_name();
    std::string passwd = read_in_root(rfd.get(), "etc/passwd");
    std::string group = read_in_root(rfd.get(), "etc/group");
    std::string pl = passwd_line_for(passwd, uid, gid, name, as_root ? "/root" : (home ? home : "/"));
    std::string gl = group_line_for(group, gid, name);
    if (!pl.empty() || !gl.empty()) {
      auto& dir = files_dir();
      if (!dir) {
        auto shm = TempDir::make_owned("/dev/shm", "vu-rootfs");
        dir.emplace(shm ? std::move(shm).value() : VU_TRY(TempDir::make_owned("vu-rootfs")));
        ::chmod(dir->path().c_str(), 0755);
      }
      for (auto [name_in_etc, text] : {std::pair<const char*, std::string>{"passwd", passwd + pl},
                                       std::pair<const char*, std::string>{"group", group + gl}}) {
        std::string path = dir->path() + "/" + name_in_etc;
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd) return Error::sys("create", errno, path);
        VU_TRY_VOID(sys::write_all(fd.get(), text, path));
        m.push_back(bind(path, std::string("/etc/") + name_in_etc));
      }
    }
    if (::access("/etc/hosts", R_OK) == 0) m.push_back(bind("/etc/hosts", "/etc/hosts"));
    // A slirp network brings its own resolv.conf (the backend binds it); otherwise the host's.
    bool user_resolv = false;
    for (const bindmount::MountSpec& u : spec.mounts) user_resolv |= u.target == "/etc/resolv.conf";
    if (spec.net.dns.empty() && !user_resolv && ::access("/etc/resolv.conf", R_OK) == 0)
      m.push_back(bind("/etc/resolv.conf", "/etc/resolv.conf"));
  }
  // No command: $SHELL if the tree has it, else its /bin/sh.
  if (spec.command.empty()) {
    const char* shell = std::getenv("SHELL");
    if (!shell || shell[0] != '/' || !open_in_root(rfd.get(), shell + 1, O_PATH)) spec.command = {"/bin/sh"};
  }
  for (bindmount::MountSpec& u : spec.mounts) u.host_source = true;
  spec.mounts.insert(spec.mounts.begin(), m.begin(), m.end());
  spec.rootfs = root;
  return Ok{};
}

}  // namespace vu
