#!/usr/bin/env bash
# bench/rootfs.sh [VU] — the first use of a ~100 MB tarball as --rootfs: `vu run --rootfs T --
# true` with an empty cache (vu-unpack reads, checks and unpacks it), side by side with `tar xzf
# T` into the same filesystem, in one run; median of RUNS (default 3) each, and the ratio (the
# issue's target: <= 1.3).
#
# UNPACK_OLD=FILE adds a row for that vu-unpack binary (e.g. the one before a change), run
# directly (`FILE T CACHE`), as is this build's vu-unpack next to vu.
#
# T is made here: files of /usr (include, share, lib) up to ~250 MB, gzip -1 (~100 MB). Runs as
# an unprivileged user (as root it re-runs itself as $VU_TEST_USER); on /dev/shm when there is
# one (ROOTFS_BENCH_DIR overrides), so a disk's moods do not drown the unpacker's own cost.
#
# Then, in a Debian tree (ROOTFS_DEBIAN: the tarball integration.rootfs makes with mmdebstrap,
# build/test-cache/debian-*-apt.tar by default; these rows are skipped with a line without it):
#   - work in the tree: `dpkg -L coreutils | xargs stat >/dev/null` and `tar cf - /usr | wc -c`
#     under vu --backend=pvm --rootfs, vu --backend=ns --rootfs and `proot -r` (the issue's
#     target: pvm >= 10x faster than proot);
#   - start-up: `vu run --rootfs DIR -- true` (ns and pvm) beside `bwrap --bind DIR / --proc
#     /proc --dev /dev true` (target: ns <= 1.5x) and `podman run --rm --rootfs DIR true`
#     (skipped with a line when podman is absent).
# ROOTFS_BENCH_PARTS="unpack tree startup" (default: all three) picks the parts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-3}
parts=${ROOTFS_BENCH_PARTS:-unpack tree startup}
if [ "$(id -u)" = 0 ] && [ -z "${ROOTFS_DEBIAN:-}" ]; then
  d=$(ls "$here"/../build/test-cache/debian-*-apt.tar 2>/dev/null | head -1 || true)
  if [ -n "$d" ]; then  # where the unprivileged user can read it
    ROOTFS_DEBIAN=$(mktemp -d /tmp/vu-bench-debian.XXXXXX)/debian.tar
    cp "$d" "$ROOTFS_DEBIAN" && chmod 755 "$(dirname "$ROOTFS_DEBIAN")" && chmod 644 "$ROOTFS_DEBIAN"
    export ROOTFS_DEBIAN
    trap 'rm -rf "$(dirname "$ROOTFS_DEBIAN")"' EXIT
  fi
fi

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools tar gzip

base=${ROOTFS_BENCH_DIR:-$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp)}
tmp=$(mktemp -d "$base/vu-bench-rootfs.XXXXXX"); trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
if [[ " $parts " == *" unpack "* ]]; then
find /usr/include /usr/share /usr/lib -xdev -type f -readable -size -8M -printf '%s %p\n' 2>/dev/null |
  awk '{ n += $1; if (n > 250e6) exit; print substr($0, index($0, " ") + 1) }' > "$tmp/list" || true  # find: SIGPIPE
# A --rootfs tree needs a /bin/sh (whether `true` then runs in it does not matter here).
mkdir -p "$tmp/extra/bin" && cp /bin/sh /bin/true "$tmp/extra/bin/"
tar -cf - -T "$tmp/list" -C "$tmp/extra" bin 2>/dev/null | gzip -1 > "$tmp/tree.tgz"
entries=$(wc -l < "$tmp/list")
size=$(stat -c %s "$tmp/tree.tgz")

T=() V=() U=() O=()
unpack=$(dirname "$vu")/vu-unpack
for _ in $(seq "$runs"); do
  rm -rf "$tmp/x" "$tmp/cache" && mkdir "$tmp/x" && sync
  s=$(now); tar -C "$tmp/x" -xzf "$tmp/tree.tgz"; e=$(now)
  T+=("$(echo "$s $e" | awk '{ print $2 - $1 }')")
  rm -rf "$tmp/x" && sync
  s=$(now); XDG_CACHE_HOME=$tmp/cache "$vu" run --net none --rootfs "$tmp/tree.tgz" -- /bin/true 2>/dev/null || true; e=$(now)
  V+=("$(echo "$s $e" | awk '{ print $2 - $1 }')")
  rm -rf "$tmp/cache" && sync
  s=$(now); "$unpack" "$tmp/tree.tgz" "$tmp/cache" >/dev/null; e=$(now)
  U+=("$(echo "$s $e" | awk '{ print $2 - $1 }')")
  if [ -n "${UNPACK_OLD:-}" ]; then
    rm -rf "$tmp/cache" && sync
    s=$(now); "$UNPACK_OLD" "$tmp/tree.tgz" "$tmp/cache" >/dev/null; e=$(now)
    O+=("$(echo "$s $e" | awk '{ print $2 - $1 }')")
  fi
  rm -rf "$tmp/cache"
