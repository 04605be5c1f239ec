#include "fusefs/keeper.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/strings.h"
#include "base/unique_fd.h"
#include "userns/userns.h"

namespace vu::fusefs {

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        else v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

namespace {

constexpr int kMountTimeoutMs = 30000;    // a program that neither mounts nor exits
constexpr int kFlushNoticeMs = 2000;      // then say what we wait for
constexpr int kFlushDeadlineMs = 120000;  // then kill

long now_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  return "stopped";
}

std::string output_tail(int memfd) {
  std::string out = read_all(memfd);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  if (out.size() > 2000) out = "…" + out.substr(out.size() - 2000);
  return out.empty() ? " (it printed nothing)" : ", saying:\n  " + out;
}

// How messages name a mount's program: the program, or the --fuse option for a shell line.
const std::string& program_name(const FuseMount& m) { return m.argv[0] == "/bin/sh" ? m.what : m.argv[0]; }

// Starts m.argv with stdin /dev/null and stdout+stderr into `out`. Returns the pidfd.
int start(const FuseMount& m, bool ambient_sys_admin, int out, pid_t* pid_out) {
  // Its environment: ours, with the shim first in LD_PRELOAD where it goes (fuse_program_env).
  std::vector<std::string> ours;
  for (char** e = environ; *e; ++e) ours.emplace_back(*e);
  std::vector<std::string> env = fuse_program_env(m, ours);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pidfd = -1;
  struct clone_args ca {};
  ca.flags = CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) return -1;
  *pid_out = static_cast<pid_t>(pid);
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    int which;
    if (ambient_sys_admin && userns::raise_ambient(uint64_t{1} << CAP_SYS_ADMIN, &which)) {
      ::dprintf(2, "vu: cannot give %s CAP_SYS_ADMIN in the view: %s\n", m.argv[0].c_str(), ::strerror(errno));
      ::_exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    for (const std::string& a : m.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvpe(argv[0], argv.data(), env.empty() ? environ : envp.data());
    ::dprintf(2, "vu: cannot execute %s: %s\n", argv[0], ::strerror(errno));
    ::_exit(127);
  }
  return pidfd;
}

// Waits until m is mounted or its program fails. Returns an empty string, or the error.
std::string mount_one(const FuseMount& m, bool ambient_sys_admin, int mountinfo, pid_t* pid) {
  int out = ::memfd_create("vu-fuse-output", MFD_CLOEXEC);
  if (out < 0) return "memfd_create: " + std::string(::strerror(errno));
  UniqueFd out_owner(out);
  UniqueFd pidfd(start(m, ambient_sys_admin, out, pid));
  if (!pidfd) return "cannot start " + m.argv[0] + ": " + ::strerror(errno);
  const std::string& name = program_name(m);
  const long deadline = now_ms() + kMountTimeoutMs;
  for (;;) {
    // Check after arming: a change between the read and the poll still wakes us.
    std::string info = read_all(mountinfo);
    if (fuse_mounted_at(info, m.target)) return {};
    struct pollfd p[2] = {{mountinfo, POLLPRI, 0}, {pidfd.get(), POLLIN, 0}};
    int left = static_cast<int>(deadline - now_ms());
    if (left <= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
      return name + " did not mount " + m.target + " within " + std::to_string(kMountTimeoutMs / 1000) +
             " s; it was killed" + output_tail(out);
    }
    if (::poll(p, 2, left) < 0 && errno != EINTR) return "poll: " + std::string(::strerror(errno));
    if (p[1].revents & POLLIN) {
      siginfo_t si{};
      ::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &si, WEXITED);
      *pid = -1;
      if (fuse_mounted_at(read_all(mountinfo), m.target)) return {};  // it daemonized after mounting
      int status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
      return name + " " + describe_status(status) + " without mounting " + m.target + output_tail(out);
    }
  }
}

// Waits for every child (the FUSE programs, daemonized or not) of the mounts' programs.
void reap_all(const std::vector<FuseMount>& mounts, size_t n) {
  const long start_ms = now_ms();
  bool told = false;
  for (;;) {
    int status;
    pid_t p = ::waitpid(-1, &status, WNOHANG | __WALL);
    if (p > 0) continue;
    if (p < 0 && errno == ECHILD) return;
    long waited = now_ms() - start_ms;
    if (waited > kFlushNoticeMs && !told) {
      std::vector<std::string> names;
      for (size_t i = 0; i < n; ++i) names.push_back(program_name(mounts[i]));
      std::string msg = "vu: waiting for " + str::join(names, ", ") + " to finish writing…\n";
      (void)!::write(2, msg.data(), msg.size());
      told = true;
    }
    if (waited > kFlushDeadlineMs) {
      for (pid_t c : sys::children_of(::getpid())) ::kill(c, SIGKILL);
    }
    // SIGCHLD is blocked (inherited from vu): wait for it with a timeout instead of sleeping.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec ts = {0, 100 * 1000 * 1000};
    ::sigtimedwait(&chld, nullptr, &ts);
  }
}

// Unmounts what the first pids.size() mounts' programs mounted, in reverse. A program whose
// mount we cannot reach (a copy-on-write root is the view's root now, not at its staging path
// in our old root) is asked to finish: libfuse programs unmount and exit on SIGTERM.
void unmount_all(const std::vector<FuseMount>& mounts, const std::vector<pid_t>& pids) {
  for (size_t i = pids.size(); i-- > 0;) {
    if (::umount2(mounts[i].target.c_str(), 0) == 0 || ::umount2(mounts[i].target.c_str(), MNT_DETACH) == 0) continue;
    if (pids[i] > 0) ::kill(pids[i], SIGTERM);
  }
  reap_all(mounts, pids.size());
}

