// vdens/sock_diag.h — asks a view's network namespace whether its TCP sockets still have data
// to deliver (NETLINK_SOCK_DIAG), so that vu-net lingers after the command only while they do.
//
//   UniqueFd diag = VU_TRY(vu::vdens::open_diag(tap_fd));  // a socket in the tap's namespace
//   bool busy = VU_TRY(vu::vdens::tcp_in_flight(diag.get()));
//
// The socket is made inside the namespace (a netlink socket answers for the namespace it was
// made in) by a vfork-style child sharing vu-net's fd table: it joins the namespace's owning
// user namespace (vu-net's uid owns it, from the parent namespace: every capability there) and
// the network namespace, makes the socket, and exits. The tap names its namespace
// (TUNGETDEVNETNS). Not thread-safe; call from vu-net's single pump thread.
#pragma once

#include "base/error.h"
#include "base/unique_fd.h"

namespace vu::vdens {

// A NETLINK_SOCK_DIAG socket in the network namespace `tap` belongs to.
Result<UniqueFd> open_diag(int tap);
// Whether a TCP socket (IPv4 or IPv6) there has a FIN or data not yet acknowledged: states
// FIN-WAIT-1, CLOSING, LAST-ACK, or ESTABLISHED/CLOSE-WAIT with a non-empty send queue.
Result<bool> tcp_in_flight(int diag);

}  // namespace vu::vdens
