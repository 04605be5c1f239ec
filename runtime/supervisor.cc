#include "runtime/supervisor.h"

#include <dirent.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"

namespace vu {

namespace {
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

ExitStatus from_wait_status(int status) {
  ExitStatus st;
  st.signaled = WIFSIGNALED(status);
  st.value = st.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
  return st;
}

// Reaps every child that has exited (and lets the pvm monitor answer the ptrace stops among the
// wait statuses); returns true and fills *st when one of them was `main`.
bool reap_exited(pid_t main, ExitStatus* st, pvm::Monitor* monitor,
                 const std::function<void(pid_t, int)>& on_other_exit) {
  bool found = false;
  for (;;) {
    int status;
    pid_t p = ::waitpid(-1, &status, WNOHANG | __WALL);
    if (p <= 0) return found;
    if (monitor && monitor->on_wait_status(p, status)) continue;
    if (p == main) {
      *st = from_wait_status(status);
      found = true;
    } else if (on_other_exit) {
      on_other_exit(p, status);
    }
  }
}

}  // namespace

Result<SignalForwarder> SignalForwarder::install() {
  SignalForwarder s;
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwarded) sigaddset(&set, sig);
  sigaddset(&set, SIGCHLD);
  if (::sigprocmask(SIG_BLOCK, &set, &s.old_) < 0) return Error::sys("sigprocmask", errno);
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    ::sigprocmask(SIG_SETMASK, &s.old_, nullptr);
    return Error::sys("signalfd", err);
  }
  s.fd_.reset(fd);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    return Error::sys("prctl", errno, "(PR_SET_CHILD_SUBREAPER)");
  return s;
}

SignalForwarder::~SignalForwarder() {
  if (fd_) ::sigprocmask(SIG_SETMASK, &old_, nullptr);
}

namespace {

// The children of vu still there but `spare`. Every process of the view was made after vu:
// above vu's pid, unless the pid counter has wrapped since (the last pid handed out is then
// below ours), when every pid is looked at.
std::vector<pid_t> leftover_children(const std::vector<pid_t>& spare) {
  const pid_t self = ::getpid();
  pid_t above = 0;
  if (auto last = sys::read_file("/proc/sys/kernel/ns_last_pid"); last && std::atol(last->c_str()) > self)
    above = self;
  std::vector<pid_t> kids = sys::children_of(self, above);
  std::erase_if(kids, [&](pid_t p) { return std::find(spare.begin(), spare.end(), p) != spare.end(); });
  return kids;
}

}  // namespace

int kill_children(const std::vector<pid_t>& spare) {
  int killed = 0;
  for (pid_t p : leftover_children(spare))
    if (::kill(p, SIGKILL) == 0) ++killed;
  return killed;
}

int kill_leftovers(std::vector<pid_t> spare) {
  int killed = 0;
  // No child at all (the common case): nothing to list. WNOWAIT: a status waiting to be read
  // stays there — a ptrace stop of a FUSE program still running (PvmFuse::teardown calls this
  // before it serves the last stops) read and dropped here was never resumed, and vu waited for
  // that program for ever.
  siginfo_t si{};
  if (::waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) < 0 && errno == ECHILD) return 0;
  // Each round kills the current children; their own children arrive as orphans next round.
  for (int round = 0; round < 1000; ++round) {
    std::vector<pid_t> kids = leftover_children(spare);
    if (kids.empty()) break;
    for (pid_t p : kids) {
      if (::kill(p, SIGKILL) == 0) ++killed;
    }
    // A killed multithreaded process that vu traces (pvm) is reapable only once its other
    // threads' exits are reaped, each by its tid: waitpid(p) alone waited for ever on such a
    // zombie (seen with fuse2fs in environment B). (Not waitpid(-1): it would take the ptrace
    // stops of the spared processes, which the caller still serves.)
    for (pid_t p : kids) {
      for (;;) {
        pid_t r = ::waitpid(p, nullptr, __WALL | WNOHANG);
        if (r == p || (r < 0 && errno != EINTR)) break;
        if (DIR* d = ::opendir(("/proc/" + std::to_string(p) + "/task").c_str())) {
          while (struct dirent* e = ::readdir(d)) {
            const pid_t t = static_cast<pid_t>(std::atol(e->d_name));
            if (t > 0 && t != p) (void)::waitpid(t, nullptr, __WALL | WNOHANG);
          }
          ::closedir(d);
        }
        ::usleep(1000);
      }
    }
  }
  return killed;
}

Result<ExitStatus> supervise(Child& child, const SignalForwarder& signals, SuperviseExtras extras) {
  const pid_t main = child.pid();
  ExitStatus st;
  // The pvm monitor answers its notifications on threads of its own; this loop hands it the
  // ptrace stops among the wait statuses (reap_exited), and resumes the stops its ptrace
  // workers have worked out (ptrace requests must come from this thread, the tracer).
  struct pollfd pfd[3] = {{signals.fd(), POLLIN, 0},
                          {extras.report_fd, POLLIN, 0},
                          {extras.monitor ? extras.monitor->fd() : -1, POLLIN, 0}};
  for (bool done = false; !done;) {
    if (::poll(pfd, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return Error::sys("poll", errno);
    }
    if (pfd[2].revents & POLLIN) extras.monitor->on_ptrace_done();
    if (pfd[1].revents) {
      char buf[512];
      ssize_t n = ::read(pfd[1].fd, buf, sizeof buf);
      if (n > 0 && extras.report) extras.report->append(buf, static_cast<size_t>(n));
      if (n <= 0) pfd[1].fd = -1;  // EOF: the command was executed
    }
    if (!(pfd[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si;
    while (::read(signals.fd(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGCHLD) continue;  // reaped below, whichever child it was
      // SI_KERNEL: from the terminal, already delivered to the command's process group.
      if (si.ssi_code == SI_KERNEL) continue;
      VU_LOG_DEBUG("forwarding signal " << si.ssi_signo << " to pid " << main);
      (void)child.signal(static_cast<int>(si.ssi_signo));
    }
    done = reap_exited(main, &st, extras.monitor, extras.on_other_exit);
  }
  child.release();  // reaped above
  return st;
}

}  // namespace vu
