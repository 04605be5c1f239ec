#include "runtime/cli.h"

#include <CLI/CLI.hpp>
#include <cstring>
#include <map>
#include <memory>

#include "base/strings.h"
#include "runtime/config.h"

namespace vu {

namespace {

constexpr const char* kExitText =
    "Exit status:\n"
    "  the command's status; 128+N if it was killed by signal N;\n"
    "  2 usage error (option, value, view file, missing bind source);\n"
    "  125 the view could not be set up; 126 command not executable; 127 command not found.\n"
    "  When the status comes from vu itself, a line starting 'vu:' says why on stderr.\n";

// Options that are vu's own, not part of the view (and so not config-file keys).
struct RunFlags {
  std::vector<std::string> files;
  bool explain = false;
  int verbose = 0;
  bool quiet = false;
};

void add_run_options(CLI::App& app, RunFlags& flags, bool with_command) {
  for (const OptionDef& o : run_options()) {
    std::string names = o.short_name ? std::string("-") + o.short_name + ",--" + o.name
                                     : std::string("--") + o.name;
    CLI::Option* opt;
    if (o.is_flag) {
      opt = app.add_flag(names, o.help);
      if (!o.repeatable) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    } else {
      opt = app.add_option(names, o.help)->type_name(o.value_name)->expected(o.arity);
      opt->multi_option_policy(o.repeatable ? CLI::MultiOptionPolicy::TakeAll
                                            : CLI::MultiOptionPolicy::TakeLast);
      opt->allow_extra_args(false);
    }
    opt->group("View");
  }
  app.add_option("-f,--file", flags.files,
                 "Read the view from a TOML file whose keys are these long options (and "
                 "'command'); command-line options apply after it.")
      ->type_name("FILE")
      ->group("vu");
  if (with_command)
    app.add_flag("--explain", flags.explain,
                 "Print how each part of the view would be built, with reasons, and exit.")
        ->group("vu");
  app.add_flag("-v,--verbose", flags.verbose, "Say what is being done (twice: debug).")
      ->group("vu");
  app.add_flag("-q,--quiet", flags.quiet, "Only errors.")->group("vu");
}

// Index of the first argument that is not one of vu's options (nor the value of one), i.e. where
// the command starts; "--" is skipped. Returns {end of options, start of command}.
std::pair<int, int> split_command(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--") == 0) return {i, i + 1};
    if (a[0] != '-' || a[1] == 0) return {i, i};
    if (std::strchr(a, '=')) continue;  // --name=value
    // Does this option take a separate value?
    bool takes_value = false;
    if (a[1] == '-') {
      const OptionDef* o = find_option(a + 2);
      takes_value = (o && !o->is_flag) || std::strcmp(a, "--file") == 0;
      if (o && o->arity == 2) ++i;
    } else if (a[2] == 0) {  // a lone short option: -b X, -C X, -f X
      for (const OptionDef& o : run_options())
        if (o.short_name == a[1] && !o.is_flag) takes_value = true;
      takes_value = takes_value || a[1] == 'f';
    }
    if (takes_value) ++i;
  }
  return {argc, argc};
}

std::unique_ptr<CLI::App> make_run_app(const char* name, RunFlags& flags, bool with_command) {
  auto app_owner = std::make_unique<CLI::App>(with_command
                   ? "Run CMD (default $SHELL) in a view: its own mounts, identity, host name "
                     "and network, built with user namespaces where the kernel allows."
                   : "Start $SHELL in a view (vu run without a command).",
               name);
  CLI::App& app = *app_owner;
  app.set_help_flag("-h,--help", "Show this help and exit.");
  add_run_options(app, flags, with_command);
  app.footer(std::string("\nExamples:\n"
                         "  vu run -- id\n"
                         "  vu run --root -- id -u\n"
                         "  vu run --bind /tmp/r:/etc/resolv.conf -- cat /etc/resolv.conf\n"
                         "  vu run --tmpfs /scratch --hostname box -- sh -c 'hostname; ls /scratch'\n"
                         "  vu run -f view.toml --explain\n\n") +
             kExitText);
  return app_owner;
}

// Parses argv[first, end) with `app`. Returns true when --help was asked: inv then holds the
// text. A parse error names `name`, adds `note` for an extra-arguments error, points at --help.
Result<bool> parse_with(CLI::App& app, char** argv, int first, int end, const std::string& name,
                        Invocation& inv, const char* note = nullptr) {
  std::vector<std::string> args;
  for (int i = end - 1; i >= first; --i) args.emplace_back(argv[i]);  // CLI11 wants them reversed
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    inv.command = Invocation::Command::kHelpShown;
    inv.help = app.help();
    return true;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (note && dynamic_cast<const CLI::ExtrasError*>(&e)) what += note;
    return Error::usage(name + ": " + what).hint("see '" + name + " --help'");
  }
  return false;
}

