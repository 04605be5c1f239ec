// runtime/net_attach.h — `vu net attach`: plug an existing network namespace into VDE or slirp.
//
//   vu net attach [--netns PATH|NAME] [--name IF] [--ip A/L] [--gw G] [--mtu N] [--net-stats] VNL
//
// A tap (default vde0) is created in the current network namespace — or in --netns, joined after
// the uplink is open, so the uplink itself lives where vu was started (vdens's rule) — and
// handed to vu-net, which pumps frames until vu is told to stop (SIGINT, SIGTERM, SIGHUP) or the
// uplink ends. The tap goes away with vu-net: nothing is left behind. Making a tap needs
// CAP_NET_ADMIN over the namespace (a pam_usernet session's namespace is root's:
// `cado net_admin -- vu net attach vde:///tmp/sw`); joining another one needs CAP_SYS_ADMIN.
#pragma once

#include <string>

#include "base/error.h"
#include "vdens/net_spec.h"

namespace vu {

struct AttachSpec {
  vdens::NetSpec net;  // one uplink, its --ip/--gw/--mtu
  std::string netns;   // empty: the current one
  std::string name = "vde0";
};

// Makes this process (single-threaded) enter the network namespace at `path`; `what` names the
// option in messages ("--net join", "--netns"). EPERM says to ask cado for CAP_SYS_ADMIN.
Result<void> join_netns(const std::string& path, const char* what);

// Runs until stopped; returns vu's exit status.
Result<int> net_attach(const AttachSpec& spec);

}  // namespace vu
