#!/usr/bin/env bash
# bench/net_pvm.sh [VU] — the pvm backend's network (issue 15) beside the ns backend's and its
# peers, in one run, ratios printed:
#   start-up     `vu run --backend=pvm -- true` (default network) vs --backend=ns (hyperfine -N,
#                RUNS runs, median; target <= 1.2x ns)
#   view -> host iperf3 -c 10.0.2.2 (slirp:allow-host-loopback): pvm vs ns (libslirp in vu-net)
#                vs slirp4netns (target >= 2x ns)
#   host -> view -p 127.0.0.1:HP:5201: pvm vs ns vs slirp4netns add_hostfwd (target >= slirp4netns)
#   traps        the seccomp notifications of a 1 GiB TCP transfer view -> host (target < 100)
# iperf3 runs SECS seconds (default 5). Traffic goes only to 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
secs=${SECS:-5}
runs=${RUNS:-30}
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools iperf3 hyperfine slirp4netns unshare socat
d=$(mktemp -d /tmp/vu-netpvm.XXXXXX)
trap 'rm -rf "$d"' EXIT
cd /tmp
port=$((30000 + RANDOM % 20000))
T="timeout $((secs + 20))"

# start-up
hyperfine -N --warmup 3 --runs "$runs" --export-csv "$d/csv" --style none \
  -n ns "$vu run --backend=ns -- true" -n pvm "$vu run --backend=pvm -- true" \
  -n pvm-host "$vu run --backend=pvm --net host -- true" >/dev/null
ns_start=$(awk -F, '$1=="ns" {print $4*1000}' "$d/csv")
pvm_start=$(awk -F, '$1=="pvm" {print $4*1000}' "$d/csv")
pvmh_start=$(awk -F, '$1=="pvm-host" {print $4*1000}' "$d/csv")

# view -> host loopback
run_to_host() {  # BACKEND: Mbit/s of iperf3 -c 10.0.2.2
  $T iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null & sleep 0.3
  $T "$vu" run --backend="$1" --net slirp:allow-host-loopback -- iperf3 -c 10.0.2.2 -p $port -t "$secs" 2>&1 | mbits
  wait
}
ns_out=$(run_to_host ns)
pvm_out=$(run_to_host pvm)
read -r s4_out s4_fwd <<< "$(slirp4netns_iperf3 "$d" $((port + 5)) "$secs")" || true

# host loopback -> view
run_fwd() {  # BACKEND HOSTPORT: Mbit/s of iperf3 -c 127.0.0.1:HOSTPORT to a server in the view
  $T "$vu" run --backend="$1" -p "127.0.0.1:$2:5201" -- iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sleep 0.8
  $T iperf3 -c 127.0.0.1 -p "$2" -t "$secs" 2>&1 | mbits
  wait
}
ns_fwd=$(run_fwd ns $((port + 1)))
pvm_fwd=$(run_fwd pvm $((port + 2)))

# The traps of a 1 GiB transfer view -> host, beside those of a 1-byte one (the same programs
# start and connect: the difference is what the data path costs). VU_LOG=debug prints the
# monitor's count at exit.
traps_of() {  # BYTES
  socat -u TCP-LISTEN:$((port + 4)),bind=127.0.0.1,reuseaddr /dev/null & s=$!
  sleep 0.3
  VU_LOG=debug $T "$vu" run --backend=pvm --net slirp:allow-host-loopback -- \
    socat -u -b 1048576 "EXEC:head -c $1 /dev/zero" "TCP:10.0.2.2:$((port + 4))" 2>&1 |
    sed -n 's/.*pvm: \([0-9]*\) notifications.*/\1/p'
  wait $s || true
}
traps1=$(traps_of 1)
traps=$(traps_of 1073741824)

echo "pvm network, $(nproc) cores, kernel $(uname -r)"
printf '%-50s %10s %8s\n' "start-up (median ms, $runs runs)" "ms" "vs ns"
printf '%-50s %10.2f %8s\n' "vu run --backend=ns -- true" "$ns_start" "1.00"
printf '%-50s %10.2f %8s\n' "vu run --backend=pvm -- true" "$pvm_start" "$(ratio "$pvm_start" "$ns_start")"
printf '%-50s %10.2f %8s\n' "vu run --backend=pvm --net host -- true" "$pvmh_start" "$(ratio "$pvmh_start" "$ns_start")"
printf '%-50s %10s %8s\n' "view -> host 127.0.0.1 via 10.0.2.2 (iperf3 ${secs}s)" "Mbit/s" "vs ns"
printf '%-50s %10s %8s\n' "ns: libslirp in vu-net" "${ns_out:-fail}" "1.00"
printf '%-50s %10s %8s\n' "slirp4netns --mtu=65520" "${s4_out:-fail}" "$(ratio "$s4_out" "$ns_out")"
printf '%-50s %10s %8s\n' "pvm: host sockets" "${pvm_out:-fail}" "$(ratio "$pvm_out" "$ns_out")"
printf '%-50s %10s %8s\n' "host 127.0.0.1 -> view (-p, iperf3 ${secs}s)" "Mbit/s" "vs s4n"
printf '%-50s %10s %8s\n' "slirp4netns add_hostfwd" "${s4_fwd:-fail}" "1.00"
printf '%-50s %10s %8s\n' "ns: vu -p (libslirp)" "${ns_fwd:-fail}" "$(ratio "$ns_fwd" "$s4_fwd")"
printf '%-50s %10s %8s\n' "pvm: vu -p (the view's socket bound at HOST)" "${pvm_fwd:-fail}" "$(ratio "$pvm_fwd" "$s4_fwd")"
printf '%-50s %10s\n' "seccomp notifications, 1 GiB view -> host (pvm)" "${traps:-fail}"
printf '%-50s %10s\n' "  the same programs sending 1 byte" "${traps1:-fail}"
