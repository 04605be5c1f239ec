#include "runtime/supervisor.h"

#include <poll.h>
#include <sys/signalfd.h>

#include <cerrno>

#include "base/log.h"

namespace vu {

namespace {
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};
}

Result<SignalForwarder> SignalForwarder::install() {
  SignalForwarder s;
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwarded) sigaddset(&set, sig);
  if (::sigprocmask(SIG_BLOCK, &set, &s.old_) < 0) return Error::sys("sigprocmask", errno);
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    ::sigprocmask(SIG_SETMASK, &s.old_, nullptr);
    return Error::sys("signalfd", err);
  }
  s.fd_.reset(fd);
  return s;
}

SignalForwarder::~SignalForwarder() {
  if (fd_) ::sigprocmask(SIG_SETMASK, &old_, nullptr);
}

Result<ExitStatus> supervise(Child& child, const SignalForwarder& signals) {
  struct pollfd fds[2] = {{child.pidfd(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return Error::sys("poll", errno);
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(signals.fd(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        // SI_KERNEL: from the terminal, already delivered to the command's process group.
        if (si.ssi_code == SI_KERNEL) continue;
        VU_LOG_DEBUG("forwarding signal " << si.ssi_signo << " to pid " << child.pid());
        (void)child.signal(static_cast<int>(si.ssi_signo));
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) return child.wait();
  }
}

}  // namespace vu
