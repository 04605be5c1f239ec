#include "runtime/view_spec.h"

#include "runtime/rootfs.h"

#include <sys/capability.h>
#include <unistd.h>

#include "base/strings.h"

namespace vu {

namespace {

Result<bool> parse_bool(std::string_view opt, std::string_view v) {
  if (v == "true") return true;
  if (v == "false") return false;
  return Error::usage("--" + std::string(opt) + ": expected true or false, got " + str::quote(v));
}

Result<void> set_bind(ViewSpec& s, std::string_view v) {
  s.mounts.push_back(VU_TRY(bindmount::parse_bind(v)));
  return Ok{};
}
Result<void> set_ro_bind(ViewSpec& s, std::string_view v) {
  s.mounts.push_back(VU_TRY(bindmount::parse_bind(v, /*ro_default=*/true)));
  return Ok{};
}
Result<void> set_tmpfs(ViewSpec& s, std::string_view v) {
  s.mounts.push_back(VU_TRY(bindmount::parse_tmpfs(v)));
  return Ok{};
}
Result<void> set_cow(ViewSpec& s, std::string_view v) {
  s.cows.push_back(VU_TRY(fusefs::parse_cow(v)));
  return Ok{};
}
Result<void> set_fuse(ViewSpec& s, std::string_view v) {
  size_t nul = v.find('\0');
  if (nul == std::string_view::npos) return Error::usage("--fuse: expected a command and a mountpoint");
  s.fuse.push_back(VU_TRY(fusefs::parse_fuse(v.substr(0, nul), v.substr(nul + 1))));
  return Ok{};
}
Result<void> set_mount(ViewSpec& s, std::string_view v) {
  s.fuse.push_back(VU_TRY(fusefs::parse_mount(v)));
  return Ok{};
}
Result<void> set_root(ViewSpec& s, std::string_view v) {
  s.identity = VU_TRY(parse_bool("root", v)) ? userns::Identity::kRoot : userns::Identity::kKeep;
  return Ok{};
}
Result<void> set_map_users(ViewSpec& s, std::string_view v) {
  s.map_users = VU_TRY(parse_bool("map-users", v));
  return Ok{};
}
Result<void> set_hostname(ViewSpec& s, std::string_view v) {
  if (v.empty() || v.size() > 64 || v.find_first_of("/ \t\n") != std::string_view::npos)
    return Error::usage("--hostname " + str::quote(v) +
                        ": a host name is 1 to 64 characters, without spaces or '/'");
  s.hostname = std::string(v);
  return Ok{};
}
Result<void> set_net(ViewSpec& s, std::string_view v) { return vdens::add_net(s.net, v); }
Result<void> set_ip(ViewSpec& s, std::string_view v) { return vdens::add_ip(s.net, v); }
Result<void> set_gw(ViewSpec& s, std::string_view v) { return vdens::set_gateway(s.net, v); }
Result<void> set_dns(ViewSpec& s, std::string_view v) { return vdens::add_dns(s.net, v); }
Result<void> set_publish(ViewSpec& s, std::string_view v) { return vdens::add_forward(s.net, v); }
Result<void> set_mtu(ViewSpec& s, std::string_view v) { return vdens::set_mtu(s.net, v); }
Result<void> set_net_stats(ViewSpec& s, std::string_view v) {
  s.net.stats = VU_TRY(parse_bool("net-stats", v));
  return Ok{};
}
Result<void> set_cap(ViewSpec& s, std::string_view v) {
  for (const std::string& name : str::split(v, ',')) {
    std::string n = str::starts_with(name, "cap_") ? name : "cap_" + name;
    cap_value_t c;
    if (n == "cap_" || cap_from_name(n.c_str(), &c) < 0 || c < 0 || c > 63)
      return Error::usage("--cap " + str::quote(v) + ": unknown capability " + str::quote(name))
          .hint("names as in capabilities(7), with or without cap_: net_admin, net_raw, sys_admin…");
    s.ambient_caps |= uint64_t{1} << c;
  }
  return Ok{};
}

Result<void> set_backend(ViewSpec& s, std::string_view v) {
  if (v == "auto") s.backend = BackendWish::kAuto;
  else if (v == "ns") s.backend = BackendWish::kNs;
  else if (v == "pvm") s.backend = BackendWish::kPvm;
  else return Error::usage("--backend " + str::quote(v) + ": expected auto, ns or pvm");
  return Ok{};
}
Result<void> set_chdir(ViewSpec& s, std::string_view v) {
  if (v.empty() || v[0] != '/')
    return Error::usage("--chdir " + str::quote(v) + ": expected an absolute path in the view");
  s.chdir = std::string(v);
  return Ok{};
}
Result<void> set_setenv(ViewSpec& s, std::string_view v) {
  size_t eq = v.find('=');
  if (eq == 0 || eq == std::string_view::npos)
    return Error::usage("--setenv " + str::quote(v) + ": expected NAME=VALUE");
  s.setenv.emplace_back(std::string(v.substr(0, eq)), std::string(v.substr(eq + 1)));
  return Ok{};
}
Result<void> set_rootfs(ViewSpec& s, std::string_view v) {
  if (v.empty()) return Error::usage("--rootfs: expected a directory");
  s.rootfs = std::string(v);
  return Ok{};
}
Result<void> set_no_home(ViewSpec& s, std::string_view v) {
  s.rootfs_home = v != "true";
  return Ok{};
}
Result<void> set_unsetenv(ViewSpec& s, std::string_view v) {
  if (v.empty() || v.find('=') != std::string_view::npos)
    return Error::usage("--unsetenv " + str::quote(v) + ": expected a variable NAME");
  s.unsetenv.emplace_back(v);
  return Ok{};
}

// The table. Order here is the order of `vu run --help`.
constexpr OptionDef kOptions[] = {
    {"bind", 'b', false, true, "SRC:DST[:ro]",
     "Bind-mount host path SRC on DST in the view (recursive; ':ro' read-only, "
     "':norec' not recursive). DST must exist.",
     set_bind},
    {"ro-bind", 0, false, true, "SRC:DST", "Same as --bind SRC:DST:ro.", set_ro_bind},
    {"tmpfs", 0, false, true, "DST[:size=N,mode=M]", "Mount an empty tmpfs on DST.", set_tmpfs},
    {"cow", 0, false, true, "LAYER:DIR[:kernel|fuse]",
     "Copy-on-write DIR: the view may change anything below it (every file there is yours; "
     "root's under --root), the changes land in the host directory LAYER (created if missing) "
     "in overlayfs's format, DIR itself stays untouched. Kernel overlayfs when every file below "
     "DIR is already yours, else vu-cowfs (FUSE); on the pvm backend the monitor's own "
     "copy-on-write (no FUSE); --explain says which.",
     set_cow},
    {"fuse", 0, false, true, "CMD DIR",
     "Run the FUSE program CMD (a shell command line; DIR is appended as its last argument) in "
     "the view and mount it on DIR before the command starts, e.g. --fuse 'squashfuse app.sqfs' "
     "/opt/app. Unmounted (and its data flushed) when the command exits. On the pvm backend "
     "with VU_PVM_FUSE=monitor, vu serves it itself and DIR is given as /dev/fd/N (libfuse3 "
     "programs take that as a mounted descriptor).",
     set_fuse, 2},
    {"mount", 0, false, true, "image:FILE:DIR[:ro]",
     "Mount a filesystem image on DIR: ext2/3/4 through fuse2fs, squashfs through squashfuse.",
     set_mount},
    {"rootfs", 0, false, false, "DIR",
     "Use the tree DIR (an unpacked distribution root, with /bin/sh) as the view's /, read-only: "
     "the host's /proc and /sys, a minimal /dev, a private /tmp, your $HOME, the host's "
     "/etc/hosts and resolv.conf, and your user in its /etc/passwd and /etc/group. Other mounts "
     "apply on top (their sources are host paths).",
     set_rootfs},
    {"no-home", 0, true, false, nullptr, "With --rootfs: do not bind $HOME into the tree.", set_no_home},
    {"root", 'r', true, false, nullptr,
     "Be uid/gid 0 in the view (the caller's ids mapped to root; setgroups denied). "
     "Default: keep the caller's uid/gid.",
     set_root},
    {"map-users", 0, true, false, nullptr,
     "Also map the caller's subordinate ids from /etc/subuid and /etc/subgid "
     "(newuidmap/newgidmap, as rootless Podman).",
     set_map_users},
    {"hostname", 0, false, false, "NAME", "Host name in the view (a private UTS namespace).",
     set_hostname},
    {"net", 0, false, true, "NET",
     "Network of the view: slirp (the default: NAT, vde0 10.0.2.100/24; "
     "slirp:allow-host-loopback lets 10.0.2.2 reach the host's 127.0.0.1), host (no network "
     "namespace), none (only lo), or a VDE "
     "network locator (vde:///tmp/sw, switch:///tmp/sw, ptp://…, vxvde://, …). Repeat for "
     "more interfaces: vde0, vde1, …",
     set_net},
    {"ip", 0, false, true, "ADDR/LEN",
     "IPv4 address of vde0 (repeat for vde1, …). slirp default: 10.0.2.100/24.", set_ip},
    {"gw", 0, false, false, "ADDR", "IPv4 default gateway. slirp default: 10.0.2.2.", set_gw},
    {"dns", 0, false, true, "ADDR",
     "Nameserver for the view's /etc/resolv.conf (repeatable). slirp default: 10.0.2.3.",
     set_dns},
    {"publish", 'p', false, true, "[HOSTIP:]HPORT:VPORT[/udp]",
     "Forward a host port (default address 127.0.0.1) to a port in the view (slirp).",
     set_publish},
    {"mtu", 0, false, false, "N",
     "MTU of the view's interfaces (default: slirp 65520, VDE 1500; up to 9198 on VDE, e.g. "
     "jumbo frames between views on switch:// or ptp://; Debian's vde_switch drops them).",
     set_mtu},
    {"net-stats", 0, true, false, nullptr,
     "At exit, print frames, bytes and drops per network interface.", set_net_stats},
    {"cap", 0, false, true, "CAP[,CAP…]",
     "Give the command these capabilities (ambient; effective inside the view's namespaces "
     "only), e.g. --cap net_admin,net_raw.",
     set_cap},
    {"backend", 0, false, false, "auto|ns|pvm",
     "How to build the view: ns (user namespaces), pvm (partial virtual machine: seccomp user notification and ptrace, no namespaces needed), auto (ns, else pvm when user namespaces are refused).",
     set_backend},
    {"chdir", 'C', false, false, "DIR",
     "Working directory in the view (default: the current one, else /).", set_chdir},
    {"setenv", 0, false, true, "NAME=VALUE", "Set an environment variable for the command.",
     set_setenv},
    {"unsetenv", 0, false, true, "NAME", "Remove an environment variable for the command.",
     set_unsetenv},
};

}  // namespace

std::span<const OptionDef> run_options() { return kOptions; }

const OptionDef* find_option(std::string_view name) {
  for (const OptionDef& o : kOptions)
    if (name == o.name) return &o;
  return nullptr;
}

Result<void> finalize(ViewSpec& spec) {
  for (const bindmount::MountSpec& m : spec.mounts) VU_TRY_VOID(bindmount::check(m));
  for (fusefs::CowSpec& c : spec.cows) VU_TRY_VOID(fusefs::choose_cow(c, ::getuid(), ::getgid()));
  VU_TRY_VOID(vdens::finish(spec.net));
  VU_TRY_VOID(expand_rootfs(spec));  // last: it looks at the network and the other mounts
  return Ok{};
}

std::string_view to_string(BackendWish b) {
  switch (b) {
    case BackendWish::kAuto: return "auto";
    case BackendWish::kNs: return "ns";
    case BackendWish::kPvm: return "pvm";
  }
  return "?";
}

}  // namespace vu
