#include "runtime/probe.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/child.h"
#include "base/strings.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "userns/userns.h"
#include "vdens/tap.h"

namespace vu {

namespace {

std::string read_trimmed(const char* path) {
  auto r = sys::read_file(path);
  return r ? std::string(str::trim(*r)) : std::string();
}

// The value of "Key:" in /proc/self/status.
std::string status_field(const char* key) {
  auto r = sys::read_file("/proc/self/status");
  if (!r) return {};
  for (const std::string& line : str::split(*r, '\n'))
    if (str::starts_with(line, key)) return std::string(str::trim(line.substr(std::strlen(key))));
  return {};
}

// Result of a step run in a child: 0, or errno and which step failed.
struct Outcome {
  int err = 0;
  const char* step = nullptr;
};

// Runs fn in a child process (fork semantics) and brings back its Outcome through a pipe.
template <typename Fn>
Outcome in_child(unsigned long clone_flags, Fn fn) {
  auto p = sys::pipe();
  if (!p) return {p.error().err(), "pipe"};
  auto c = Child::clone(clone_flags);
  if (!c) return {c.error().err(), "clone"};
  if (c->is_child()) {
    Outcome o = fn();
    int e[2] = {o.err, 0};
    (void)!::write(p->second.get(), e, sizeof e);
    // Step names are static strings at the same address in parent and child.
    (void)!::write(p->second.get(), &o.step, sizeof o.step);
    ::_exit(0);
  }
  p->second.reset();
  Outcome o;
  int e[2] = {0, 0};
  if (::read(p->first.get(), e, sizeof e) == static_cast<ssize_t>(sizeof e) &&
      ::read(p->first.get(), &o.step, sizeof o.step) == static_cast<ssize_t>(sizeof o.step)) {
    o.err = e[0];
  } else {
    o = {EIO, "child"};
  }
  (void)c->wait();
  return o;
}

constexpr const char* kUnshareStep = "unshare(CLONE_NEWUSER)";

// In the child: a new user namespace (plus `extra` namespaces) with the caller's ids mapped to
// themselves, as `vu run` makes it.
Outcome enter_userns(int extra) {
  userns::MapStage st;
  int err = userns::unshare_keep_ids(extra, &st);
  if (!err) return {};
  return {err, st == userns::MapStage::kNone ? kUnshareStep : "write uid/gid map"};
}

std::string step_error(const Outcome& o) {
  return std::string(o.step) + ": " + errno_name(o.err) + " (" + std::strerror(o.err) + ")";
}

std::string kernel_release() {
  struct utsname u;
  return ::uname(&u) == 0 ? u.release : "?";
}

std::string device_hint(const char* dev) {
  struct stat st;
  if (::stat(dev, &st) < 0) return std::string(dev) + " does not exist";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  std::string s = std::string(dev) + " is mode " + mode;
  if ((st.st_mode & 0006) != 0006) s += "; Debian's default is 0666 (as root: chmod 0666 " + std::string(dev) + ")";
  return s;
}

}  // namespace

std::string explain_userns_errno(int err) {
  switch (err) {
    case EPERM: {
      if (read_trimmed("/proc/sys/kernel/unprivileged_userns_clone") == "0")
        return "the sysctl kernel.unprivileged_userns_clone is 0";
      if (read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1")
        return "AppArmor restricts unprivileged user namespaces "
               "(kernel.apparmor_restrict_unprivileged_userns=1, as on Ubuntu 24.04)";
      std::string sc = status_field("Seccomp:");
      if (sc == "2")
        return "a seccomp filter is active (Seccomp: 2), as in Docker's default profile, which "
               "denies namespace creation";
      return "the kernel denied it (a security module or a container runtime's policy)";
    }
    case ENOSPC: {
      std::string max = read_trimmed("/proc/sys/user/max_user_namespaces");
      if (max == "0") return "the sysctl user.max_user_namespaces is 0";
      return "the limit user.max_user_namespaces (" + max + ") is reached";
    }
    case EINVAL:
      return "the kernel refused (EINVAL: e.g. a chroot, or a multithreaded caller)";
    case ENOSYS:
      return "the kernel was built without user namespaces (CONFIG_USER_NS)";
    case EUSERS:
      return "user namespaces are nested too deep (32 levels)";
    default:
      return std::string("unshare(CLONE_NEWUSER) failed: ") + std::strerror(err);
  }
}

Fact probe_userns() {
  Fact f{"user namespaces"};
  // What a view needs of them: an id map, a mount and a host name (Ubuntu >= 23.10's AppArmor
  // rule lets the namespace be made and then refuses the last two).
  Outcome o = in_child(0, [&]() -> Outcome {
    if (Outcome u = enter_userns(CLONE_NEWNS | CLONE_NEWUTS); u.err) return u;
    if (::mount("none", "/", "tmpfs", 0, nullptr) < 0) return {errno, "mount tmpfs in the namespace"};
    if (::sethostname("vu-probe", 8) < 0) return {errno, "sethostname in the namespace"};
    return {};
  });
  f.yes = o.err == 0;
  if (f.yes) {
    f.detail = "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS), own uid map, a mount and sethostname work";
  } else if (o.step == kUnshareStep) {
    f.detail = step_error(o) + " — " + explain_userns_errno(o.err);
  } else {
    f.detail = step_error(o) + " — namespaces are created but give no privilege in them" +
               (read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1"
                    ? std::string(" (kernel.apparmor_restrict_unprivileged_userns=1, as on Ubuntu >= 23.10)")
                    : status_field("Seccomp:") == "2" ? std::string(" (a seccomp filter is active)")
                                                      : std::string(" (a security module's policy)"));
  }
  return f;
}

Fact probe_fuse_in_userns() {
  Fact f{"FUSE in a user namespace"};
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  Outcome o = in_child(0, [&]() -> Outcome {
    // CRITICAL: /dev/fuse must be opened inside the user namespace that mounts, or the kernel
    // rejects the fd (EINVAL: its opener's userns differs from the superblock's).
    if (Outcome u = enter_userns(CLONE_NEWNS); u.err) return u;
    int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) return {errno, "open /dev/fuse"};
    char opts[96];
    std::snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd, uid, gid);
    if (::mount("vu-probe", "/", "fuse", MS_NOSUID | MS_NODEV, opts) < 0)
      return {errno, "mount -t fuse"};
    return {};
  });
  f.yes = o.err == 0;
  f.detail = f.yes ? "/dev/fuse opens and a fuse mount is accepted in a user namespace"
                   : step_error(o);
  if (!f.yes && std::strcmp(o.step, "open /dev/fuse") == 0) f.detail += " — " + device_hint("/dev/fuse");
  return f;
}

