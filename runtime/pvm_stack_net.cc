// runtime/pvm_stack_net.cc — stack mode of pvm views (the design is in the header).
#include "runtime/pvm_stack_net.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/unique_fd.h"
#include "pvm/vstack.h"
#include "vdens/tap.h"

namespace vu {

bool pvm_stack_mode(const vdens::NetSpec& net, std::string* why) {
  if (net.kind != vdens::NetKind::kUplinks) return false;
  bool slirp = false;
  for (const vdens::Uplink& u : net.uplinks) slirp |= u.slirp;
  std::string w;
  if (net.uplinks.size() > 1) w = std::to_string(net.uplinks.size()) + " networks (a host socket belongs to one)";
  else if (net.stats && slirp) w = "--net-stats on slirp (host sockets have no frames to count)";
  if (why) *why = w;
  return !w.empty();
}

Result<void> pvm_stack_network(const vdens::NetSpec& net, pvm::NetConfig& n, std::optional<NetHelper>* helper) {
  n.kind = pvm::NetConfig::kVde;
  n.configure = net.configure_links;
  ::inet_pton(AF_INET6, vdens::kSlirpAddress6, &n.addr6);
  ::inet_pton(AF_INET6, vdens::kSlirpGateway6, &n.gateway6);
  for (size_t i = 0; i < net.uplinks.size(); ++i) {
    pvm::NetConfig::Link l;
    l.slirp = net.uplinks[i].slirp;
    if (i < net.ip.size()) l.addr = net.ip[i].addr, l.prefix = net.ip[i].prefix;
    l.mtu = net.mtu ? net.mtu : l.slirp ? vdens::kSlirpMtu : vdens::kVdeMtu;
    n.links.push_back(l);
  }
  if (!net.gateway.empty()) n.gateway = net.gateway[0];
  n.mtu = n.links[0].mtu;
  // vu-net with every uplink (opened now, in the host's network, as for ns), then the frame
  // links where an ns view's first process sends its taps.
  NetHelper h = VU_TRY(NetHelper::start(net));
  std::vector<UniqueFd> pump_ends, stack_ends;
  std::vector<int> fds;
  for (size_t i = 0; i < net.uplinks.size(); ++i) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) return Error::sys("socketpair", errno);
    pump_ends.emplace_back(sp[0]);
    stack_ends.emplace_back(sp[1]);
    fds.push_back(sp[0]);
  }
  // vu-net answers once every uplink is open (each bounded in time: vdens/uplink_open.h) and
  // its forwards are listening; an uplink it could not open is answered at once ("E…", and it
  // exits: the frame links may not even reach it, NetHelper::read_answer).
  if (int e = vdens::send_fds(h.view_socket(), fds.data(), static_cast<int>(fds.size())); e && e != EPIPE)
    return Error::sys("hand the frame links to vu-net", e);
  pollfd p{h.view_socket(), POLLIN, 0};
  int ready;
  while ((ready = ::poll(&p, 1, 15000)) < 0 && errno == EINTR) {
  }
  if (ready == 0)
    return Error::make(ErrorKind::kSetup, "vu-net did not answer within 15 s")
        .hint("an uplink took too long to open; check that the switch or plug program answers");
  char buf[4096];
  ssize_t k = NetHelper::read_answer(h.view_socket(), buf, sizeof buf);
  std::string reply(buf, k > 0 ? static_cast<size_t>(k) : 0);
  if (reply != "R") return NetHelper::error_from(reply);
  pump_ends.clear();
  std::vector<int> stack_fds;
  for (const UniqueFd& f : stack_ends) stack_fds.push_back(f.get());
  n.vstack = VU_TRY(pvm::vstack_start_frames(stack_fds));
  helper->emplace(std::move(h));
  return Ok{};
}

void pvm_stack_finish(pvm::VStack* stack, std::optional<NetHelper>* helper) {
  if (stack) pvm::vstack_finish(*stack);
  if (*helper) (*helper)->stop();
}

}  // namespace vu
