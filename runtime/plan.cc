#include "runtime/plan.h"

#include <linux/capability.h>

#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/strings.h"
#include "runtime/pvm_fuse.h"
#include "runtime/pvm_stack_net.h"

namespace vu {

namespace {
// The --explain lines of vu-net's uplinks (an ns view's taps, pvm stack mode's frame links):
// one per interface, then the gateway, resolv.conf and the forwards. `stack`: pvm stack mode
// (slirp's IPv6 address shown; the forwards named as libslirp's).
void explain_uplinks(const vdens::NetSpec& net, bool stack, Plan* p) {
  for (size_t i = 0; i < net.uplinks.size(); ++i) {
    const vdens::Uplink& u = net.uplinks[i];
    std::string how = "vde" + std::to_string(i) + " <- " +
                      (u.slirp ? std::string("slirp (libslirp in vu-net)") : "VDE " + u.vnl + " (libvdeplug in vu-net)");
    if (i < net.ip.size() && net.ip[i].addr.s_addr) how += ", " + vdens::to_string(net.ip[i]);
    if (stack && u.slirp && i == 0) how += " + fd00::100/64";
    if (u.allow_host_loopback) how += ", host loopback reachable at 10.0.2.2";
    p->parts.push_back({"", how});
  }
  if (!net.gateway.empty()) p->parts.push_back({"", "default route via " + vdens::to_string(net.gateway[0])});
  if (!net.dns.empty()) p->parts.push_back({"", "/etc/resolv.conf: nameserver " + str::join(net.dns, ", ")});
  for (const vdens::PortForward& f : net.forwards)
    p->parts.push_back({"", "forward " + vdens::to_string(f.host_addr) + ":" + std::to_string(f.host_port) +
                                (f.udp ? "/udp" : "/tcp") + " -> view port " + std::to_string(f.view_port) +
                                (stack ? " (libslirp's, in vu-net)" : "")});
}
}  // namespace

Error userns_denied(const std::string& detail, BackendWish wish) {
  std::string m = "user namespaces are not available: " + detail;
  if (wish == BackendWish::kNs) m += " (--backend=ns was requested)";
  return Error::make(ErrorKind::kDenied, m)
      .hint(wish == BackendWish::kNs
                ? "drop --backend=ns: vu then uses its partial-VM backend (pvm), which needs no "
                  "namespaces; run 'vu probe' for what this machine allows"
                : "run 'vu probe' for what this machine allows");
}


bool pvm_serves_fuse() {
  // Environment A (issue 16) asked for: the monitor is the FUSE "kernel" even where the probe
  // finds B (the kernel's FUSE through fusermount3). For tests and measurements.
  const char* e = std::getenv("VU_PVM_FUSE");
  return e && std::string_view(e) == "monitor";
}

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
  // vdens's network capabilities: a VDE view's interfaces are its own to change on pvm
  // (pvm/vstack.h), nothing else to grant.
  const uint64_t vdens_caps = (1ull << CAP_NET_ADMIN) | (1ull << CAP_NET_RAW) | (1ull << CAP_NET_BIND_SERVICE) |
                              (1ull << CAP_NET_BROADCAST);
  const bool vde_view = spec.net.kind == vdens::NetKind::kUplinks && spec.net.uplinks.size() == 1 &&
                        !spec.net.uplinks[0].slirp;
  if (spec.ambient_caps && !(vde_view && (spec.ambient_caps & ~vdens_caps) == 0))
    return refuse("--cap", "capabilities can only be granted inside a user namespace");
  for (const fusefs::CowSpec& c : spec.cows)
    if (c.target == "/")
      return refuse("--cow " + c.layer + ":/", "a copy-on-write root needs the ns backend for now; give a "
                                               "directory below / (--cow LAYER:/usr)");
  std::optional<PvmFuseEnv> fuse_env;
  // FUSE (issue 16): environment B, the kernel's FUSE through the setuid fusermount3, when the
  // probe finds it (runtime/pvm_fuse.h); else A, the monitor serves the programs itself
  // (pvm/fuse_client.h). VU_PVM_FUSE=monitor asks for A.
  if (has_fuse_mounts(spec) && !pvm_serves_fuse()) {
    fuse_env = probe_pvm_fuse();
    if (!fuse_env->b) fuse_env.reset();
  }
  const vdens::NetSpec& net = spec.net;
  // The network (pvm/inet.h): the host's, a joined namespace's (vu setns()s into it, as for
  // ns), none, or one slirp-like network given with host sockets; VDE through vu-vstack's
  // user-mode stack (pvm/vstack.h).
  const bool vde = net.kind == vdens::NetKind::kUplinks && !net.uplinks.empty() && !net.uplinks[0].slirp;
  // Several networks, or --net-stats on slirp: stack mode (runtime/pvm_stack_net.h).
  std::string stack_why;
  const bool stack = pvm_stack_mode(net, &stack_why);
  if ((vde || stack) && net.iface_prefix != "vde")  // the rtnetlink model names its interfaces vde0…
    return refuse("vdens -i " + net.iface_prefix, "drop -i (pvm names the interface vde0)");
  if (net.kind != vdens::NetKind::kHost && !net.configure_links && (!vde || stack))
    return refuse("vdens (unconfigured interfaces)", "run where user namespaces are allowed");
  Plan p;
  p.backend = Backend::kPvm;
  p.why = std::move(why);
  std::string uid = std::to_string(::getuid());
  p.parts.push_back({"identity", spec.view_ids ? "pvm: uid " + uid + " shown as " + std::to_string(spec.view_ids->first) +
                                                   ", gid as " + std::to_string(spec.view_ids->second) +
                                                   " (the image's User); other owners as 65534"
                                 : spec.identity == userns::Identity::kRoot
                                     ? "pvm: uid " + uid + " shown as 0 (root); other owners as 65534"
                                     : "pvm: uid " + uid + " kept; other owners shown as 65534"});
  // The view's /etc/resolv.conf is a one-file path map (runtime/pvm_backend.cc).
  const bool resolv = net.kind == vdens::NetKind::kUplinks && !net.dns.empty() &&
                      std::none_of(spec.mounts.begin(), spec.mounts.end(),
                                   [](const auto& m) { return m.target == "/etc/resolv.conf"; });
  if (resolv) p.parts.push_back({"mounts", "pvm path map: /etc/resolv.conf <- a file of vu's (the view's nameserver)"});
  if (spec.mounts.empty() && spec.cows.empty() && spec.fuse.empty() && !resolv) {
    p.parts.push_back({"mounts", "pvm: the host's files (no path map)"});
  } else {
    if (spec.mounts.empty() && spec.cows.empty() && !resolv && fuse_env) p.parts.push_back({"mounts", "pvm path map: the FUSE mountpoints below"});
    for (size_t i = 0; i < spec.mounts.size(); ++i)
      p.parts.push_back({i || resolv ? "" : "mounts", "pvm path map: " + bindmount::to_string(spec.mounts[i]) +
                                                (pvm_ignores_size(spec.mounts[i]) ? " — size= not enforced by pvm" : "")});
    for (size_t i = 0; !fuse_env && i < spec.fuse.size(); ++i)
      p.parts.push_back({spec.mounts.empty() && !resolv && !i ? "mounts" : "",
                         "pvm: fuse " + spec.fuse[i].target + " <- " + spec.fuse[i].what +
                             " (started by vu, served by the monitor: no mount(2); the view's changes "
                             "are written back at sync/fsync and at exit)"});
  }
  if (spec.rootfs)
    p.parts.push_back({"", std::string("pvm: the tree's programs run with its own loader (PT_INTERP looked up in the view)") +
                               (spec.rootfs_layer ? "; / is copy-on-write over the tree, layer " + spec.rootfs_layer->layer +
                                                        " (the monitor's, as --cow)" : "")});
  if (spec.rootfs)
    p.parts.push_back({"processes", "pvm: the host's /proc with the view's path map (no pid namespace without user "
                                    "namespaces: ps lists the host's processes, pids are the host's)"});
  for (size_t i = 0; i < spec.cows.size(); ++i)
    p.parts.push_back({spec.mounts.empty() && !resolv && !i ? "mounts" : "",
                       "pvm path map: cow " + spec.cows[i].target + " <- layer " + spec.cows[i].layer +
                           ": the monitor's copy-on-write (no FUSE, no overlayfs; files opened there "
                           "are the layers' own, only path calls trap)"});
  if (fuse_env) {
    std::string how = "FUSE " + fuse_env->why + "; the programs run in the view (traced, real ids), their mount(2) is "
                      "answered by the monitor: " + pvm::FusermountMounter(fuse_env->fusermount, fuse_env->allow_other).describe();
    p.parts.push_back({"fuse", how});
    for (const fusefs::FuseMount& f : spec.fuse) p.parts.push_back({"", "fuse " + f.target + " <- " + f.what});
  }
  p.parts.push_back({"hostname", spec.hostname ? "pvm: uname shows " + *spec.hostname : "host's name"});
  if (net.kind == vdens::NetKind::kHost) {
    p.parts.push_back({"network", "host network"});
  } else if (net.kind == vdens::NetKind::kJoin) {
    p.parts.push_back({"network", "the network namespace " + net.join + ", joined by vu (setns) before the view "
                                  "is made (its interfaces, routes and sockets natively); its /sys stays the host's"});
  } else if (net.kind == vdens::NetKind::kNone) {
    p.parts.push_back({"network", "pvm: lo only (the view's 127.0.0.1 is a private host loopback address); "
                                  "other destinations unreachable"});
  } else if (stack) {
    p.parts.push_back({"network", "pvm stack mode, for " + stack_why + ": every IP socket of the view is a "
                                  "socketpair served by vu-vstack (lwIP), one interface per --net; its frames "
                                  "go through vu-net, as an ns view's taps do"});
    explain_uplinks(net, true, &p);
  } else if (vde) {
    p.parts.push_back({"network", "pvm: " + net.uplinks[0].vnl + " through vu-vstack (lwIP, a user-mode "
                                  "TCP/IP stack); the view's IP sockets are socketpairs served by it"});
    p.parts.push_back({"", net.configure_links
                               ? "vde0 " + (net.ip.empty() ? std::string("(no address)") : vdens::to_string(net.ip[0])) +
                                     ", lo 127.0.0.1/8 (the stack's)" +
                                     (net.gateway.empty() ? "" : ", default route via " + vdens::to_string(net.gateway[0]))
                               : "vde0 and lo down and unaddressed (ip addr/link/route change them)"});
  } else {
    p.parts.push_back({"network", "pvm: host sockets, addresses translated on connect/bind/sendto/recvfrom "
                                  "(the data path is native)"});
    std::string how = "vde0 (emulated) " + (net.ip.empty() ? std::string("") : vdens::to_string(net.ip[0])) +
                      " + fd00::100/64, lo 127.0.0.1/8 (a private host loopback address)";
    if (net.uplinks[0].allow_host_loopback) how += ", host loopback reachable at 10.0.2.2";
    p.parts.push_back({"", how});
    if (!net.gateway.empty()) p.parts.push_back({"", "default route via " + vdens::to_string(net.gateway[0])});
    if (!net.dns.empty())
      p.parts.push_back({"", "/etc/resolv.conf: nameserver " + str::join(net.dns, ", ") +
                                 " (10.0.2.3:53 is the host's nameserver)"});
    for (const vdens::PortForward& f : net.forwards)
      p.parts.push_back({"", "forward " + vdens::to_string(f.host_addr) + ":" + std::to_string(f.host_port) +
                                 (f.udp ? "/udp" : "/tcp") + " -> view port " + std::to_string(f.view_port) +
                                 " (the view's own socket is bound there)"});
  }
  std::string capture = !spec.mounts.empty() || !spec.cows.empty() || !spec.fuse.empty() || resolv
                            ? "seccomp user notification (paths, owners, ids, uname), ptrace (execve, chdir)"
                            : "seccomp user notification (stat owners, ids, uname); no ptrace";
  if (net.kind != vdens::NetKind::kHost && net.kind != vdens::NetKind::kJoin) capture += "; socket addresses, rtnetlink";
  p.parts.push_back({"capture", capture});
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
  if (spec.rootfs) p.clone_flags |= CLONE_NEWPID;  // a fresh /proc (ns_backend.cc: view_init)

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
  if (spec.rootfs)
    p.parts.push_back({"processes", "pid namespace: a fresh /proc; the command is pid 2 below vu's init, which "
                                    "reaps orphans and passes signals and the exit status through"});
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
    explain_uplinks(net, false, &p);
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
