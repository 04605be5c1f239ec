// runtime/plan.h — for each part of a ViewSpec, how it will be realized, and why.
//
// `vu run` plans without probing (the launch itself finds out whether user namespaces work, and
// only then probes to explain a refusal); `vu run --explain` and `vu probe` pass a Fact.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/probe.h"
#include "runtime/view_spec.h"

namespace vu {

enum class Backend { kNs, kPvm };

struct PlanPart {
  std::string part;    // "identity", "mounts", "hostname", "network"
  std::string how;     // "user namespace: uid 1000 -> 0", …
};

struct Plan {
  Backend backend = Backend::kNs;
  std::string why;              // why this backend
  unsigned long clone_flags = 0;
  std::vector<PlanPart> parts;
};

// userns: the probed fact, or nullptr to assume namespaces work (the fast path).
Result<Plan> make_plan(const ViewSpec& spec, const Fact* userns);
std::string to_string(const Plan& plan);

// The plan for the partial-VM backend; refuses what it cannot give (--map-users, --cap, a
// network asked for explicitly).
Result<Plan> make_pvm_plan(const ViewSpec& spec, std::string why);

// pvm's tmpfs is a directory in /dev/shm: a --tmpfs size= limit is not enforced there.
bool pvm_ignores_size(const bindmount::MountSpec& m);
// Whether the pvm backend serves --fuse/--mount image: itself (pvm/fuse_client.h): VU_PVM_FUSE=monitor.
bool pvm_serves_fuse();

// The error for "user namespaces refused" (from a probe or a failed clone), naming the reason
// and what to do.
Error userns_denied(const std::string& detail, BackendWish wish);

}  // namespace vu
