// vdens/sock_diag.h — asks a view's network namespace whether its TCP sockets still have data
// to deliver, so that vu-net lingers after the command only while they do.
//
//   ViewNetns ns = VU_TRY(vu::vdens::open_view_netns(tap_fd));   // in the tap's namespace
//   if (tcp_sockets(ns) > 0 && VU_TRY(tcp_in_flight(ns.diag.get()))) …keep pumping…
//
// The files are opened inside the namespace (a netlink socket, and /proc/PID/net files, answer
// for the namespace they were opened in) by a vfork-style child sharing vu-net's fd table: it
// joins the namespace's owning user namespace (vu-net's uid owns it, from the parent
// namespace: every capability there) and the network namespace, opens them, and exits. The tap
// names its namespace (TUNGETDEVNETNS). Cost: the count (sockstat's "inuse") is a read of a
// few bytes; a sock_diag dump walks the kernel's whole TCP hash tables, shared by all
// namespaces (~2 ms on a host with a large table), so it is only asked when the count is not
// zero. Not thread-safe; call from vu-net's single pump thread.
#pragma once

#include "base/error.h"
#include "base/unique_fd.h"

namespace vu::vdens {

struct ViewNetns {
  UniqueFd diag;                  // NETLINK_SOCK_DIAG
  UniqueFd sockstat, sockstat6;   // /proc/net/sockstat{,6} of the namespace
};

// The files above, for the network namespace `tap` belongs to.
Result<ViewNetns> open_view_netns(int tap);
// How many TCP sockets (IPv4 and IPv6, TIME-WAIT not counted) the namespace has; -1: unknown.
int tcp_sockets(const ViewNetns& ns);
// Whether a TCP socket (IPv4 or IPv6) there has a FIN or data not yet acknowledged: states
// FIN-WAIT-1, CLOSING, LAST-ACK, or ESTABLISHED/CLOSE-WAIT with a non-empty send queue.
Result<bool> tcp_in_flight(int diag);

}  // namespace vu::vdens
