// vu — the command-line entry point. Parses, dispatches, prints errors once, picks exit codes.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "base/log.h"
#include "bindmount/userbindmount.h"
#include "runtime/cli.h"
#include "runtime/containers.h"
#include "runtime/exit_codes.h"
#include "runtime/net_attach.h"
#include "runtime/net_helper.h"
#include "runtime/ns_backend.h"
#include "runtime/plan.h"
#include "pvm/vstack.h"
#include "runtime/pvm_backend.h"
#include "runtime/pvm_stack_net.h"
#include "runtime/probe.h"
#include "runtime/supervisor.h"
#include "runtime/vdens_cmd.h"
#include "runtime/watchdog.h"

#ifndef VU_VERSION
#define VU_VERSION "0.1.0"
#endif

namespace vu {
namespace {

int report(const Error& e) {
  std::string msg = "vu: " + e.to_string() + "\n";
  (void)!::write(2, msg.data(), msg.size());
  return exit_status_for(e.kind());
}

int cmd_probe() {
  std::vector<Fact> facts = probe_all();
  for (const Fact& f : facts) std::printf("%-32s %-4s %s\n", f.name.c_str(), f.yes ? "yes" : "no", f.detail.c_str());
  ViewSpec spec;
  auto plan = make_plan(spec, &facts[0]);
  std::printf("\n%-32s %s\n", "vu run would use",
              !plan ? ("nothing: " + plan.error().message()).c_str()
              : plan->backend == Backend::kNs ? "the ns backend (user namespaces)"
                                              : "the pvm backend (partial virtual machine: seccomp user "
                                                "notification and ptrace)");
  auto fact = [&](std::string_view name) {
    for (const Fact& f : facts)
      if (f.name == name) return f.yes;
    return false;
  };
  const bool fuse = fact("FUSE in a user namespace"), overlay = fact("overlayfs in a user namespace");
  std::printf("%-32s %s\n", "vu run --cow would use",
              !facts[0].yes   ? "the pvm monitor's own copy-on-write, no FUSE (--fuse and --mount need user namespaces)"
              : overlay && fuse ? "kernel overlayfs for a tree you own, vu-cowfs (FUSE) otherwise"
              : overlay       ? "kernel overlayfs for a tree you own; other trees fail (no FUSE)"
              : fuse          ? "vu-cowfs (FUSE) (no overlayfs in a user namespace)"
                              : "nothing (neither overlayfs nor FUSE in a user namespace)");
  const PvmFuseEnv fenv = probe_pvm_fuse();
  std::printf("%-32s %s\n", "pvm: --fuse/--mount",
              (fenv.b ? "kernel FUSE, " + fenv.why
                      : "served by vu's monitor (" + fenv.why + "): files are copied into the view on open and written back at sync and exit").c_str());
  return 0;
}

int finish_run(const ExitStatus& st, std::vector<pid_t> spare) {
  if (int n = kill_leftovers(std::move(spare)))
    VU_LOG_INFO("killed " << n << " process(es) the command left running in the view");
  if (st.signaled) VU_LOG_INFO("command killed by signal " << st.value << " (" << strsignal(st.value) << ")");
  return st.shell_status();
}

Result<int> run_pvm(const ViewSpec& spec, const SignalForwarder& signals) {
  PvmView view = VU_TRY(start_pvm_view(spec, signals.child_mask()));
  if (view.fuse) {
    // The command runs once every FUSE filesystem is mounted (runtime/pvm_fuse.h).
    if (auto r = view.fuse->wait_mounted(*view.monitor, view.child.pid(), signals.fd()); !r) {
      view.go.reset();
      view.fuse->teardown(view.monitor.get(), signals.fd());
      kill_leftovers();
      view.child.release();  // reaped by kill_leftovers
      return std::move(r).error();
    }
    char go = 1;
    VU_TRY_VOID(sys::write_all(view.go.get(), {&go, 1}, "sync pipe"));
    view.go.reset();
  }
  std::string report;
  SuperviseExtras extras{view.monitor.get(), view.report.get(), &report};
  extras.on_other_exit = [&](pid_t p, int status) {
    if (view.fuse) view.fuse->on_exit(p, status);
    // vu-vstack gone before the view (killed, crashed): said, as vu-net's end is on ns; the
    // view's connections end (their pairs closed), new sockets fail.
    if (view.net) view.net->note_exit(p, status);
    if (p == view.vstack && p > 0) {
      view.vstack = -1;
      pvm::vstack_reaped(*view.stack);
      say_network_helper_gone("vu-vstack", "the view's VDE network", p, status);
    }
  };
  ExitStatus st = VU_TRY(supervise(view.child, signals, extras));
  if (view.fuse) view.fuse->teardown(view.monitor.get(), signals.fd());
  // A report may still be in the pipe when the first process exits.
  char buf[64];
  ssize_t n;
  while ((n = ::read(view.report.get(), buf, sizeof buf)) > 0) report.append(buf, static_cast<size_t>(n));
  // The FUSE programs first: their write-back before the view's leftovers are killed with them.
  const int fuse_rc = stop_pvm_fuse(view);
  // vu-vstack ends by itself, its connections flushed; so does stack mode's vu-net after it. Both
  // are waited for: no helper outlives vu.
  int status = finish_run(st, {view.vstack, view.net ? view.net->pid() : -1});
  pvm_stack_finish(view.stack.get(), &view.net);
  if (fuse_rc && status == 0) status = fuse_rc;
  if (auto failure = view.failure(report)) return std::move(*failure);
  const pvm::Stats& s = view.monitor->stats();
  VU_LOG_DEBUG("pvm: " << s.notifications << " notifications (" << s.continued << " continued, "
                       << s.performed << " performed), " << s.traced << " ptrace stops");
  if (pvm::stats_enabled()) std::fputs(view.monitor->report().c_str(), stderr);
  return status;
}

// Whether `vu run|shell ARGS` will probably want vu-net: a view's network is slirp unless the
// command line says otherwise. Only a guess, for NetHelper::prestart: a view file can still set
// `net`, and a wrong guess costs an unused vu-net (it exits on EOF) or the helper's usual start.
bool wants_net_helper(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "run") != 0 && std::strcmp(argv[1], "shell") != 0)) return false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i], next = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--") break;
    if (a == "-h" || a == "--help" || a == "--explain") return false;
    if (a == "--net" || a == "--backend") a = next;
    else if (a.starts_with("--net=")) a.remove_prefix(6);
    else if (a.starts_with("--backend=")) a.remove_prefix(10);
    else continue;
    if (a == "none" || a == "host" || a == "pvm" || a.starts_with("join:")) return false;
  }
  return true;
}

