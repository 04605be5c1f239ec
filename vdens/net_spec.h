// vdens/net_spec.h — what network a view gets, as plain data (shared by vu and vu-net).
//
//   (no --net)                 slirp, as below: the default
//   --net host                 no network namespace (the host's network)
//   --net none                 a private network namespace with lo only
//   --net slirp[:OPT,…]        NAT through libslirp in vu-net; OPT: allow-host-loopback
//   --net VNL                  a VDE network through libvdeplug (vde://…, switch://…, ptp://…, …)
//   --net join:PATH|NAME       an existing network namespace (NAME: /run/netns/NAME, e.g. the
//                              one pam_usernet gave you), joined by vu before the view exists
// Uplinks are plugged, in order, into taps vde0, vde1, … in the view's network namespace.
//   --ip ADDR/LEN, --gw ADDR   static IPv4 configuration of vde0 (slirp: defaults below)
//   --dns ADDR                 nameservers written to the view's /etc/resolv.conf
//   -p [HOSTIP:]HPORT:VPORT[/udp]  slirp port forward (host default 127.0.0.1);
//                              HOSTIP "[::1]" forwards over IPv6 to the view's fd00::100
#pragma once

#include <netinet/in.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace vu::vdens {

enum class NetKind { kHost, kNone, kUplinks, kJoin };

struct Uplink {
  bool slirp = false;
  std::string vnl;                   // VDE: the VNL as given; slirp: "slirp[:opts]"
  bool allow_host_loopback = false;  // slirp
  bool operator==(const Uplink&) const = default;
};

struct Ipv4 {
  in_addr addr{};
  int prefix = 0;
};

struct PortForward {
  bool udp = false;
  bool v6 = false;       // "[ADDR6]:HPORT:VPORT": host_addr6 → the view's fd00::100
  in_addr host_addr{};
  in6_addr host_addr6{};
  int host_port = 0;
  int view_port = 0;
  std::string text;  // as given, for messages
};

// Slirp's network, as slirp4netns and vdens use it.
inline constexpr const char* kSlirpNet = "10.0.2.0";
inline constexpr const char* kSlirpGateway = "10.0.2.2";
inline constexpr const char* kSlirpDns = "10.0.2.3";
inline constexpr const char* kSlirpAddress = "10.0.2.100";
inline constexpr int kSlirpPrefix = 24;
inline constexpr const char* kSlirpPrefix6 = "fd00::";
inline constexpr const char* kSlirpGateway6 = "fd00::2";
inline constexpr const char* kSlirpDns6 = "fd00::3";
inline constexpr const char* kSlirpAddress6 = "fd00::100";
inline constexpr int kSlirpMtu = 65520;
inline constexpr int kVdeMtu = 1500;
inline constexpr int kVdeMaxMtu = 9216 - 14 - 4;  // VDE_MAXMTU less the Ethernet header and a VLAN tag

struct NetSpec {
  NetKind kind = NetKind::kHost;
  bool host_or_none_given = false;  // --net host/none was said (not the default)
  bool defaulted = false;  // no --net at all: finish() chose slirp (the pvm backend may use host)
  std::vector<Uplink> uplinks;
  std::string join;  // kJoin: the namespace file
  std::vector<Ipv4> ip;          // per interface, in order (vde0, vde1, …)
  std::vector<in_addr> gateway;  // at most one default route
  std::vector<std::string> dns;
  std::vector<PortForward> forwards;
  bool stats = false;
  int mtu = 0;  // --mtu: for every tap; 0 = slirp 65520, VDE 1500
  // vdens compatibility: taps (and lo) are left down and unaddressed, named PREFIX0, PREFIX1, …
  bool configure_links = true;
  std::string iface_prefix = "vde";
};

// A network namespace named on the command line: a path as is, NAME as /run/netns/NAME (where
// `ip netns` and pam_usernet keep them).
std::string netns_path(std::string_view name_or_path);

// Adds one --net value. "host" and "none" cannot be combined with uplinks.
Result<void> add_net(NetSpec& spec, std::string_view value);
Result<void> add_ip(NetSpec& spec, std::string_view value);
Result<void> set_gateway(NetSpec& spec, std::string_view value);
Result<void> add_dns(NetSpec& spec, std::string_view value);
Result<void> add_forward(NetSpec& spec, std::string_view value);
// --mtu N: 576 to 65520 (VDE networks carry at most 9216-byte frames).
Result<void> set_mtu(NetSpec& spec, std::string_view value);
// Cross-option checks (forwards need slirp, …) and slirp defaults (address, gateway, DNS).
Result<void> finish(NetSpec& spec);

std::string to_string(const Ipv4& ip);
std::string to_string(in_addr a);

}  // namespace vu::vdens