Fact probe_tun_in_userns() {
  Fact f{"tun/tap in a user namespace"};
  Outcome o = in_child(0, [&]() -> Outcome {
    if (Outcome u = enter_userns(CLONE_NEWNET); u.err) return u;
    int fd;
    if (int e = vdens::open_tap("vuprobe0", &fd)) return {e, "open /dev/net/tun and create a tap"};
    return {};
  });
  f.yes = o.err == 0;
  f.detail = f.yes ? "a tap device can be created in a private network namespace" : step_error(o);
  if (!f.yes && (o.err == EACCES || o.err == ENOENT))  // the device, not the kernel
    f.detail += " — " + device_hint("/dev/net/tun");
  return f;
}

Fact probe_overlay_in_userns() {
  Fact f{"overlayfs in a user namespace"};
  auto dir = TempDir::make_owned("vu-probe");  // owned: a vu killed meanwhile leaves it to the next
  if (!dir) {
    f.detail = dir.error().to_string();
    return f;
  }
  const std::string& d = dir->path();
  for (const char* sub : {"/l", "/u", "/w", "/m"}) ::mkdir((d + sub).c_str(), 0700);
  std::string data = "lowerdir=" + d + "/l,upperdir=" + d + "/u,workdir=" + d + "/w";
  std::string merged = d + "/m";
  Outcome o = in_child(0, [&]() -> Outcome {
    if (Outcome u = enter_userns(CLONE_NEWNS); u.err) return u;
    if (::mount("overlay", merged.c_str(), "overlay", 0, (data + ",userxattr").c_str()) == 0) return {};
    if (::mount("overlay", merged.c_str(), "overlay", 0, data.c_str()) == 0) return {};
    return {errno, "mount -t overlay"};
  });
  f.yes = o.err == 0;
  f.detail = f.yes ? "kernel " + kernel_release() + " mounts overlayfs in a user namespace"
                   : step_error(o) + " (needs kernel >= 5.11; this is " + kernel_release() + ")";
  return f;
}

Fact probe_seccomp_unotify() {
  Fact f{"seccomp user notification"};
  Outcome o = in_child(0, []() -> Outcome {
    unsigned action = SECCOMP_RET_USER_NOTIF;
    if (::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
      return {errno, "seccomp(GET_ACTION_AVAIL, RET_USER_NOTIF)"};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return {errno, "prctl(NO_NEW_PRIVS)"};
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {1, &allow};
    long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0) return {errno, "seccomp(SET_MODE_FILTER, NEW_LISTENER)"};
    return {};
  });
  f.yes = o.err == 0;
  std::string sc = status_field("Seccomp:");
  f.detail = f.yes ? "a filter with a listener can be installed (kernel " + kernel_release() + ")"
                   : step_error(o);
  if (sc == "2") f.detail += "; this process already runs under a seccomp filter";
  return f;
}

Fact probe_ptrace() {
  Fact f{"ptrace"};
  Outcome o = in_child(0, []() -> Outcome {
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) < 0) return {errno, "ptrace(PTRACE_TRACEME)"};
    return {};
  });
  std::string scope = read_trimmed("/proc/sys/kernel/yama/ptrace_scope");
  f.yes = o.err == 0 && scope != "3";
  if (!o.err && scope == "3") f.detail = "Yama ptrace_scope is 3: ptrace is disabled";
  else if (o.err) f.detail = step_error(o);
  else
    f.detail = "a process may trace its own children" +
               (scope.empty() ? std::string() : " (Yama ptrace_scope=" + scope + ")");
  return f;
}

std::vector<Fact> probe_all() {
  return {probe_userns(),          probe_fuse_in_userns(),   probe_tun_in_userns(),
          probe_overlay_in_userns(), probe_seccomp_unotify(), probe_ptrace()};
}

}  // namespace vu
