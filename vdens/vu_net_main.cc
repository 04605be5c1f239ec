// vu-net — the network half of a view (started by vu; not meant to be run by hand).
//
//   vu-net [--stats] [--view] [--ip ADDR/LEN]… [-p FWD]… UPLINK…   fd 3: a SOCK_SEQPACKET socket to vu
//   vu-net --args-on-socket                                   the same arguments, later, as one
//                                                             message on fd 3 ('\0' after each);
//                                                             EOF or an empty message: exit 0
//
// The second form lets vu start vu-net before it has parsed its own command line (vu-net's
// exec and loading, ~3.5 ms here, then overlap vu's own start).
//
// Opens the uplinks here, in vu's (the host's) network namespace, receives the view's taps (one
// message, SCM_RIGHTS, in uplink order; then, maybe, the view's mount namespace, held until
// exit), and answers on fd 3 with "R" (ready); "E<message>" as soon as something fails (and
// exits). A slirp uplink
// without port forwards cannot fail but for want of memory or of libslirp itself: its instance
// is made after "R", while the view's command starts. Then it pumps frames until fd 3 reads EOF
// (vu is done or gone), lingers while the view still has data in flight (pump.h), prints the
// per-uplink statistics to stderr when --stats, closes the uplinks, then fd 3, and exits 0.
// It is a separate, dynamically linked program because libvdeplug loads its plugins with dlopen
// and libslirp brings glib, while vu itself is static for start-up time.
#include <linux/if_tun.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdens/net_spec.h"
#include "vdens/pump.h"
#include "vdens/tap.h"

namespace {

constexpr int kControlFd = 3;

void say(const std::string& msg) { (void)!::send(kControlFd, msg.data(), msg.size(), MSG_NOSIGNAL); }

int fail(const vu::Error& e) {
  say("E" + e.to_string());
  return 1;
}

// Receives one message carrying fds. Returns false on EOF (the view never started).
bool receive_taps(std::vector<int>* fds) {
  char byte;
  struct iovec iov = {&byte, 1};
  char cbuf[CMSG_SPACE(sizeof(int) * vu::vdens::kMaxPassedFds)];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  while ((n = ::recvmsg(kControlFd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return false;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  return true;
}

// The arguments of the second form. False on EOF or an empty message (vu needs no network).
bool receive_args(std::vector<std::string>* args) {
  static char buf[65536];
  ssize_t n;
  while ((n = ::recv(kControlFd, buf, sizeof buf, 0)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return false;
  for (size_t b = 0; b < static_cast<size_t>(n);) {
    size_t e = b;
    while (e < static_cast<size_t>(n) && buf[e]) ++e;
    args->emplace_back(buf + b, e - b);
    b = e + 1;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // The terminal's signals are for the view's command; vu-net ends when fd 3 closes (or vu dies).
  for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // vu may have SIGTERM blocked: PDEATHSIG needs it
  // Until the pump runs, vu's death ends vu-net (it may be blocked opening an uplink).
  ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "--args-on-socket") {
    args.clear();
    if (!receive_args(&args)) return 0;
  }
  vu::vdens::NetSpec spec;
  bool stats = false;
  bool view = false;  // the taps are a view's: its namespace goes when vu-net lets go of it
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    vu::Result<void> r = vu::Ok{};
    if (a == "--stats") stats = true;
    else if (a == "--view") view = true;
    else if (a == "--ip" && i + 1 < args.size()) r = vu::vdens::add_ip(spec, args[++i]);
    else if (a == "-p" && i + 1 < args.size()) r = vu::vdens::add_forward(spec, args[++i]);
    else r = vu::vdens::add_net(spec, a);
    if (!r) return fail(r.error());
  }
  if (auto r = vu::vdens::finish(spec); !r) return fail(r.error());
  auto pump = vu::vdens::Pump::open(spec, kControlFd);
  if (!pump) return fail(pump.error());
  const bool start_late = spec.forwards.empty();
  if (!start_late)
    if (auto r = (*pump)->start(); !r) return fail(r.error());
  // "R" once the taps are here: while the view's first process builds the view, vu-net only
  // waits (on 2 cores, loading libslirp then would compete with it for a CPU).
  std::vector<int> taps;
  if (!receive_taps(&taps)) return 0;
  say("R");
  if (start_late) {
    if (auto r = (*pump)->start(); !r) {
      std::fprintf(stderr, "vu: net: %s (the view runs without its slirp network)\n", r.error().to_string().c_str());
      return 1;
    }
  }
  // After the taps may come the view's mount namespace, lent by its first process: held until
  // vu-net exits, so that the namespace's teardown (an RCU grace period, and the eviction of
  // the unlinked resolv.conf) happens here, after vu has returned, not in the command's exit.
  if (taps.size() > spec.uplinks.size()) taps.resize(spec.uplinks.size());
  if (auto r = (*pump)->attach(taps); !r) return fail(r.error());
  // From here vu's end of fd 3 closing (vu done, or dead) is what stops the pump, and the pump
  // then lingers while the view's last frames drain: vu's exit must not kill it.
  ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  auto r = (*pump)->run(kControlFd);
  if (stats) {
    std::string text = (*pump)->stats_text();
    for (size_t b = 0, e; b < text.size(); b = e + 1) {
      e = text.find('\n', b);
      std::fprintf(stderr, "vu: net: %s\n", text.substr(b, e - b).c_str());
    }
  }
  // The uplinks go first, then vu hears EOF: a switch:// directory is gone when vu (which waits
  // for this with such uplinks) returns, so the next view can make it. The taps close at exit
  // (~30 ms of kernel work nobody waits for).
  (*pump)->close_uplinks();
  ::close(kControlFd);
  // A view's taps are made persistent before they close: closing a tap unregisters it then and
  // there, and this process would wait in exit for RCU (rcu_barrier: ~25 ms, seconds under
  // load); a persistent tap goes with its namespace, in the kernel's batched clean-up of dead
  // namespaces (a worker, like --net none's lo). Not for vu net attach: that namespace lives on.
  if (view)
    for (int t : taps) ::ioctl(t, TUNSETPERSIST, 1);
  if (!r) {
    std::fprintf(stderr, "vu: net: %s\n", r.error().to_string().c_str());
    return 1;
  }
  return 0;
}
