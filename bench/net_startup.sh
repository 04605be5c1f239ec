#!/usr/bin/env bash
# bench/net_startup.sh [VU] — start-up and teardown of a view with a network, side by side with
# vdens (Debian's vdens + libvdeplug-slirp), in one run: `CMD true` on slirp and on a vde_switch
# made here. hyperfine -N, 3 warm-ups, RUNS (30) runs; medians and ratios to vdens.
# Issue 3's target: <= 10 ms (vdens: vde:// 34 ms, slirp:// 40 ms on the reference VM).
# No traffic leaves the machine: slirp is never asked to connect anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-30}
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools hyperfine vdens vde_switch
d=$(mktemp -d /tmp/vu-netbench.XXXXXX)
start_switch "$d"
cd /tmp
hyperfine -N --warmup 3 --runs "$runs" --export-csv "$d/csv" --style none \
  -n 'vdens slirp:// true' 'vdens slirp:// true' \
  -n 'vu run --net slirp -- true' "$vu run --net slirp -- true" \
  -n 'vdens vde://SW true' "vdens vde://$SW true" \
  -n 'vu run --net vde://SW -- true' "$vu run --net vde://$SW -- true" >/dev/null
echo "start-up with a network, $(nproc) cores, kernel $(uname -r), $runs runs each (median)"
awk -F, 'NR>1 { n[NR]=$1; m[NR]=$4*1000 }
  END { printf "%-34s %9s %10s\n", "command", "median ms", "vs vdens";
        for (i=2; i<=NR; i++) { r = (i%2==0) ? 1 : m[i]/m[i-1];
          printf "%-34s %9.2f %10.2f\n", n[i], m[i], r } }' "$d/csv"
