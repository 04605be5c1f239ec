#include "runtime/vdens_cmd.h"

#include <getopt.h>
#include <linux/capability.h>

#include <cstdlib>
#include <cstring>

#include "base/strings.h"

namespace vu {

namespace {

constexpr const char* kUsage =
    "Usage: vdens [OPTIONS] [VNL [CMD [ARGS...]]]\n"
    "       vdens -m|--multi [OPTIONS] VNL [VNL ...] [-- CMD [ARGS...]]\n"
    "Run CMD (default $SHELL) in new user, network and UTS namespaces whose interfaces vde0,\n"
    "vde1, ... are plugged into the VDE networks VNL (\"\", \"-\" or \"no\": none; \"=CMD\": a\n"
    "coprocess). CMD gets the ambient capabilities net_admin, net_raw, net_bind_service and\n"
    "net_broadcast, so it can configure them (ip addr add …; ip link set vde0 up).\n"
    "\n"
    "  -m, --multi            several VNLs, the command after --\n"
    "  -i, --iface PREFIX     interface name prefix (default vde)\n"
    "  -r, --resolvconf FILE  bind FILE on /etc/resolv.conf (default $VDE_RESOLVCONF)\n"
    "  -R, --resolvaddr LIST  comma-separated nameservers for /etc/resolv.conf ($VDE_RESOLVADDR)\n"
    "  -H, --hostname NAME    host name in the new UTS namespace\n"
    "  -s, --sysadm           also give CAP_SYS_ADMIN (mounts inside)\n"
    "  -c, --clone, -u, --unshare   accepted for compatibility (vu always clones)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: the command's (128+N if killed by signal N); 1 on a usage error or when the\n"
    "view cannot be built (vdens's codes), 127/126 when CMD cannot be run.\n";

constexpr uint64_t bit(int c) { return uint64_t{1} << c; }

Result<void> add_vnl(ViewSpec& spec, std::string_view v) {
  if (v.empty() || v == "-" || v == "no") return Ok{};
  if (v[0] == '=') return vdens::add_net(spec.net, "cmd://" + std::string(v.substr(1)));
  return vdens::add_net(spec.net, v);
}

}  // namespace

Result<Invocation> parse_vdens(int argc, char** argv) {
  static const struct option kLong[] = {
      {"help", no_argument, nullptr, 'h'},         {"multi", no_argument, nullptr, 'm'},
      {"iface", required_argument, nullptr, 'i'},  {"resolvconf", required_argument, nullptr, 'r'},
      {"resolvaddr", required_argument, nullptr, 'R'}, {"hostname", required_argument, nullptr, 'H'},
      {"sysadm", no_argument, nullptr, 's'},       {"clone", no_argument, nullptr, 'c'},
      {"unshare", no_argument, nullptr, 'u'},      {nullptr, 0, nullptr, 0}};
  Invocation inv;
  inv.command = Invocation::Command::kRun;
  ViewSpec& spec = inv.spec;
  bool multi = false, sysadm = false;
  const char* resolvconf = std::getenv("VDE_RESOLVCONF");
  const char* resolvaddr = std::getenv("VDE_RESOLVADDR");
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+i:hsucmr:H:R:", kLong, nullptr)) != -1) {
    switch (c) {
      case 'h':
        inv.command = Invocation::Command::kHelpShown;
        inv.help = kUsage;
        return inv;
      case 'm': multi = true; break;
      case 'i':
        if (!*optarg || std::strlen(optarg) > 12)
          return Error::usage("vdens -i " + str::quote(optarg) + ": a prefix of 1 to 12 characters");
        spec.net.iface_prefix = optarg;
        break;
      case 'r': resolvconf = optarg; break;
      case 'R': resolvaddr = optarg; break;
      case 'H': VU_TRY_VOID(find_option("hostname")->apply(spec, optarg)); break;
      case 's': sysadm = true; break;
      case 'c':
      case 'u': break;
      default:
        return Error::usage(std::string("vdens: unknown option or missing value: ") +
                            str::quote(argv[optind - 1]))
            .hint("see 'vu vdens --help'");
    }
  }
  if (multi) {
    int i = optind;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) VU_TRY_VOID(add_vnl(spec, argv[i]));
    for (++i; i < argc; ++i) spec.command.emplace_back(argv[i]);
  } else {
    if (optind < argc) VU_TRY_VOID(add_vnl(spec, argv[optind]));
    for (int i = optind + 1; i < argc; ++i) spec.command.emplace_back(argv[i]);
  }
  if (spec.command.empty() && !std::getenv("SHELL"))
    return Error::usage("Error: $SHELL env variable not set");
  if (spec.net.uplinks.empty()) VU_TRY_VOID(vdens::add_net(spec.net, "none"));
  spec.net.configure_links = false;
  if (resolvaddr && *resolvaddr) {
    for (const std::string& a : str::split(resolvaddr, ',')) VU_TRY_VOID(vdens::add_dns(spec.net, a));
  } else if (resolvconf && *resolvconf) {
    VU_TRY_VOID(find_option("bind")->apply(spec, std::string(resolvconf) + ":/etc/resolv.conf"));
  }
  spec.ambient_caps = bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW) | bit(CAP_NET_BIND_SERVICE) |
                      bit(CAP_NET_BROADCAST) | (sysadm ? bit(CAP_SYS_ADMIN) : 0);
  return inv;
}

}  // namespace vu
