#include "vdens/net_spec.h"

#include <arpa/inet.h>

#include "base/strings.h"

namespace vu::vdens {

namespace {

Result<in_addr> parse_addr(std::string_view opt, std::string_view s) {
  in_addr a{};
  std::string str(s);
  if (::inet_pton(AF_INET, str.c_str(), &a) != 1)
    return Error::usage(std::string(opt) + " " + str::quote(s) + ": not an IPv4 address");
  return a;
}

Result<int> parse_port(std::string_view what, std::string_view s) {
  unsigned long v;
  if (!str::parse_uint(s, 65535, &v) || v == 0)
    return Error::usage(std::string(what) + ": " + str::quote(s) + " is not a port (1-65535)");
  return static_cast<int>(v);
}

}  // namespace

std::string to_string(in_addr a) {
  char buf[INET_ADDRSTRLEN];
  return ::inet_ntop(AF_INET, &a, buf, sizeof buf) ? buf : "?";
}

std::string to_string(const Ipv4& ip) { return to_string(ip.addr) + "/" + std::to_string(ip.prefix); }

std::string netns_path(std::string_view n) {
  return !n.empty() && n[0] == '/' ? std::string(n) : "/run/netns/" + std::string(n);
}

Result<void> add_net(NetSpec& spec, std::string_view v) {
  if (v == "host" || v == "none") {
    if (spec.kind == NetKind::kUplinks)
      return Error::usage("--net " + std::string(v) + " cannot be combined with network uplinks");
    spec.kind = v == "host" ? NetKind::kHost : NetKind::kNone;
    spec.host_or_none_given = true;
    return Ok{};
  }
  if (str::starts_with(v, "join:")) {
    std::string_view t = v.substr(5);
    if (t.empty() || spec.kind != NetKind::kHost || spec.host_or_none_given)
      return Error::usage("--net " + str::quote(v) + (t.empty() ? ": expected join:PATH or join:NAME"
                                                                 : ": a joined namespace cannot be combined with other --net values"))
          .hint("e.g. --net join:/run/netns/NAME or --net join:NAME");
    spec.kind = NetKind::kJoin;
    spec.join = netns_path(t);
    spec.host_or_none_given = true;
    return Ok{};
  }
  if (spec.host_or_none_given)
    return Error::usage("--net " + std::string(v) + " cannot be combined with --net " +
                        (spec.kind == NetKind::kHost ? "host" : spec.kind == NetKind::kJoin ? "join:…" : "none"));
  Uplink u;
  u.vnl = std::string(v);
  // "slirp[:opts]" is vu's embedded slirp; anything with "://" (slirp:// too) is a VNL for
  // libvdeplug and its plugins.
  if (v.find("://") == std::string_view::npos && (v == "slirp" || str::starts_with(v, "slirp:"))) {
    u.slirp = true;
    if (v.size() > 6) {
      for (const std::string& o : str::split(v.substr(6), ',')) {
        if (o == "allow-host-loopback") u.allow_host_loopback = true;
        else
          return Error::usage("--net " + str::quote(v) + ": unknown slirp option " + str::quote(o))
              .hint("slirp options: allow-host-loopback");
      }
    }
  } else if (v.empty()) {
    return Error::usage("--net: empty network")
        .hint("give host, none, slirp or a VDE network locator such as vde:///tmp/sw");
  }
  spec.kind = NetKind::kUplinks;
  spec.uplinks.push_back(std::move(u));
  return Ok{};
}

Result<void> add_ip(NetSpec& spec, std::string_view v) {
  size_t slash = v.find('/');
  if (slash == std::string_view::npos)
    return Error::usage("--ip " + str::quote(v) + ": expected ADDRESS/PREFIX, e.g. 10.0.0.1/24");
  Ipv4 ip;
  ip.addr = VU_TRY(parse_addr("--ip", v.substr(0, slash)));
  unsigned long p;
  if (!str::parse_uint(v.substr(slash + 1), 32, &p))
    return Error::usage("--ip " + str::quote(v) + ": the prefix length must be 0 to 32");
  ip.prefix = static_cast<int>(p);
  spec.ip.push_back(ip);
  return Ok{};
}

Result<void> set_gateway(NetSpec& spec, std::string_view v) {
  spec.gateway = {VU_TRY(parse_addr("--gw", v))};
  return Ok{};
}

Result<void> add_dns(NetSpec& spec, std::string_view v) {
  in6_addr a6;
  std::string s(v);
  if (!(::inet_pton(AF_INET, s.c_str(), &a6) == 1 || ::inet_pton(AF_INET6, s.c_str(), &a6) == 1))
    return Error::usage("--dns " + str::quote(v) + ": not an IPv4 or IPv6 address");
  spec.dns.push_back(s);
  return Ok{};
}

Result<void> add_forward(NetSpec& spec, std::string_view v) {
  PortForward f;
  f.text = std::string(v);
  std::string_view body = v;
  if (str::starts_with(body.substr(body.size() > 4 ? body.size() - 4 : 0), "/udp")) {
    f.udp = true;
    body.remove_suffix(4);
  } else if (body.size() > 4 && body.substr(body.size() - 4) == "/tcp") {
    body.remove_suffix(4);
  }
  if (!body.empty() && body[0] == '[') {  // [ADDR6]:HPORT:VPORT
    size_t close = body.find(']');
    auto rest = close == std::string_view::npos ? std::vector<std::string>{} : str::split(body.substr(close + 1), ':');
    if (rest.size() != 3 || !rest[0].empty())
      return Error::usage("-p " + str::quote(v) + ": expected [IPV6]:HOSTPORT:VIEWPORT[/udp]");
    std::string a(body.substr(1, close - 1));
    if (::inet_pton(AF_INET6, a.c_str(), &f.host_addr6) != 1)
      return Error::usage("-p " + str::quote(v) + ": " + str::quote(a) + " is not an IPv6 address");
    std::string what = "-p " + std::string(v);
    f.v6 = true;
    f.host_port = VU_TRY(parse_port(what, rest[1]));
    f.view_port = VU_TRY(parse_port(what, rest[2]));
    spec.forwards.push_back(std::move(f));
    return Ok{};
  }
  auto parts = str::split(body, ':');
  if (parts.size() < 2 || parts.size() > 3)
    return Error::usage("-p " + str::quote(v) + ": expected [HOSTIP:]HOSTPORT:VIEWPORT[/udp]")
        .hint("e.g. -p 8080:80 (host 127.0.0.1:8080 reaches port 80 in the view)");
  std::string what = "-p " + std::string(v);
  f.host_addr = VU_TRY(parse_addr(what, parts.size() == 3 ? parts[0] : "127.0.0.1"));
  f.host_port = VU_TRY(parse_port(what, parts[parts.size() - 2]));
  f.view_port = VU_TRY(parse_port(what, parts.back()));
  spec.forwards.push_back(std::move(f));
  return Ok{};
}

Result<void> set_mtu(NetSpec& spec, std::string_view v) {
  unsigned long m;
  if (!str::parse_uint(v, 65520, &m) || m < 576)
    return Error::usage("--mtu " + str::quote(v) + ": expected 576 to 65520");
  spec.mtu = static_cast<int>(m);
  return Ok{};
}

Result<void> finish(NetSpec& spec) {
  // The default network is slirp: a view has NAT to the outside without any switch.
  if (!spec.host_or_none_given && spec.uplinks.empty()) {
    VU_TRY_VOID(add_net(spec, "slirp"));
    spec.defaulted = true;
  }
  // 16 taps (ns) or frame links (pvm), and vu-net's mount namespace, in one SCM_RIGHTS message.
  if (spec.uplinks.size() > 16)
    return Error::usage("--net: at most 16 interfaces (" + std::to_string(spec.uplinks.size()) + " given)");
  bool has_slirp = false;
  for (const Uplink& u : spec.uplinks) has_slirp |= u.slirp;
  if (!spec.forwards.empty() && !(spec.kind == NetKind::kUplinks && spec.uplinks[0].slirp))
    return Error::usage("-p " + spec.forwards[0].text + ": port forwards need a slirp network")
        .hint("add --net slirp (forwards reach the first interface, vde0, when it is slirp)");
  if (spec.kind != NetKind::kUplinks && (!spec.ip.empty() || !spec.gateway.empty()))
    return Error::usage("--ip/--gw configure network uplinks; add --net slirp or --net VNL");
  if (spec.ip.size() > spec.uplinks.size())
    return Error::usage("--ip given " + std::to_string(spec.ip.size()) + " times for " +
                        std::to_string(spec.uplinks.size()) + " interface(s)");
  // slirp defaults, for each slirp interface without an explicit address.
  for (size_t i = 0; i < spec.uplinks.size(); ++i) {
    if (!spec.uplinks[i].slirp) continue;
    if (spec.ip.size() <= i) {
      spec.ip.resize(i + 1);
      ::inet_pton(AF_INET, kSlirpAddress, &spec.ip[i].addr);
      spec.ip[i].prefix = kSlirpPrefix;
    }
  }
  if (has_slirp && spec.gateway.empty()) {
    in_addr gw;
    ::inet_pton(AF_INET, kSlirpGateway, &gw);
    spec.gateway.push_back(gw);
  }
  if (has_slirp && spec.dns.empty()) spec.dns.push_back(kSlirpDns);
  if (spec.mtu > kVdeMaxMtu)
    for (const Uplink& u : spec.uplinks)
      if (!u.slirp)
        return Error::usage("--mtu " + std::to_string(spec.mtu) + ": VDE networks carry at most " +
                            std::to_string(kVdeMaxMtu) + "-byte packets (" + u.vnl + ")");
  return Ok{};
}

}  // namespace vu::vdens
