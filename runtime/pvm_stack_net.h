// runtime/pvm_stack_net.h — stack mode: the pvm views whose network the host-socket path of
// pvm/inet.h cannot give (issue 15).
//
// A pvm view's default network (one slirp --net) is host sockets with translated addresses: the
// fast path, untouched here. Two things it cannot do:
//   - several --net (vde0, vde1, … as on ns): a host socket belongs to the host's one stack, and
//     which network a socket uses is only known at connect/bind/sendto, after it was made;
//   - --net-stats on slirp: the bytes go through host sockets vu never sees; there are no frames.
// Those views run in *stack mode*: every AF_INET/AF_INET6 socket of the view is served by
// vu-vstack (lwIP, pvm/vstack.h), which gets one interface per --net, vde0, vde1, …, named,
// addressed and routed as the ns backend configures its taps (same --ip defaults, slirp's
// fd00::100/64 and IPv6 default route on a first slirp interface, the IPv4 default route on the
// interface whose subnet holds --gw, the same resolv.conf). Each interface is a frame link: a
// SOCK_SEQPACKET socketpair whose other end vu-net's pump (vdens/pump.h) pairs with the uplink
// exactly as it pairs a tap on ns — libslirp with its -p forwards and allow-host-loopback, or a
// VDE connection — so --net-stats prints vu-net's own lines, in ns's order and words, and a
// bad uplink gets ns's message. vu-net's ends are sent on its control socket where the ns
// view's first process sends its taps; vu-vstack gets the others on fds 4….
// Why VDE uplinks go through vu-net too (and not libvdeplug in vu-vstack, as a single VDE
// network does): one pump for every uplink of the view gives the --net-stats lines and the
// uplink errors of ns from one place, and vu-vstack stays one kind of link in stack mode; the
// cost is one more hop (a socketpair and vu-net's loop) per frame, for multi-network views only.
// Why not libslirp in vu-vstack: vu-net's pump already has the slirp instance, its timers and
// poll loop, the forwards and their error messages, the UDP-forward readdressing and the ACK
// coalescing (~450 lines); a second copy would drift. bench/net_pvm_stack.sh measures view→host
// TCP: stack mode 0.31× ns's slirp (808 vs 2620 Mbit/s at load 7; pvm's default 3.56×) —
// lwIP's 1460-byte segments through slirp, where ns sends 64 KiB ones (pvm/vstack.h). Stack mode
// is for the views that need it only.
// End: vu closes vu-vstack's channel and waits for it (its linger, ≤3.5 s); vu-vstack's exit
// closes the frame links, and vu-net, once vu closes its control socket, pumps until they are
// all closed (≤4 s), prints --net-stats, exits.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "pvm/inet.h"
#include "runtime/net_helper.h"
#include "vdens/net_spec.h"

namespace vu {

// Whether a pvm view with this network runs in stack mode; `why` (when not null) says why, for
// --explain.
bool pvm_stack_mode(const vdens::NetSpec& net, std::string* why = nullptr);
// Starts vu-net with the view's uplinks and vu-vstack with one frame link per uplink, and fills
// `n` (kVde, its links). The helper is vu-net: stop it after pvm_stack_finish.
Result<void> pvm_stack_network(const vdens::NetSpec& net, pvm::NetConfig& n, std::optional<NetHelper>* helper);
// The view's end: vu-vstack's linger waited for, then vu-net stopped (--net-stats printed).
void pvm_stack_finish(pvm::VStack* stack, std::optional<NetHelper>* helper);

}  // namespace vu
