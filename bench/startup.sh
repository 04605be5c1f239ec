#!/usr/bin/env bash
# bench/startup.sh [VU] — start-up of `vu run -- true` side by side with its peers, in one run.
#
# Runs as an unprivileged user (as root it re-runs itself as $VU_TEST_USER, default vu-tester,
# which scripts/setup.sh --test-env creates). hyperfine -N, 5 warm-ups, 50 runs each; prints the
# medians and each one's ratio to `unshare -Urmn true` (the issue's target: vu <= 1.1x).
# Needs: hyperfine, bubblewrap (scripts/setup.sh --bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-50}

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools hyperfine bwrap unshare

csv=$(mktemp /tmp/vu-bench-csv.XXXXXX); trap 'rm -f "$csv"' EXIT
cd /tmp
hyperfine -N --warmup 5 --runs "$runs" --export-csv "$csv" --style none \
  -n 'true' 'true' \
  -n 'unshare -Urmn true' 'unshare -Urmn true' \
  -n 'vu run --net none -- true' "$vu run --net none -- true" \
  -n 'vu run --net host -- true' "$vu run --net host -- true" \
  -n 'vu run --net none --root --tmpfs /scratch --bind /etc/hosts:/mnt/h -- true' "$vu run --net none --root --tmpfs /scratch --bind /etc/hosts:/mnt/h -- true" \
  -n 'vu run -- true (default: slirp)' "$vu run -- true" \
  -n 'bwrap --unshare-all --dev-bind / / true' 'bwrap --unshare-all --dev-bind / / true' >/dev/null

echo "start-up, $(nproc) cores, kernel $(uname -r), $runs runs each (hyperfine -N, median)"
awk -F, 'NR>1 { name[NR]=$1; med[NR]=$4*1000; if ($1=="unshare -Urmn true") ref=$4*1000 }
  END { printf "%-66s %9s %8s\n", "command", "median ms", "ratio*";
        for (i=2; i<=NR; i++) printf "%-66s %9.2f %8.2f\n", name[i], med[i], med[i]/ref;
        print "* ratio to unshare -Urmn true (target for vu run --net none -- true: <= 1.10)" }' "$csv"
