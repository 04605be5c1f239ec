// userns/userns.h — user namespaces and their uid/gid maps.
//
// Three identities, as in vdens/userbindmount and rootless Podman:
//   kKeep  — the caller's uid/gid map to themselves (one line each, setgroups deny): `id` inside
//            shows the same ids as outside. No helper needed.
//   kRoot  — the caller's uid/gid map to 0 (one line each, setgroups deny).
//   subordinate ranges (--map-users) — the caller's own id plus the range /etc/subuid and
//            /etc/subgid give them, written by the setuid newuidmap/newgidmap (Debian's uidmap);
//            setgroups stays allowed.
//
// Own-id maps are written by the process inside the new namespace (write_own_maps(), which is
// async-signal-safe so it can run between clone() and execve()); subordinate maps must be written
// from outside by newuidmap/newgidmap (run_newidmap()).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace vu::userns {

enum class Identity { kKeep, kRoot };

struct IdRange {
  unsigned long inside, outside, count;
  bool operator==(const IdRange&) const = default;
};

// One id map: the text written to /proc/PID/{uid,gid}_map ("inside outside count\n" per range).
struct IdMap {
  std::vector<IdRange> ranges;
  std::string to_proc() const;
  // Arguments for newuidmap/newgidmap after the pid: "inside outside count" triples.
  std::vector<std::string> to_args() const;
};

struct SubIdRange {
  unsigned long start, count;
};

// Finds the first subordinate range of `user` (by name or by numeric uid) in the text of
// /etc/subuid or /etc/subgid. Malformed lines are skipped, as shadow-utils does.
std::optional<SubIdRange> find_subid(std::string_view file_text, std::string_view user,
                                     unsigned long uid);

// The single-line map for kKeep or kRoot.
IdMap own_map(Identity identity, unsigned long own_id);
// The caller as `inside` in the view (an OCI image's User: `unshare --map-user=N`).
IdMap own_map_as(unsigned long inside, unsigned long own_id);
// Own id plus a subordinate range. kRoot: 0 → own, 1..count → sub. kKeep (Podman's keep-id):
// own → own, and the subordinate range fills 0..own-1 and own+1.. up to its size.
IdMap subid_map(Identity identity, unsigned long own_id, SubIdRange sub);
// Own id as `inside`, and the subordinate range below and above it (kRoot is inside 0, kKeep
// inside own_id).
IdMap subid_map_as(unsigned long inside, unsigned long own_id, SubIdRange sub);

// Pre-rendered own-id maps for write_own_maps().
struct OwnMaps {
  std::string uid_map, gid_map;
};
enum class MapStage { kNone = 0, kSetgroups, kUidMap, kGidMap };
// Writes /proc/self/setgroups ("deny"), uid_map and gid_map. Async-signal-safe: no allocation.
// Returns 0, or an errno with *stage saying which file failed.
int write_own_maps(const OwnMaps& maps, MapStage* stage);

// unshare(CLONE_NEWUSER | extra_flags) in the calling process, then maps the caller's own
// uid/gid to themselves (setgroups deny), as vdens and userbindmount do. Returns 0, or an errno
// with *stage: kNone when unshare itself failed, else the map file that was refused.
// Allocates: not for the clone→exec zone (the ns backend writes prepared maps instead).
int unshare_keep_ids(int extra_flags, MapStage* stage);

// Runs `prog` (newuidmap or newgidmap) for pid with the map; the error carries its stderr.
Result<void> run_newidmap(const char* prog, pid_t pid, const IdMap& map);

// The caller's user name (from the passwd database), or the uid in decimal.
std::string current_user_name();

// Raises each capability bit of `caps` as ambient (kept across execve by a process that is not
// root in its namespace): first into the inheritable set, then PR_CAP_AMBIENT_RAISE. Raw
// syscalls, no allocation (callable between clone() and execve()). Returns 0, or errno with
// *which set to the capability that failed (-1: capget/capset).
int raise_ambient(uint64_t caps, int* which);

}  // namespace vu::userns