// The view's other mounts, bound into a copy-on-write root mounted on `stage`: every mount
// whose parent is the root mount (recursively, so /dev/pts comes with /dev), except the stage.
std::string bind_into(const std::string& stage, const std::string& mountinfo) {
  std::string root_id;
  std::vector<std::pair<std::string, std::string>> mounts;  // parent id, mount point
  for (const std::string& line : str::split(mountinfo, '\n')) {
    auto f = str::split(line, ' ');
    if (f.size() < 7) continue;
    std::string mp = unescape_mountinfo(f[4]);
    if (mp == "/") root_id = f[0];
    else mounts.emplace_back(f[1], mp);
  }
  for (const auto& [parent, mp] : mounts) {
    if (parent != root_id || mp == stage || str::starts_with(mp, stage + "/")) continue;
    std::string to = stage + mp;
    if (::mount(mp.c_str(), to.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      return "bind " + mp + " into the copy-on-write root: " + ::strerror(errno);
  }
  return {};
}

// The view runs; a FUSE program that dies now leaves its mount answering ENOTCONN, which its
// users cannot tell from a bug of their own: say which program died and how. `owner` maps the
// pids to watch (each program, or what it daemonized into) to their mount.
void say_died(const std::vector<FuseMount>& mounts, std::vector<std::pair<pid_t, size_t>>& owner, pid_t pid, int status) {
  for (auto& [p, i] : owner) {
    if (p != pid) continue;
    p = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      // A program that daemonizes after mounting (fuse2fs, squashfuse): its parent leaves with
      // 0 and the daemon, reparented to us (a subreaper), is the one to watch. A FUSE program
      // also exits 0 when its filesystem was unmounted: nothing to say then either.
      const size_t mount = i;
      for (pid_t c : sys::children_of(::getpid())) {
        bool known = false;
        for (const auto& o : owner) known = known || o.first == c;
        if (!known) owner.emplace_back(c, mount);
      }
      return;
    }
    std::string msg = "vu: " + mounts[i].what + " " + describe_status(status) + " while the view ran: " +
                      mounts[i].target + " is unreachable now (ENOTCONN)\n";
    (void)!::write(2, msg.data(), msg.size());
  }
}

// Waits for end of file on control_fd (the view is over, or vu died), reaping the programs
// that exit meanwhile (SIGCHLD is blocked here, inherited from vu: a signalfd reads it).
void wait_for_teardown(const std::vector<FuseMount>& mounts, std::vector<pid_t>& pids,
                       std::vector<std::pair<pid_t, size_t>>& owner, int control_fd) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  UniqueFd sfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  for (;;) {
    struct pollfd p[2] = {{control_fd, POLLIN, 0}, {sfd.get(), POLLIN, 0}};
    if (::poll(p, sfd ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) > 0) {
      }
      int status;
      for (pid_t c; (c = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0;) {
        say_died(mounts, owner, c, status);
        for (pid_t& q : pids)
          if (q == c) q = -1;
      }
    }
    if (p[0].revents) {
      char c;
      ssize_t r = ::read(control_fd, &c, 1);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return;
    }
  }
}

}  // namespace

bool fuse_mounted_at(const std::string& mountinfo, const std::string& target) {
  bool fuse = false;
  for (const std::string& line : str::split(mountinfo, '\n')) {
    auto f = str::split(line, ' ');
    if (f.size() < 7 || unescape_mountinfo(f[4]) != target) continue;
    size_t dash = line.find(" - ");
    fuse = dash != std::string::npos && str::starts_with(line.substr(dash + 3), "fuse");
  }
  return fuse;
}

void keeper_main(const KeeperArgs& a) {
  // Only our two pipes (if vu dies, control_fd reaches EOF and we tear down): the first process's report pipe must reach EOF when it executes.
  for (int fd = 3; fd < 1024; ++fd)
    if (fd != a.ready_fd && fd != a.control_fd) ::close(fd);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  const std::vector<FuseMount>& mounts = *a.mounts;
  std::vector<pid_t> pids;  // one per program started, in order (-1: it has exited)
  std::vector<std::pair<pid_t, size_t>> owner;  // the processes whose death we report, and their mount
  std::string error;
  {
    UniqueFd info(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
    if (!info) error = "open /proc/self/mountinfo: " + std::string(::strerror(errno));
    for (size_t i = 0; error.empty() && i < mounts.size(); ++i) {
      pid_t pid = -1;
      error = mount_one(mounts[i], a.ambient_sys_admin, info.get(), &pid);
      pids.push_back(pid);
      if (pid > 0) {
        owner.emplace_back(pid, i);
      } else if (error.empty()) {
        // It daemonized: the daemon is our child now (we are a subreaper), the only new one.
        for (pid_t c : sys::children_of(::getpid())) {
          bool known = false;
          for (const auto& o : owner) known = known || o.first == c;
          if (!known) owner.emplace_back(c, i);
        }
      }
      if (error.empty() && mounts[i].new_root) error = bind_into(mounts[i].target, read_all(info.get()));
    }
  }
  if (!error.empty()) {
    unmount_all(mounts, pids);
    std::string msg = "E" + error;
    (void)!::write(a.ready_fd, msg.data(), msg.size());
    ::_exit(1);
  }
  (void)!::write(a.ready_fd, "R", 1);
  ::close(a.ready_fd);
  wait_for_teardown(mounts, pids, owner, a.control_fd);
  unmount_all(mounts, pids);
  ::_exit(0);
}

}  // namespace vu::fusefs