Result<int> cmd_run(Invocation& inv, std::optional<NetHelper> pre_net) {
  ViewSpec& spec = inv.spec;
  if (inv.command == Invocation::Command::kShell) spec.command.clear();
  VU_TRY_VOID(finalize(spec));
  if (inv.explain) {
    Fact userns = probe_userns();
    Plan plan = VU_TRY(make_plan(spec, &userns));
    std::string cmd = spec.command.empty() ? "$SHELL" : "";
    for (const std::string& a : spec.command) cmd += (cmd.empty() ? "" : " ") + a;
    std::printf("%scommand   %s\n", to_string(plan).c_str(), cmd.c_str());
    return 0;
  }
  Plan plan = VU_TRY(make_plan(spec, nullptr));
  if (spec.net.kind == vdens::NetKind::kJoin) VU_TRY_VOID(join_netns(spec.net.join, "--net join"));
  SignalForwarder signals = VU_TRY(SignalForwarder::install());
  if (plan.backend == Backend::kPvm) return run_pvm(spec, signals);
  std::optional<NetHelper> net;
  if (spec.net.kind == vdens::NetKind::kUplinks)
    net.emplace(VU_TRY(NetHelper::start(spec.net, std::move(pre_net))));
  pre_net.reset();
  // If vu is killed once the view exists, the watchdog kills what the view leaves.
  auto watchdog = Watchdog::start();
  if (!watchdog) VU_LOG_INFO("no watchdog for the view: " << watchdog.error().to_string());
  // Layers the ns attempt makes (prepare_cow): removed again, while empty, if it falls back.
  std::vector<std::string> new_layers;
  for (const fusefs::CowSpec& c : spec.cows)
    if (::access(c.layer.c_str(), F_OK) != 0) new_layers.push_back(c.layer);
  auto started = start_ns_view(spec, plan, signals.child_mask(), net ? net->view_socket() : -1,
                               watchdog ? watchdog->identity_fd() : -1);
  if (!started && spec.backend == BackendWish::kAuto) {
    // User namespaces are refused here, or made but unable to mount or set a host name (an LSM
    // policy such as Ubuntu's AppArmor rule): the same view from the partial-VM backend. The
    // command has not run; the probe decides, so that `vu probe` and `vu run` always agree.
    std::string why;
    if (started.error().kind() == ErrorKind::kDenied) {
      why = started.error().message();
    } else if (started.error().err() == EPERM || started.error().err() == EACCES) {
      if (Fact f = probe_userns(); !f.yes) why = "user namespaces are not usable (" + f.detail + ")";
    }
    if (!why.empty()) {
      net.reset();
      if (watchdog) watchdog->disarm();
      for (const std::string& l : new_layers) (void)::rmdir(l.c_str());
      if (auto pvm = make_pvm_plan(spec, why); !pvm) return std::move(pvm).error().context(why);
      VU_LOG_INFO(why << "; using the partial-VM backend (pvm)");
      return run_pvm(spec, signals);
    }
  }
  if (!started) return std::move(started).error();
  NsView view = std::move(started).value();
  const pid_t wd = watchdog ? watchdog->pid() : -1;
  SuperviseExtras extras;
  if (net) extras.on_other_exit = [&net](pid_t p, int status) { net->note_exit(p, status); };
  ExitStatus st = view.command_status(VU_TRY(supervise(view.child, signals, std::move(extras))));
  if (view.keeper > 0) {
    // The view's other processes go first (they may hold files open in the FUSE mounts), then
    // the keeper unmounts and waits for the FUSE programs to flush.
    if (int n = kill_leftovers({view.keeper, net ? net->pid() : -1, wd}))
      VU_LOG_INFO("killed " << n << " process(es) the command left running in the view");
    view.stop_keeper();
  }
  std::vector<pid_t> spare{wd};
  if (net) {
    net->stop();
    spare.push_back(net->pid());
  }
  return finish_run(st, std::move(spare));
}