Result<Invocation> parse_run(int argc, char** argv, int first, Invocation::Command cmd) {
  Invocation inv;
  inv.command = cmd;
  const bool with_command = cmd == Invocation::Command::kRun;
  auto [opt_end, cmd_start] = with_command ? split_command(argc, argv, first)
                                           : std::pair<int, int>{argc, argc};
  RunFlags flags;
  std::string name = std::string("vu ") + argv[first - 1];
  auto app_owner = make_run_app(name.c_str(), flags, with_command);
  CLI::App& app = *app_owner;
  if (VU_TRY(parse_with(app, argv, first, opt_end, name, inv,
                        with_command ? nullptr : " (vu shell takes no command; use vu run)")))
    return inv;
  for (const std::string& f : flags.files) VU_TRY_VOID(load_config_file(f, &inv.spec));
  // Apply the view options in command-line order, so mounts stack as written.
  std::map<const CLI::Option*, size_t> used;
  for (const CLI::Option* o : app.parse_order()) {
    if (o->get_lnames().empty()) continue;
    const OptionDef* def = find_option(o->get_lnames().front());
    if (!def) continue;
    // parse_order() lists an option once per value it took: an arity-2 option comes twice.
    size_t k = used[o]++;
    if (k % static_cast<size_t>(def->arity)) continue;
    if (o->results().size() < k + static_cast<size_t>(def->arity))
      return Error::usage(name + ": --" + def->name + " takes " + std::to_string(def->arity) + " values: " + def->value_name)
          .hint("see '" + name + " --help'");
    std::string v = def->is_flag ? "true" : o->results().at(k);
    if (def->arity == 2) v += '\0' + o->results().at(k + 1);
    auto r = def->apply(inv.spec, v);
    if (!r) return std::move(r).error();
  }
  for (int i = cmd_start; i < argc; ++i) inv.spec.command.emplace_back(argv[i]);
  inv.explain = flags.explain;
  inv.verbosity = flags.quiet ? -1 : flags.verbose;
  return inv;
}

Result<Invocation> parse_net(int argc, char** argv) {
  Invocation inv;
  if (argc < 3 || std::strcmp(argv[2], "attach") != 0) {
    if (argc >= 3 && (std::strcmp(argv[2], "-h") == 0 || std::strcmp(argv[2], "--help") == 0)) {
      inv.command = Invocation::Command::kHelpShown;
      inv.help = "Usage: vu net attach [OPTIONS] VNL\n(see vu net attach --help)\n";
      return inv;
    }
    return Error::usage("vu net: expected 'attach'").hint("vu net attach [--netns NAME] [--ip A/L] VNL");
  }
  inv.command = Invocation::Command::kNetAttach;
  CLI::App app("Plug a tap in an existing network namespace (the current one, or --netns) into a "
               "VDE network or slirp, until SIGINT/SIGTERM. Needs CAP_NET_ADMIN over that namespace, "
               "e.g. from cado: cado net_admin -- vu net attach vde:///tmp/sw",
               "vu net attach");
  app.set_help_flag("-h,--help", "Show this help and exit.");
  std::string vnl, netns;
  std::vector<std::string> ip;
  std::string gw, mtu;
  bool stats = false;
  app.add_option("VNL", vnl, "slirp[:allow-host-loopback] or a VDE network locator")->required();
  app.add_option("--netns", netns, "Namespace file, or NAME for /run/netns/NAME (default: the current one)");
  app.add_option("--name", inv.attach.name, "Interface name (default vde0)");
  app.add_option("--ip", ip, "IPv4 address/prefix of the interface (slirp default 10.0.2.100/24)");
  app.add_option("--gw", gw, "IPv4 default gateway (slirp default 10.0.2.2)");
  app.add_option("--mtu", mtu, "MTU (slirp 65520, VDE 1500)");
  app.add_flag("--net-stats", stats, "At exit, print frames, bytes and drops.");
  if (VU_TRY(parse_with(app, argv, 3, argc, "vu net attach", inv))) return inv;
  vdens::NetSpec& net = inv.attach.net;
  VU_TRY_VOID(vdens::add_net(net, vnl));
  if (net.kind != vdens::NetKind::kUplinks)
    return Error::usage("vu net attach: " + str::quote(vnl) + " is not a network to attach to").hint("give slirp or a VNL");
  for (const std::string& a : ip) VU_TRY_VOID(vdens::add_ip(net, a));
  if (!gw.empty()) VU_TRY_VOID(vdens::set_gateway(net, gw));
  if (!mtu.empty()) VU_TRY_VOID(vdens::set_mtu(net, mtu));
  net.stats = stats;
  VU_TRY_VOID(vdens::finish(net));
  net.dns.clear();  // attach writes no resolv.conf
  if (!netns.empty()) inv.attach.netns = vdens::netns_path(netns);
  return inv;
}

}  // namespace

