#include "base/child.h"

#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace vu {

Result<Child> Child::clone(unsigned long flags) {
  int pidfd = -1;
  // Raw clone with a NULL stack = fork semantics. The parent_tid argument receives the pidfd
  // (third argument on x86_64, arm64 and riscv alike).
  long r = ::syscall(SYS_clone, flags | CLONE_PIDFD | SIGCHLD, nullptr, &pidfd, nullptr, 0);
  if (r < 0) return Error::sys("clone", errno);
  Child c;
  if (r == 0) {
    c.in_child_ = true;
    return c;
  }
  c.pid_ = static_cast<pid_t>(r);
  c.pidfd_.reset(pidfd);
  return c;
}

Result<Child> Child::spawn(int (*fn)(void*), void* arg, unsigned long flags) {
  constexpr size_t kStack = 256 * 1024;
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Error::sys("mmap", errno, "(clone stack)");
  int pidfd = -1;
  int r = ::clone(fn, static_cast<char*>(stack) + kStack,
                  static_cast<int>(flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD), arg,
                  &pidfd);
  int err = errno;
  ::munmap(stack, kStack);
  if (r < 0) return Error::sys("clone", err);
  Child c;
  c.pid_ = r;
  c.pidfd_.reset(pidfd);
  return c;
}

Child Child::adopt(pid_t pid, int pidfd) {
  Child c;
  c.pid_ = pid;
  c.pidfd_.reset(pidfd);
  return c;
}

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), in_child_(o.in_child_) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    this->~Child();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    in_child_ = o.in_child_;
  }
  return *this;
}

Child::~Child() {
  if (in_child_ || pid_ <= 0 || !pidfd_) return;
  (void)signal(SIGKILL);
  (void)wait();
}

void Child::release() {
  pid_ = -1;
  pidfd_.reset();
}

Result<void> Child::signal(int sig) const {
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0)
    return Error::sys("pidfd_send_signal", errno);
  return Ok{};
}

Result<ExitStatus> Child::wait_flags(int flags, bool* exited) {
  siginfo_t info{};
  for (;;) {
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | flags) == 0) break;
    if (errno != EINTR) return Error::sys("waitid", errno);
  }
  if (info.si_pid == 0) {  // WNOHANG and still running
    *exited = false;
    return ExitStatus{};
  }
  *exited = true;
  pid_ = -1;
  pidfd_.reset();
  ExitStatus st;
  st.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  st.value = info.si_status;
  return st;
}

Result<ExitStatus> Child::wait() {
  bool exited;
  return wait_flags(0, &exited);
}

Result<ExitStatus> Child::try_wait(bool* exited) { return wait_flags(WNOHANG, exited); }

int drop_given_caps() {
  if (::getuid() == 0) return 0;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  if (::syscall(SYS_capget, &h, d) < 0) return errno;
  if (!(d[0].permitted | d[1].permitted | d[0].inheritable | d[1].inheritable)) return 0;
  __user_cap_data_struct none[2]{};
  return ::syscall(SYS_capset, &h, none) < 0 ? errno : 0;
}

}  // namespace vu
