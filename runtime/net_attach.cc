#include "runtime/net_attach.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/unique_fd.h"
#include "runtime/net_helper.h"
#include "vdens/tap.h"

namespace vu {

namespace {
Error tap_error(const char* what, int err, const std::string& name) {
  Error e = Error::sys(what, err, name);
  if (err == EPERM || err == EACCES)
    return std::move(e).hint("a tap in this network namespace needs CAP_NET_ADMIN over it, e.g. "
                             "cado net_admin -- vu net attach …");
  return e;
}
}  // namespace

Result<void> join_netns(const std::string& path, const char* what) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return Error::sys(std::string(what) + ": open", errno, path, ErrorKind::kUsage)
        .hint(errno == ENOENT ? "no network namespace there; `ip netns list` shows the named ones"
                              : "the namespace file must be readable by you");
  if (::setns(fd.get(), CLONE_NEWNET) < 0) {
    int err = errno;
    Error e = Error::sys(std::string(what) + ": setns", err, path,
                         err == EINVAL ? ErrorKind::kUsage : ErrorKind::kDenied);
    if (err == EPERM)
      return std::move(e).hint("joining a network namespace needs CAP_SYS_ADMIN over it: ask cado for "
                               "it (cado sys_admin -- vu run --net join:…), or run inside it (pam_usernet "
                               "sessions already are) with --net host");
    if (err == EINVAL) return std::move(e).hint(path + " is not a network namespace");
    return e;
  }
  return Ok{};
}

Result<int> net_attach(const AttachSpec& spec) {
  const vdens::NetSpec& net = spec.net;
  if (net.uplinks.size() != 1) return Error::usage("vu net attach: give exactly one network (VNL or slirp)");
  if (spec.name.empty() || spec.name.size() >= IFNAMSIZ)
    return Error::usage("vu net attach --name: 1 to " + std::to_string(IFNAMSIZ - 1) + " characters");
  // Signals first, so a ^C during set-up still tears down through the normal path.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0) return Error::sys("sigprocmask", errno);
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!sfd) return Error::sys("signalfd", errno);

  // The uplink opens here, in vu's namespace.
  NetHelper helper = VU_TRY(NetHelper::start(net, std::nullopt, NetHelper::Taps::kAttach));
  if (!spec.netns.empty()) VU_TRY_VOID(join_netns(spec.netns, "--netns"));
  int tap;
  if (int e = vdens::open_tap(spec.name.c_str(), &tap)) return tap_error("create tap", e, spec.name);
  UniqueFd tap_owner(tap);
  const bool slirp = net.uplinks[0].slirp;
  const int mtu = net.mtu ? net.mtu : slirp ? vdens::kSlirpMtu : vdens::kVdeMtu;
  const in_addr* addr = net.ip.empty() ? nullptr : &net.ip[0].addr;
  if (int e = vdens::configure_if(spec.name.c_str(), mtu, addr, addr ? net.ip[0].prefix : 0))
    return tap_error("configure", e, spec.name);
  if (!net.gateway.empty()) {
    if (int e = vdens::add_default_route(net.gateway[0]))
      return Error::sys("add default route via", e, vdens::to_string(net.gateway[0]));
  }
  if (int e = vdens::send_fds(helper.view_socket(), &tap, 1)) return Error::sys("hand the tap to vu-net", e);
  tap_owner.reset();
  // vu-net's answer (it bounds its own steps), or a signal: ^C ends a start that waits.
  struct pollfd w[2] = {{sfd.get(), POLLIN, 0}, {helper.view_socket(), POLLIN, 0}};
  while (::poll(w, 2, -1) < 0 && errno == EINTR) {
  }
  if (w[0].revents & POLLIN) {
    struct signalfd_siginfo si {};
    (void)!::read(sfd.get(), &si, sizeof si);
    return 128 + static_cast<int>(si.ssi_signo);
  }
  char answer[4096];
  ssize_t n = NetHelper::read_answer(helper.view_socket(), answer, sizeof answer);
  if (n != 1 || answer[0] != 'R') return NetHelper::error_from(n > 0 ? std::string_view(answer, static_cast<size_t>(n)) : "");
  std::fprintf(stderr, "vu: %s attached to %s%s%s; SIGINT or SIGTERM detaches it\n", spec.name.c_str(),
               net.uplinks[0].vnl.c_str(), spec.netns.empty() ? "" : " in ", spec.netns.c_str());
  // Until a signal, or vu-net ends (the uplink went away): vu-net closes its end of the socket.
  struct pollfd p[2] = {{sfd.get(), POLLIN, 0}, {helper.view_socket(), POLLIN, 0}};
  while (::poll(p, 2, -1) < 0 && errno == EINTR) {
  }
  const bool by_signal = p[0].revents & POLLIN;
  helper.stop();
  return by_signal ? 0 : 1;
}

}  // namespace vu
