// runtime/probe.h — what this kernel allows an unprivileged user, with the reason when not.
//
// Each fact is established by trying it in a throw-away child process (the way it will be used),
// never by reading version numbers alone, and comes with a sentence a user can act on:
//   user namespaces: no — unshare(CLONE_NEWUSER): EPERM; a seccomp filter is active (Seccomp: 2),
//                    as Docker's default profile: it denies namespace creation
// `vu probe` prints them all; the planner asks only for what a spec needs.
#pragma once

#include <string>
#include <vector>

namespace vu {

struct Fact {
  std::string name;
  bool yes = false;
  std::string detail;  // why (not), or what was found
};

Fact probe_userns();
Fact probe_fuse_in_userns();
Fact probe_tun_in_userns();
Fact probe_overlay_in_userns();
Fact probe_seccomp_unotify();
Fact probe_ptrace();

std::vector<Fact> probe_all();

// Why user namespaces are refused, given the errno of unshare/clone(CLONE_NEWUSER).
std::string explain_userns_errno(int err);

}  // namespace vu
