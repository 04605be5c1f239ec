#!/usr/bin/env bash
# bench/net_vde.sh [VU] — view ↔ view over a vde_switch (issue 15, pvm/vstack.h): iperf3 between
# two ns views (the kernel's TCP in each, vu-net plugging the taps) and between two pvm views
# (lwIP in vu-vstack), in one run, ratio printed (target pvm ≥ 0.9× ns). Also ns → pvm.
# SECS seconds per run (default 5). Traffic only inside the switch this script made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
secs=${SECS:-5}
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools iperf3 vde_switch
d=$(mktemp -d /tmp/vu-netvde.XXXXXX)
start_switch "$d"
T="timeout $((secs + 30))"
mbits() { sed -n 's/.* \([0-9.]*\) \([MG]\)bits\/sec.*receiver.*/\1 \2/p' | awk '{print ($2=="G") ? $1*1000 : $1}'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

pair() {  # SERVER-BACKEND CLIENT-BACKEND N: Mbit/s of iperf3 client → server over the switch
  local s=$1 c=$2 n=$3
  $T "$vu" run --backend="$s" --net "vde://$SW" --ip "10.0.9.$((2 * n + 1))/24" -- iperf3 -s -1 >/dev/null 2>&1 &
  local sp=$!
  sleep 1.5
  $T "$vu" run --backend="$c" --net "vde://$SW" --ip "10.0.9.$((2 * n + 2))/24" -- \
    sh -c "for i in 1 2 3 4 5; do iperf3 -c 10.0.9.$((2 * n + 1)) -t $secs 2>&1 && exit 0; sleep 0.5; done" | mbits
  wait $sp || true
}
ns=$(pair ns ns 1)
pvm=$(pair pvm pvm 2)
mixed=$(pair pvm ns 3)
printf 'view <-> view over vde_switch, iperf3 %ss (Mbit/s)\n' "$secs"
printf '  ns  -> ns   %8s\n' "${ns:-?}"
printf '  pvm -> pvm  %8s   %s x ns (target >= 0.9)\n' "${pvm:-?}" "$(ratio "$pvm" "$ns")"
printf '  ns  -> pvm  %8s   %s x ns\n' "${mixed:-?}" "$(ratio "$mixed" "$ns")"
