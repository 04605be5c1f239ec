#!/usr/bin/env bash
# bench/net_pvm_stack.sh [VU] — pvm's stack mode (runtime/pvm_stack_net.h) beside the ns backend's
# slirp and pvm's default host-socket path, in one run, ratios printed (not a test: figures
# move ±20% on a 2-core VM):
#   view -> host  iperf3 -c 10.0.2.2 (slirp:allow-host-loopback) from a view with one slirp
#                 network: ns (kernel TCP, tap, libslirp in vu-net), pvm default (host sockets),
#                 pvm stack mode (--net-stats: lwIP in vu-vstack, a frame link, libslirp in vu-net)
# iperf3 runs SECS seconds (default 5), ROUNDS times each (default 1), the median printed.
# Traffic goes only to 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
secs=${SECS:-5}
rounds=${ROUNDS:-1}
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools iperf3
cd /tmp
port=$((30000 + RANDOM % 20000))
T="timeout $((secs + 20))"

run_to_host() {  # BACKEND [OPTIONS…]: Mbit/s of iperf3 -c 10.0.2.2
  local b=$1; shift
  $T iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null & sleep 0.3
  $T "$vu" run --backend="$b" --net slirp:allow-host-loopback "$@" -- iperf3 -c 10.0.2.2 -p $port -t "$secs" 2>/dev/null | mbits
  wait || true
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
ns=() pvm=() stack=()
for _ in $(seq "$rounds"); do
  ns+=("$(run_to_host ns)")
  pvm+=("$(run_to_host pvm)")
  stack+=("$(run_to_host pvm --net-stats)")
done
ns_m=$(printf '%s\n' "${ns[@]}" | median)
pvm_m=$(printf '%s\n' "${pvm[@]}" | median)
stack_m=$(printf '%s\n' "${stack[@]}" | median)

echo "pvm stack mode, $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %10s %8s\n' "view -> host 127.0.0.1 via 10.0.2.2 (iperf3 ${secs}s, median of $rounds)" "Mbit/s" "vs ns"
printf '%-58s %10s %8s\n' "ns: kernel TCP, tap, libslirp in vu-net" "${ns_m:-fail}" "1.00"
printf '%-58s %10s %8s\n' "pvm default: host sockets" "${pvm_m:-fail}" "$(ratio "$pvm_m" "$ns_m")"
printf '%-58s %10s %8s\n' "pvm stack mode: lwIP, frame link, libslirp in vu-net" "${stack_m:-fail}" "$(ratio "$stack_m" "$ns_m")"
