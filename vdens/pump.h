// vdens/pump.h — the frame pump between the view's taps and their uplinks (runs in vu-net).
//
// Theory of operation. vu-net is started by vu in the host network namespace, before the view
// exists: Pump::open() opens every uplink there (libvdeplug's vde_open, or a libslirp instance),
// so sockets keep the host's network (vdens's trick). The view's first process then creates the
// taps inside the view and hands their fds over (SCM_RIGHTS); attach() pairs them with the
// uplinks in order, and run() moves frames both ways until the control socket closes.
// Malformed frames (runts under 14 bytes, oversize, failed writes) are dropped and counted,
// never fatal. Single-threaded: one poll loop, slirp's fds and timers included.
// A "tap" may also be a frame link: a datagram socket (SOCK_SEQPACKET) whose other end is a
// user-mode stack's interface (a pvm view in stack mode, runtime/pvm_stack_net.h). attach()
// tells them apart (S_ISSOCK); a frame link is non-blocking, a full one waited for (1 s at
// most); the linger has no namespace to ask (sock_diag) — the stack lingers itself — so it
// lasts until every frame link's other end has closed (4 s at most).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "vdens/net_spec.h"
#include "vdens/port_stats.h"

namespace vu::vdens {

class Port;  // a tap and its open uplink (a VDE connection or a slirp instance)

class Pump {
 public:
  // Opens every VDE uplink of spec (in the current, host, network namespace), each bounded in
  // time (uplink_open.h; `answer_fd` gets the answer if a plugin will not give up). The error
  // names the uplink. Slirp uplinks are only noted: start() makes them.
  static Result<std::unique_ptr<Pump>> open(const NetSpec& spec, int answer_fd = -1);
  // Makes the slirp instances (loading libslirp, ~2 ms with glib) and their port forwards.
  // vu-net calls it before it answers "R" when there are forwards (a taken host port must stop
  // the view), after otherwise: the view's first frames wait in the tap meanwhile.
  Result<void> start();
  ~Pump();
  // Pairs the taps (in uplink order) with the uplinks.
  Result<void> attach(const std::vector<int>& tap_fds);
  // Pumps until `control_fd` hangs up or reads EOF, then while the view's TCP sockets still have
  // data or a FIN to deliver (sock_diag in the taps' namespace), a tap holds frames or slirp
  // holds bytes for a host socket; 1.5 s at most. A view with nothing in flight: no linger.
  Result<void> run(int control_fd);
  // Closes every uplink (a VDE port, a switch:// directory, slirp's sockets); the taps stay.
  void close_uplinks();
  // "vde0 slirp: to view 12 frames 3456 B, from view …, dropped: …" one line per port.
  std::string stats_text() const;

 private:
  Pump() = default;
  std::vector<std::unique_ptr<Port>> ports_;
};

}  // namespace vu::vdens