std::string top_help() {
  return std::string(
             "vu — give a command its own view of the system, without privileges.\n\n"
             "Usage:\n"
             "  vu run [OPTIONS] [--] [CMD [ARGS...]]   run CMD (default $SHELL) in a view\n"
             "  vu shell [OPTIONS]                      run $SHELL in a view\n"
             "  vu probe                                what this kernel allows, and why not\n"
             "  vu net attach [OPTIONS] VNL             plug the current network namespace into VDE/slirp\n"
             "  vu create NAME --rootfs TREE [OPTIONS]  a named container (persistent layer over TREE)\n"
             "  vu enter NAME [OPTIONS] [-- CMD]        run CMD in it;  vu ls;  vu rm NAME\n"
             "  vu userbindmount [-nsv] [SRC TGT ...] [-- CMD]   userbindmount-compatible\n"
             "  vu vdens [-m] [-i PFX] [-r F] [-R A] [-H N] [-s] [VNL [CMD]]   vdens-compatible\n"
             "  vu version\n\n"
             "'vu run --help' lists the view options; every one may also be given in a TOML\n"
             "view file (vu run -f FILE). Environment: VU_LOG=error|warn|info|debug.\n\n") +
         kExitText;
}

std::string run_help() {
  RunFlags flags;
  return make_run_app("vu run", flags, true)->help();
}

Result<Invocation> parse_args(int argc, char** argv) {
  Invocation inv;
  if (argc < 2) {
    return Error::usage("no command given").hint("try 'vu run -- id', 'vu shell' or 'vu --help'");
  }
  std::string_view sub = argv[1];
  if (sub == "run") return parse_run(argc, argv, 2, Invocation::Command::kRun);
  if (sub == "shell") return parse_run(argc, argv, 2, Invocation::Command::kShell);
  if (sub == "probe") {
    if (argc > 2 && (std::strcmp(argv[2], "-h") == 0 || std::strcmp(argv[2], "--help") == 0)) {
      inv.command = Invocation::Command::kHelpShown;
      inv.help =
          "Usage: vu probe\n"
          "Report, with reasons, what this kernel and machine allow an unprivileged user:\n"
          "user namespaces, FUSE and tun in a user namespace, overlayfs in a user namespace,\n"
          "seccomp user notification and ptrace; and which backend `vu run` would use.\n"
          "Always exits 0 (the report is the result).\n";
      return inv;
    }
    if (argc > 2) return Error::usage("vu probe takes no arguments (got " + str::quote(argv[2]) + ")");
    inv.command = Invocation::Command::kProbe;
    return inv;
  }
  if (sub == "net") return parse_net(argc, argv);
  if (sub == "create" || sub == "enter" || sub == "rm" || sub == "ls") {
    const bool help = argc > 2 && (std::strcmp(argv[2], "-h") == 0 || std::strcmp(argv[2], "--help") == 0);
    if (help || (sub != "ls" && argc < 3)) {
      if (!help) return Error::usage("vu " + std::string(sub) + ": which container?").hint("see 'vu " + std::string(sub) + " --help'");
      inv.command = Invocation::Command::kHelpShown;
      inv.help = sub == "create"
                     ? "Usage: vu create NAME --rootfs TREE|ARCHIVE [OPTIONS of vu run]\n"
                       "Make a named container: a view of the root tree with a writable layer that persists\n"
                       "($XDG_DATA_HOME/vu/containers/NAME: view.toml and layer/). The options are vu run's.\n"
                       "Example: vu create dev --rootfs ./debian-rootfs --root\n"
                   : sub == "enter"
                     ? "Usage: vu enter NAME [OPTIONS of vu run] [-- CMD [ARGS...]]\n"
                       "Run CMD (default: the view file's command, else a shell) in container NAME: its view\n"
                       "file plus --cow LAYER:/ (changes persist). One enter at a time per container.\n"
                   : sub == "rm" ? "Usage: vu rm NAME\nRemove container NAME (its view file and layer).\n"
                                 : "Usage: vu ls\nList the containers: name, root tree, layer size, last use.\n";
      return inv;
    }
    inv.command = sub == "create" ? Invocation::Command::kCreate
                  : sub == "enter" ? Invocation::Command::kEnter
                  : sub == "rm"    ? Invocation::Command::kRemove
                                   : Invocation::Command::kList;
    if (sub == "ls" && argc > 2) return Error::usage("vu ls takes no arguments");
    if (sub == "rm" && argc > 3) return Error::usage("vu rm takes one name");
    if (sub != "ls") inv.container = argv[2];
    for (int i = 3; i < argc; ++i) inv.arguments.emplace_back(argv[i]);
    return inv;
  }
  if (sub == "userbindmount") {
    inv.command = Invocation::Command::kUserbindmount;
    return inv;
  }
  if (sub == "version" || sub == "--version") {
    inv.command = Invocation::Command::kVersion;
    return inv;
  }
  if (sub == "-h" || sub == "--help" || sub == "help") {
    inv.command = Invocation::Command::kHelpShown;
    inv.help = top_help();
    return inv;
  }
  return Error::usage("unknown command " + str::quote(sub))
      .hint("commands are run, shell, probe, create, enter, ls, rm, net, userbindmount, vdens, version; "
            "see 'vu --help'");
}

}  // namespace vu
