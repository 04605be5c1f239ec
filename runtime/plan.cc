#include "runtime/plan.h"

#include <sched.h>
#include <unistd.h>

#include "base/strings.h"

namespace vu {

Error userns_denied(const std::string& detail, BackendWish wish) {
  std::string m = "user namespaces are not available: " + detail;
  if (wish == BackendWish::kNs) m += " (--backend=ns was requested)";
  return Error::make(ErrorKind::kDenied, m)
      .hint("the partial-VM backend (pvm), which needs no namespaces, is not part of this "
            "build yet; run 'vu probe' for what this machine allows");
}

Result<Plan> make_plan(const ViewSpec& spec, const Fact* userns) {
  if (spec.backend == BackendWish::kPvm)
    return Error::make(ErrorKind::kDenied,
                       "--backend=pvm: the partial-VM backend is not part of this build yet")
        .hint("use --backend=ns or auto");
  if (userns && !userns->yes) return userns_denied(userns->detail, spec.backend);

  Plan p;
  p.backend = Backend::kNs;
  p.why = spec.backend == BackendWish::kNs ? "requested (--backend=ns)"
          : userns ? "user namespaces work here (" + userns->detail + ")"
                   : "auto: user namespaces are tried first";
  p.clone_flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS;

  std::string uid = std::to_string(::getuid());
  std::string ident = spec.identity == userns::Identity::kRoot ? "uid " + uid + " -> 0 (root)"
                                                               : "uid " + uid + " kept";
  ident += spec.map_users ? ", plus subordinate ids (newuidmap/newgidmap)"
                          : ", setgroups denied";
  p.parts.push_back({"identity", "user namespace: " + ident});

  if (spec.mounts.empty()) {
    p.parts.push_back({"mounts", "mount namespace (private copy of the host's mounts)"});
  } else {
    for (size_t i = 0; i < spec.mounts.size(); ++i)
      p.parts.push_back({i ? "" : "mounts", "mount namespace: " + bindmount::to_string(spec.mounts[i])});
  }
  p.parts.push_back({"hostname", spec.hostname ? "uts namespace: " + *spec.hostname
                                               : "uts namespace (host's name kept)"});
  if (spec.net == NetMode::kNone) {
    p.clone_flags |= CLONE_NEWNET;
    p.parts.push_back({"network", "network namespace with lo up, no uplink"});
  } else {
    p.parts.push_back({"network", "host network (no network namespace)"});
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
