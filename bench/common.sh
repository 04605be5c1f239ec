# bench/common.sh — sourced by the bench scripts.

# reexec_unprivileged SCRIPT VU: as root, re-run SCRIPT as the unprivileged test user (created by
# scripts/setup.sh --test-env) with copies of vu and vu-net it can reach, and exit with its
# status. As any other user, return at once.
reexec_unprivileged() {
  local script=$1 vu=$2
  [ "$(id -u)" = 0 ] || return 0
  local here user tmp rc
  here=$(cd "$(dirname "$script")" && pwd)
  user=${VU_TEST_USER:-vu-tester}
  "$here/../scripts/setup.sh" --test-env
  tmp=$(mktemp -d /tmp/vu-bench.XXXXXX)
  cp "$vu" "$(dirname "$vu")/vu-net" "$(dirname "$vu")/vu-cowfs" "$(dirname "$vu")/libvu-pvm-accel.so" "$script" "$here/common.sh" "$tmp/"
  [ ! -e "$(dirname "$vu")/libvu-fuse-shim.so" ] || cp "$(dirname "$vu")/libvu-fuse-shim.so" "$tmp/"
  [ ! -e "$(dirname "$vu")/vu-vstack" ] || cp "$(dirname "$vu")/vu-vstack" "$tmp/"  # pvm VDE views
  cp "$(dirname "$vu")/vu-unpack" "$tmp/" 2>/dev/null || true  # --rootfs ARCHIVE (bench/rootfs.sh)
  # COWFS_OLD=FILE (bench/fs.sh): another vu-cowfs binary measured beside this one.
  # UNPACK_OLD=FILE (bench/rootfs.sh): another vu-unpack binary, likewise.
  local old="" uold=""
  if [ -n "${COWFS_OLD:-}" ]; then cp "$COWFS_OLD" "$tmp/vu-cowfs.old" && old=$tmp/vu-cowfs.old; fi
  if [ -n "${UNPACK_OLD:-}" ]; then cp "$UNPACK_OLD" "$tmp/vu-unpack.old" && uold=$tmp/vu-unpack.old; fi
  chmod 755 "$tmp" "$tmp"/*
  rc=0
  # "|| rc=$?": the callers run under set -e, which would skip the clean-up below.
  runuser -u "$user" -- env RUNS="${RUNS:-}" ${FS_BENCH_DIR:+FS_BENCH_DIR=$FS_BENCH_DIR} ${FS_BENCH_ONLY:+"FS_BENCH_ONLY=$FS_BENCH_ONLY"} ${ROOTFS_BENCH_DIR:+ROOTFS_BENCH_DIR=$ROOTFS_BENCH_DIR} ${old:+COWFS_OLD=$old} ${uold:+UNPACK_OLD=$uold} ${BENCH_OLD_VU:+BENCH_OLD_VU=$BENCH_OLD_VU} ${BENCH_TRACE:+BENCH_TRACE=1} bash ${BENCH_TRACE:+-x} "$tmp/$(basename "$script")" "$tmp/vu" || rc=$?
  rm -rf "$tmp"
  exit $rc
}

# require_tools TOOL…: exit 2 naming the first missing tool.
require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$(basename "$0"): $t is missing (scripts/setup.sh --bench)" >&2; exit 2; }
  done
}

# start_switch DIR: a vde_switch at DIR/sw for the length of the script (killed, and DIR
# removed, on exit). Sets SW to the switch path.
start_switch() {
  local dir=$1
  vde_switch -s "$dir/sw" -d -p "$dir/pid"
  # "|| true": under set -e a failing command would end the trap early and leave the switch.
  trap 'kill "$(cat "'"$dir"'/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "'"$dir"'"' EXIT
  for _ in $(seq 50); do [ -S "$dir/sw/ctl" ] && break; sleep 0.05; done
  SW=$dir/sw
}