int main_impl(int argc, char** argv) {
  log::init_from_env();
  const char* base = std::strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (std::strcmp(base, "userbindmount") == 0) return bindmount::userbindmount_main(argc, argv);
  const bool as_vdens = std::strcmp(base, "vdens") == 0;
  const bool sub_vdens = !as_vdens && argc > 1 && std::strcmp(argv[1], "vdens") == 0;
  std::optional<NetHelper> pre_net = wants_net_helper(argc, argv) ? NetHelper::prestart() : std::nullopt;

  auto inv = as_vdens ? parse_vdens(argc, argv)
             : sub_vdens ? parse_vdens(argc - 1, argv + 1)
                         : parse_args(argc, argv);
  // vdens reports every failure of its own with status 1.
  if (!inv && (as_vdens || sub_vdens)) {
    report(inv.error());
    return 1;
  }
  if (!inv) return report(inv.error());
  if (inv->verbosity > 0) log::set_level(inv->verbosity > 1 ? log::Level::kDebug : log::Level::kInfo);
  if (inv->verbosity < 0) log::set_level(log::Level::kError);
  switch (inv->command) {
    case Invocation::Command::kHelpShown:
      std::fputs(inv->help.c_str(), stdout);
      return 0;
    case Invocation::Command::kVersion:
      std::printf("vu %s\n", VU_VERSION);
      return 0;
    case Invocation::Command::kNetAttach: {
      auto r = net_attach(inv->attach);
      return r ? *r : report(r.error());
    }
    case Invocation::Command::kProbe:
      return cmd_probe();
    case Invocation::Command::kCreate: {
      auto r = containers::create(inv->container, inv->arguments);
      return r ? *r : report(r.error());
    }
    case Invocation::Command::kList: {
      auto r = containers::list();
      return r ? *r : report(r.error());
    }
    case Invocation::Command::kRemove: {
      auto r = containers::remove(inv->container);
      return r ? *r : report(r.error());
    }
    case Invocation::Command::kEnter: {
      // vu run -f VIEW --cow LAYER:/ …, with the container's lock held until vu exits.
      int lock = -1;
      auto args = containers::enter_argv(inv->container, inv->arguments, &lock);
      if (!args) return report(args.error());
      std::vector<char*> av;
      for (std::string& a : *args) av.push_back(a.data());
      av.push_back(nullptr);
      auto run = parse_args(static_cast<int>(av.size()) - 1, av.data());
      if (!run) return report(run.error());
      if (run->command == Invocation::Command::kHelpShown) {
        std::fputs(run->help.c_str(), stdout);
        return 0;
      }
      if (run->verbosity > 0) log::set_level(run->verbosity > 1 ? log::Level::kDebug : log::Level::kInfo);
      auto r = cmd_run(*run, std::nullopt);
      std::fflush(stdout);
      return r ? *r : report(r.error());
    }
    case Invocation::Command::kUserbindmount:
      return bindmount::userbindmount_main(argc - 1, argv + 1);
    case Invocation::Command::kRun:
    case Invocation::Command::kShell: {
      auto r = cmd_run(*inv, std::move(pre_net));
      std::fflush(stdout);
      if (r) return *r;
      int status = report(r.error());
      return (as_vdens || sub_vdens) ? 1 : status;  // vdens's code for any failure of its own
    }
  }
  return 0;
}

}  // namespace
}  // namespace vu

int main(int argc, char** argv) { return vu::main_impl(argc, argv); }
