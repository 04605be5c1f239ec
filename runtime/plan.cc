#include "runtime/plan.h"

#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>

#include "base/strings.h"

namespace vu {

Error userns_denied(const std::string& detail, BackendWish wish) {
  std::string m = "user namespaces are not available: " + detail;
  if (wish == BackendWish::kNs) m += " (--backend=ns was requested)";
  return Error::make(ErrorKind::kDenied, m)
      .hint(wish == BackendWish::kNs
                ? "drop --backend=ns: vu then uses its partial-VM backend (pvm), which needs no "
                  "namespaces; run 'vu probe' for what this machine allows"
                : "run 'vu probe' for what this machine allows");
}

namespace {
// Whether a defaulted slirp network has only the addresses finish() gave it.
bool is_slirp_default(const vdens::NetSpec& net) {
  in_addr addr, gw;
  ::inet_pton(AF_INET, vdens::kSlirpAddress, &addr);
  ::inet_pton(AF_INET, vdens::kSlirpGateway, &gw);
  return net.ip.size() == 1 && net.ip[0].addr.s_addr == addr.s_addr &&
         net.ip[0].prefix == vdens::kSlirpPrefix && net.gateway.size() == 1 &&
         net.gateway[0].s_addr == gw.s_addr && net.dns.size() == 1 && net.dns[0] == vdens::kSlirpDns;
}
}  // namespace

bool pvm_ignores_size(const bindmount::MountSpec& m) {
  return m.kind == bindmount::Kind::kTmpfs && m.data.find("size=") != std::string::npos;
}

Result<Plan> make_pvm_plan(const ViewSpec& spec, std::string why) {
  auto refuse = [](const std::string& what, const std::string& hint) {
    return Error::make(ErrorKind::kDenied, what + " needs user namespaces; the partial-VM backend "
                                                  "(pvm) cannot provide it")
        .hint(hint);
  };
  if (spec.map_users) return refuse("--map-users", "drop --map-users (--root works under pvm)");
  if (spec.rootfs) return refuse("--rootfs", "a root tree needs the ns backend for now (the pvm path map cannot yet execute the tree's own dynamic loader)");
  if (spec.ambient_caps) return refuse("--cap", "capabilities can only be granted inside a user namespace");
  if (!spec.cows.empty() || !spec.fuse.empty())
    return refuse(!spec.cows.empty() ? "--cow" : "--fuse/--mount",
                  "FUSE and overlayfs mounts need a mount namespace; use --bind, or run where user "
                  "namespaces are allowed");
  const vdens::NetSpec& net = spec.net;
  if (net.kind != vdens::NetKind::kHost && !net.defaulted)
    return refuse("--net " + (net.kind == vdens::NetKind::kNone   ? std::string("none")
                              : net.kind == vdens::NetKind::kJoin ? "join:" + net.join
                                                                  : net.uplinks[0].vnl),
                  "use --net host, or run where user namespaces are allowed");
  // The default network falls back to the host's under pvm; options that configure it would
  // be silently ignored there, so they are refused like an explicit --net.
  if (net.defaulted) {
    const char* what = !net.forwards.empty() ? "-p"
                       : net.stats           ? "--net-stats"
                       : net.mtu             ? "--mtu"
                       : !is_slirp_default(net) ? "--ip/--gw/--dns"
                                                : nullptr;
    if (what)
      return refuse(what == std::string("-p") ? "-p " + net.forwards[0].text : std::string(what),
                    "the pvm backend has no network of its own yet (the view uses the host's); "
                    "drop the option, or run where user namespaces are allowed");
  }
  Plan p;
  p.backend = Backend::kPvm;
  p.why = std::move(why);
  std::string uid = std::to_string(::getuid());
  p.parts.push_back({"identity", spec.identity == userns::Identity::kRoot
                                     ? "pvm: uid " + uid + " shown as 0 (root); other owners as 65534"
                                     : "pvm: uid " + uid + " kept; other owners shown as 65534"});
  if (spec.mounts.empty()) {
    p.parts.push_back({"mounts", "pvm: the host's files (no path map)"});
  } else {
    for (size_t i = 0; i < spec.mounts.size(); ++i)
      p.parts.push_back({i ? "" : "mounts", "pvm path map: " + bindmount::to_string(spec.mounts[i]) +
                                                (pvm_ignores_size(spec.mounts[i]) ? " — size= not enforced by pvm" : "")});
  }
  p.parts.push_back({"hostname", spec.hostname ? "pvm: uname shows " + *spec.hostname : "host's name"});
  p.parts.push_back({"network", net.defaulted ? "host network (pvm has no network namespace; the default "
                                                "slirp network needs one)"
                                              : "host network"});
  p.parts.push_back({"capture", spec.mounts.empty()
                                    ? "seccomp user notification (stat owners, ids, uname); no ptrace"
                                    : "seccomp user notification (paths, owners, ids, uname), ptrace (execve, chdir)"});
  return p;
}

Result<Plan> make_plan(const ViewSpec& spec, const Fact* userns) {
  if (spec.backend == BackendWish::kPvm) return make_pvm_plan(spec, "requested (--backend=pvm)");
  if (userns && !userns->yes) {
    if (spec.backend == BackendWish::kNs) return userns_denied(userns->detail, spec.backend);
    return make_pvm_plan(spec, "user namespaces are not available (" + userns->detail + ")");
  }

  Plan p;
  p.backend = Backend::kNs;
  p.why = spec.backend == BackendWish::kNs ? "requested (--backend=ns)"
          : userns ? "user namespaces work here (" + userns->detail + ")"
                   : "auto: user namespaces are tried first";
  p.clone_flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS;

  std::string uid = std::to_string(::getuid());
  std::string ident = spec.view_ids ? "uid " + uid + " -> " + std::to_string(spec.view_ids->first) + ", gid " +
                                           std::to_string(::getgid()) + " -> " + std::to_string(spec.view_ids->second) +
                                           " (the image's User)"
                      : spec.identity == userns::Identity::kRoot ? "uid " + uid + " -> 0 (root)"
                                                                 : "uid " + uid + " kept";
  ident += spec.map_users ? ", plus subordinate ids (newuidmap/newgidmap)"
                          : ", setgroups denied";
  p.parts.push_back({"identity", "user namespace: " + ident});

  std::vector<std::string> mounts;
  for (const bindmount::MountSpec& m : spec.mounts) mounts.push_back(bindmount::to_string(m));
  for (const fusefs::CowSpec& c : spec.cows) mounts.push_back(fusefs::to_string(c));
  for (const fusefs::FuseMount& f : spec.fuse)
    mounts.push_back("fuse " + f.target + " <- " + f.what + " (started in the view, unmounted at exit)");
  if (mounts.empty()) mounts.push_back("private copy of the host's mounts");
  if (spec.rootfs) mounts.push_back("then pivot_root into " + *spec.rootfs + " (the view's /)");
  for (size_t i = 0; i < mounts.size(); ++i) p.parts.push_back({i ? "" : "mounts", "mount namespace: " + mounts[i]});
  if (spec.ambient_caps) {
    char mask[32];
    std::snprintf(mask, sizeof mask, "%016llx", static_cast<unsigned long long>(spec.ambient_caps));
    p.parts.push_back({"caps", std::string("ambient ") + mask + " (effective in the view's namespaces only)"});
  }
  p.parts.push_back({"hostname", spec.hostname ? "uts namespace: " + *spec.hostname
                                               : "uts namespace (host's name kept)"});
  const vdens::NetSpec& net = spec.net;
  if (net.kind == vdens::NetKind::kHost) {
    p.parts.push_back({"network", "host network (no network namespace)"});
  } else if (net.kind == vdens::NetKind::kJoin) {
    p.parts.push_back({"network", "the network namespace " + net.join + ", joined by vu (setns) before the view "
                                  "is made; its /sys stays the host's"});
  } else {
    p.clone_flags |= CLONE_NEWNET;
    p.parts.push_back({"network", "network namespace, lo up, own /sys"});
    for (size_t i = 0; i < net.uplinks.size(); ++i) {
      const vdens::Uplink& u = net.uplinks[i];
      std::string how = "vde" + std::to_string(i) + " <- " +
                        (u.slirp ? std::string("slirp (libslirp in vu-net)") : "VDE " + u.vnl + " (libvdeplug in vu-net)");
      if (i < net.ip.size() && net.ip[i].addr.s_addr) how += ", " + vdens::to_string(net.ip[i]);
      if (u.allow_host_loopback) how += ", host loopback reachable at 10.0.2.2";
      p.parts.push_back({"", how});
    }
    if (!net.gateway.empty()) p.parts.push_back({"", "default route via " + vdens::to_string(net.gateway[0])});
    if (!net.dns.empty()) p.parts.push_back({"", "/etc/resolv.conf: nameserver " + str::join(net.dns, ", ")});
    for (const vdens::PortForward& f : net.forwards)
      p.parts.push_back({"", "forward " + vdens::to_string(f.host_addr) + ":" + std::to_string(f.host_port) +
                                 (f.udp ? "/udp" : "/tcp") + " -> view port " + std::to_string(f.view_port)});
  }
  return p;
}

std::string to_string(const Plan& plan) {
  std::string s = "backend   ";
  s += plan.backend == Backend::kNs ? "ns" : "pvm";
  s += " — " + plan.why + "\n";
  for (const PlanPart& part : plan.parts) {
    std::string name = part.part;
    name.resize(10, ' ');
    s += name + part.how + "\n";
  }
  return s;
}

}  // namespace vu
