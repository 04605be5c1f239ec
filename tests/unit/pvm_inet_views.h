// tests/unit/pvm_inet_views.h — the slirp-like network of a pvm view as vu sets it up (the
// addresses of README's "Network"), for the pvm network unit tests.
#pragma once

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include "pvm/inet.h"

namespace vu::pvm {

inline NetConfig test_view(NetConfig::Kind kind, bool host_loopback = false) {
  NetConfig n;
  n.kind = kind;
  n.allow_host_loopback = host_loopback;
  ::inet_pton(AF_INET, "10.0.2.100", &n.addr);
  ::inet_pton(AF_INET, "10.0.2.2", &n.gateway);
  ::inet_pton(AF_INET, "10.0.2.3", &n.dns);
  ::inet_pton(AF_INET6, "fd00::100", &n.addr6);
  ::inet_pton(AF_INET6, "fd00::2", &n.gateway6);
  ::inet_pton(AF_INET6, "fd00::3", &n.dns6);
  EXPECT_EQ(net_setup(n), "");
  return n;
}

}  // namespace vu::pvm
