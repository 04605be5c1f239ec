#include "runtime/net_helper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/log.h"

extern char** environ;

namespace vu {

namespace {

struct SpawnArgs {
  int ctl;
  const char* path;
  char* const* argv;
};

// vfork-style child: only open, dup2 and execve. vu-net keeps stderr (its messages) but not
// stdin/stdout: it outlives vu by the taps' teardown, and `x=$(vu run …)` must not wait for it.
int exec_helper(void* p) {
  auto* a = static_cast<SpawnArgs*>(p);
  int null = ::open("/dev/null", O_RDWR);
  if (null < 0 || (null != 0 && ::dup2(null, 0) < 0) || (null != 1 && ::dup2(null, 1) < 0)) ::_exit(125);
  if (null > 3) ::close(null);  // 3: replaced by the control socket below
  if (a->ctl == 3) {
    int fl = ::fcntl(3, F_GETFD);  // keep it across exec
    if (fl >= 0) ::fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
  } else if (::dup2(a->ctl, 3) < 0) {
    ::_exit(125);
  }
  ::execve(a->path, a->argv, environ);
  ::_exit(127);
}

}  // namespace

std::string net_helper_path() {
  if (const char* env = std::getenv("VU_NET_HELPER"); env && *env) return env;
  std::string dir = sys::exe_dir();
  return dir.empty() ? "vu-net" : dir + "/vu-net";
}

Result<NetHelper> NetHelper::spawn(std::vector<std::string> args) {
  std::string path = net_helper_path();
  if (::access(path.c_str(), X_OK) < 0)
    return Error::sys("network helper", errno, path)
        .hint("vu-net is installed next to vu and runs the network of views that use slirp or "
              "VDE; reinstall vu, or set VU_NET_HELPER");
  args.insert(args.begin(), path);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return Error::sys("socketpair", errno);
  NetHelper h;
  h.ctl_.reset(sv[0]);
  UniqueFd theirs(sv[1]);
  SpawnArgs sa{theirs.get(), path.c_str(), argv.data()};
  // vfork-style: vu resumes once vu-net has exec'ed. A fork-style clone (vu going on during
  // that execve) measured slower here: 11.6 vs 10.9 ms for `vu run -- true`, 2 cores.
  h.child_ = VU_TRY(Child::spawn(exec_helper, &sa, 0));
  h.pid_ = h.child_.pid();
  return h;
}

std::optional<NetHelper> NetHelper::prestart() {
  auto h = spawn({"--args-on-socket"});
  if (!h) return std::nullopt;
  return std::move(h).value();
}

Result<NetHelper> NetHelper::start(const vdens::NetSpec& net, std::optional<NetHelper> pre, Taps taps) {
  std::vector<std::string> args;
  if (net.stats) args.push_back("--stats");
  if (taps == Taps::kView) args.push_back("--view");
  for (const vdens::Ipv4& ip : net.ip) {
    args.push_back("--ip");
    args.push_back(ip.addr.s_addr ? vdens::to_string(ip) : "0.0.0.0/0");
  }
  for (const vdens::PortForward& f : net.forwards) {
    args.push_back("-p");
    args.push_back(f.text);
  }
  // Names on the host that vu-net holds: a switch:// directory, a forward's host port. The next
  // view may want them at once, so vu waits for vu-net to let them go (stop()).
  bool names = !net.forwards.empty();
  for (const vdens::Uplink& u : net.uplinks) {
    args.push_back(u.vnl);
    names |= u.vnl.starts_with("switch://") || u.vnl.starts_with("hub://") ||
             u.vnl.starts_with("multi://") || u.vnl.starts_with("bonding://");
  }
  if (pre) {
    std::string msg;
    for (const std::string& a : args) msg.append(a).push_back('\0');
    if (::send(pre->ctl_.get(), msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size())) {
      pre->wait_ = net.stats;
      pre->wait_release_ = names;
      return std::move(*pre);
    }
    VU_LOG_DEBUG("the vu-net started early is gone (" << std::strerror(errno) << "); starting another");
  }
  NetHelper h = VU_TRY(spawn(std::move(args)));
  h.wait_ = net.stats;
  h.wait_release_ = names;
  return h;
}

ssize_t NetHelper::read_answer(int fd, char* buf, size_t size) {
  ssize_t n;
  int resets = 0;
  while ((n = ::recv(fd, buf, size, 0)) < 0 && (errno == EINTR || (errno == ECONNRESET && resets++ == 0))) {
  }
  return n;
}

Error NetHelper::error_from(std::string_view reply) {
  if (reply.size() > 1 && reply[0] == 'E') {
    std::string text(reply.substr(1));
    size_t hint = text.find("\n  hint: ");
    Error e = Error::make(ErrorKind::kSetup, text.substr(0, hint));
    if (hint != std::string::npos) return std::move(e).hint(text.substr(hint + 9));
    return e;
  }
  return Error::make(ErrorKind::kSetup, net_helper_path() + " exited before the network was ready");
}

void NetHelper::stop() {
  if (!ctl_) return;
  if (wait_release_ && !wait_) {
    // A switch:// directory must be gone when vu returns, or the next view's vu-net finds it
    // (EEXIST); so must a forward's host port (EADDRINUSE). vu-net closes the uplinks, then its
    // end of the socket (after the view's last bytes, 1.5 s at most); the taps' teardown still
    // happens after vu has returned.
    ::shutdown(ctl_.get(), SHUT_WR);
    struct pollfd p = {ctl_.get(), POLLIN, 0};
    char c;
    while (::poll(&p, 1, 3000) > 0 && ::recv(ctl_.get(), &c, 1, MSG_DONTWAIT) > 0) {
    }
  }
  ctl_.reset();  // EOF: vu-net stops pumping, prints its statistics, closes the taps and exits
  if (!wait_) {
    // Closing a tap costs the kernel ~30 ms (RCU grace periods); vu does not wait for it.
    // vu-net finishes on its own (re-parented when vu exits) and is spared by kill_leftovers.
    child_.release();
    return;
  }
  struct pollfd p = {child_.pidfd(), POLLIN, 0};
  if (::poll(&p, 1, 2000) <= 0) {
    VU_LOG_WARN("vu-net did not stop within 2 s; killing it");
    (void)child_.signal(SIGKILL);
  }
  (void)child_.wait();
}

void NetHelper::note_exit(pid_t pid, int wait_status) {
  if (pid != pid_ || pid_ <= 0) return;
  child_.release();  // reaped by the caller
  wait_ = false;
  say_network_helper_gone("vu-net", "the view's network", pid, wait_status);
}

void say_network_helper_gone(const char* what, const char* role, pid_t pid, int wait_status) {
  std::string msg = std::string("vu: ") + what + " (pid " + std::to_string(pid) + "), " + role + ", ";
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    msg += "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  } else {
    msg += "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  msg += ": the view has no network from now on\n";
  (void)!::write(2, msg.data(), msg.size());
}

NetHelper::~NetHelper() { stop(); }

}  // namespace vu
