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
  runuser -u "$user" -- env RUNS="${RUNS:-}" ${FS_BENCH_DIR:+FS_BENCH_DIR=$FS_BENCH_DIR} ${FS_BENCH_ONLY:+"FS_BENCH_ONLY=$FS_BENCH_ONLY"} ${ROOTFS_BENCH_DIR:+ROOTFS_BENCH_DIR=$ROOTFS_BENCH_DIR} ${ROOTFS_DEBIAN:+ROOTFS_DEBIAN=$ROOTFS_DEBIAN} ${ROOTFS_BENCH_PARTS:+"ROOTFS_BENCH_PARTS=$ROOTFS_BENCH_PARTS"} ${old:+COWFS_OLD=$old} ${uold:+UNPACK_OLD=$uold} ${BENCH_OLD_VU:+BENCH_OLD_VU=$BENCH_OLD_VU} ${BENCH_TRACE:+BENCH_TRACE=1} bash ${BENCH_TRACE:+-x} "$tmp/$(basename "$script")" "$tmp/vu" || rc=$?
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

# mbits: iperf3's receiver line on stdin -> its Mbit/s. ratio A B: A/B to two places, "-" when B
# is missing or 0.
mbits() { sed -n 's/.* \([0-9.]*\) \([MG]\)bits\/sec.*receiver.*/\1 \2/p' | awk '{print ($2=="G") ? $1*1000 : $1}'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# slirp4netns_iperf3 DIR PORT SECS — slirp4netns (MTU 65520, vu's) as the peer both ways; prints
# "TO_HOST FWD" in Mbit/s ("fail" for a run that printed none): iperf3 -c 10.0.2.2:PORT from a
# namespace made here to a server on the host's 127.0.0.1:PORT (slirp4netns's 10.0.2.2 is the
# host's loopback), then iperf3 -c 127.0.0.1:PORT+1 through add_hostfwd to a server in such a
# namespace. Every process bounded by timeout; DIR holds the pid files and the API socket.
slirp4netns_iperf3() {
  local d=$1 port=$2 secs=$3 u s4 to_host fwd T="timeout $(($3 + 20))"
  $T iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null & sleep 0.3
  $T unshare -Urn sh -c "echo \$\$ > $d/s4pid; while [ ! -e $d/s4ready ]; do sleep 0.05; done; iperf3 -c 10.0.2.2 -p $port -t $secs" > "$d/s4out" 2>&1 & u=$!
  for _ in $(seq 100); do [ -s "$d/s4pid" ] && break; sleep 0.05; done
  $T slirp4netns --configure --mtu=65520 --ready-fd=3 "$(cat "$d/s4pid")" tap0 3>"$d/s4ready" >/dev/null 2>&1 & s4=$!
  wait $u || true
  kill $s4 2>/dev/null || true
  to_host=$(mbits < "$d/s4out")
  wait
  $T unshare -Urn sh -c "echo \$\$ > $d/s4fpid; ip link set lo up; exec iperf3 -s -1 -p 5201" >/dev/null 2>&1 & u=$!
  for _ in $(seq 100); do [ -s "$d/s4fpid" ] && break; sleep 0.05; done
  $T slirp4netns --configure --mtu=65520 --api-socket "$d/s4api" "$(cat "$d/s4fpid")" tap0 >/dev/null 2>&1 & s4=$!
  for _ in $(seq 100); do [ -S "$d/s4api" ] && break; sleep 0.05; done
  echo '{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": '$((port + 1))', "guest_port": 5201}}' \
    | socat - "UNIX-CONNECT:$d/s4api" >/dev/null 2>&1
  fwd=$($T iperf3 -c 127.0.0.1 -p $((port + 1)) -t "$secs" 2>&1 | mbits)
  kill $s4 2>/dev/null || true; wait $u 2>/dev/null || true
  echo "${to_host:-fail} ${fwd:-fail}"
}
