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
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-3}

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools tar gzip

base=${ROOTFS_BENCH_DIR:-$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp)}
tmp=$(mktemp -d "$base/vu-bench-rootfs.XXXXXX"); trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
find /usr/include /usr/share /usr/lib -xdev -type f -readable -size -8M -printf '%s %p\n' 2>/dev/null |
  awk '{ n += $1; if (n > 250e6) exit; print substr($0, index($0, " ") + 1) }' > "$tmp/list" || true  # find: SIGPIPE
# A --rootfs tree needs a /bin/sh (whether `true` then runs in it does not matter here).
mkdir -p "$tmp/extra/bin" && cp /bin/sh /bin/true "$tmp/extra/bin/"
tar -cf - -T "$tmp/list" -C "$tmp/extra" bin 2>/dev/null | gzip -1 > "$tmp/tree.tgz"
entries=$(wc -l < "$tmp/list")
size=$(stat -c %s "$tmp/tree.tgz")

now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
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