done
t=$(printf '%s\n' "${T[@]}" | median); v=$(printf '%s\n' "${V[@]}" | median)
echo "first use of a $((size / 1000000)) MB tarball ($entries files, gzip -1), on $base; median of $runs"
printf '%-52s %8s %6s\n' "command" "seconds" "ratio*"
printf '%-52s %8.2f %6.2f\n' "tar xzf T" "$t" 1
row() { printf '%-52s %8.2f %6.2f\n' "$1" "$2" "$(awk -v a="$2" -v b="$t" 'BEGIN { print a / b }')"; }
row "vu run --rootfs T -- true (empty cache: unpack)" "$v"
row "vu-unpack T CACHE" "$(printf '%s\n' "${U[@]}" | median)"
[ ${#O[@]} = 0 ] || row "vu-unpack T CACHE (old: UNPACK_OLD)" "$(printf '%s\n' "${O[@]}" | median)"
echo "* ratio to tar xzf (target for vu: <= 1.30)"
fi

# --- a Debian tree: work in it (pvm vs proot) and start-up (vs bwrap, podman) -------------------
[[ " $parts " == *" tree "* || " $parts " == *" startup "* ]] || exit 0
deb=${ROOTFS_DEBIAN:-}
if [ -z "$deb" ] || [ ! -r "$deb" ]; then
  echo "Debian tree rows skipped: no ROOTFS_DEBIAN tarball (ctest -R integration.rootfs makes build/test-cache/debian-*-apt.tar)"
  exit 0
fi
cd /tmp
XDG_CACHE_HOME=$tmp/dcache "$vu" run --net none --rootfs "$deb" -- true
D=$(ls -d "$tmp"/dcache/vu/trees/*/ | head -1); D=${D%/}
# time_median CMD…: the median wall time of RUNS runs (output discarded), seconds.
time_median() {
  local s e all=()
  for _ in $(seq "$runs"); do
    s=$(now); "$@" >/dev/null 2>&1 || true; e=$(now)
    all+=("$(echo "$s $e" | awk '{ print $2 - $1 }')")
  done
  printf '%s\n' "${all[@]}" | median
}
if [[ " $parts " == *" tree "* ]]; then
  require_tools proot
  echo
  echo "work in a Debian tree ($D), median of $runs"
  printf '%-86s %8s %8s %6s\n' "command" "seconds" "proot/x" "x/ns"
  for w in 'dpkg -L coreutils | xargs stat >/dev/null' 'tar cf - /usr | wc -c'; do
    p=$(time_median proot -r "$D" -b /proc -b /dev -w / sh -c "$w")
    v=$(time_median "$vu" run --backend=pvm --net none --rootfs "$D" -- sh -c "$w")
    n=$(time_median "$vu" run --backend=ns --net none --rootfs "$D" -- sh -c "$w")
    wrow() { printf '%-86s %8.3f %8.1f %6.2f\n' "$1" "$2" "$(awk -v a="$p" -v b="$2" 'BEGIN { print a / b }')" \
               "$(awk -v a="$2" -v b="$n" 'BEGIN { print a / b }')"; }
    wrow "proot -r D -b /proc -b /dev -w / sh -c '$w'" "$p"
    wrow "vu run --backend=pvm --net none --rootfs D -- sh -c '$w'" "$v"
    wrow "vu run --backend=ns --net none --rootfs D -- sh -c '$w'" "$n"
  done
  echo "proot/x: how many times faster than proot (target for pvm: >= 10); x/ns: time relative to the ns backend"
  echo "(a row where ns itself is not 10x faster than proot cannot meet the target: its time is the work, not the runtime)"
fi
if [[ " $parts " == *" startup "* ]]; then
  require_tools bwrap
  sruns=$((runs * 10))
  echo
  echo "start-up in the Debian tree, median of $sruns"
  b=$(runs=$sruns time_median bwrap --bind "$D" / --proc /proc --dev /dev true)
  printf '%-86s %8s %8s\n' "command" "ms" "x bwrap"
  srow() { printf '%-86s %8.2f %8.2f\n' "$1" "$(awk -v a="$2" 'BEGIN { print a * 1000 }')" "$(awk -v a="$2" -v b="$b" 'BEGIN { print a / b }')"; }
  srow "bwrap --bind D / --proc /proc --dev /dev true" "$b"
  srow "vu run --backend=ns --net none --rootfs D -- true" "$(runs=$sruns time_median "$vu" run --backend=ns --net none --rootfs "$D" -- true)"
  srow "vu run --backend=pvm --net none --rootfs D -- true" "$(runs=$sruns time_median "$vu" run --backend=pvm --net none --rootfs "$D" -- true)"
  # podman: as installed; where crun refuses the host's cgroups (hybrid mode), with runc and
  # cgroupfs (both from Debian, scripts/setup.sh --bench).
  pod=""
  if ! command -v podman >/dev/null; then
    echo "podman run --rm --rootfs D true: skipped (podman is not installed)"
  elif podman run --rm --network none --rootfs "$D" true >/dev/null 2>&1; then
    pod="podman run --rm --network none --rootfs"
  elif podman --runtime runc --cgroup-manager cgroupfs run --rm --network none --rootfs "$D" true >/dev/null 2>"$tmp/podman.err"; then
    pod="podman --runtime runc --cgroup-manager cgroupfs run --rm --network none --rootfs"
  else
    echo "podman run --rm --rootfs D true: skipped (podman cannot run here: $(tail -1 "$tmp/podman.err"))"
  fi
  if [ -n "$pod" ]; then
    # shellcheck disable=SC2086
    srow "$pod D true" "$(time_median $pod "$D" true)"
    podman system migrate >/dev/null 2>&1 || true  # stops rootless podman's pause process (nothing left behind)
  fi
  echo "x bwrap: ratio to bwrap (targets: vu ns <= 1.5; podman >= 20x vu)"
fi
