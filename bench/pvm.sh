#!/usr/bin/env bash
# bench/pvm.sh [VU] — the partial-VM backend side by side with native runs, the ns backend and
# PRoot, on the same files, in one run; ratios to native.
#
# Runs as an unprivileged user (as root it re-runs itself as $VU_TEST_USER). hyperfine -N, one
# warm-up, RUNS runs each (default 5; proot is slow: its runs are capped at 3). Workloads (the
# issue's): `find /usr -type f | wc -l`, `tar cf - /usr/share | wc -c`, `gcc -O2 -c hello.c`, and
# a CPU-bound compile of a generated 600-line file.
# Each under: native; vu pvm (no mounts); vu pvm with a bind (path map active); vu pvm without
# the in-process fast path (VU_PVM_ACCEL_LIB=); vu ns; proot; fakeroot (find only).
# Then the per-call split: one round trip to the monitor vs the monitor's own work, measured with
# a tight loop of fstat() (answered by the monitor when the fast path is off).
# Needs: hyperfine, proot, fakeroot, gcc (scripts/setup.sh --bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-5}

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools hyperfine proot fakeroot gcc

tmp=$(mktemp -d /tmp/vu-bench-pvm.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint main(void){char b[64]; snprintf(b, sizeof b, "%%d", 42); puts(b); return 0;}\n' > hello.c
# A CPU-bound compile (~2 s): 300 functions with loops, generated.
awk 'BEGIN { print "#include <stdio.h>";
  for (i = 0; i < 300; i++) printf "int f%d(int n){int s=0; for(int k=0;k<n;k++){s+=k*%d%%7; if(s>1000) s-=n;} return s;}\n", i, i;
  print "int main(void){int t=0;"; for (i = 0; i < 300; i++) printf "t+=f%d(%d);\n", i, i;
  print "printf(\"%d\\n\",t);return 0;}" }' > big.c
cat > loop.c <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char** argv) {
  int n = atoi(argv[1]); struct stat st; struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int raw = argv[2][0] == 'r';  // raw: always trapped; libc: fstat(), which the fast path takes
  for (int i = 0; i < n; ++i) raw ? syscall(SYS_newfstatat, 0, "", &st, 0x1000) : fstat(0, &st);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
  return 0;
}
C
gcc -O2 -o loop loop.c

pvm="$vu run --backend=pvm --net host"
bench() {  # bench LABEL RUNS COMMAND… — appends "label,median" to results
  local label=$1 n=$2; shift 2
  hyperfine -N --warmup 1 --runs "$n" --export-csv "$tmp/one.csv" --style none "$@" >/dev/null
  awk -F, -v l="$label" 'NR==2 { printf "%s,%.4f\n", l, $4 }' "$tmp/one.csv" >> "$tmp/results"
}
: > "$tmp/results"
for w in find tar gcc cc-big; do
  case $w in
    find) cmd="sh -c 'find /usr -type f | wc -l'" ;;
    tar) cmd="sh -c 'tar cf - /usr/share 2>/dev/null | wc -c'" ;;
    gcc) cmd="gcc -O2 -c $tmp/hello.c -o $tmp/hello.o" ;;
    cc-big) cmd="gcc -O2 -c $tmp/big.c -o $tmp/big.o" ;;
  esac
  bench "$w|native" "$runs" "$cmd"
  bench "$w|vu pvm" "$runs" "$pvm -- $cmd"
  bench "$w|vu pvm --bind (path map on)" "$runs" "$pvm --bind $tmp:/mnt -- $cmd"
  bench "$w|vu pvm without the fast path" "$runs" "env VU_PVM_ACCEL_LIB= $pvm -- $cmd"
  bench "$w|vu ns" "$runs" "$vu run --backend=ns --net host -- $cmd"
  bench "$w|proot" "$(( runs < 3 ? runs : 3 ))" "proot $cmd"
  [ $w = find ] && bench "$w|fakeroot" "$runs" "fakeroot $cmd"
done

echo "pvm, $(nproc) cores, kernel $(uname -r), hyperfine -N median of $runs runs (proot: at most 3)"
awk -F, '{ split($1, k, "|"); w = k[1]; if (k[2] == "native") ref[w] = $2; row[NR] = $0 }
  END { printf "%-6s %-34s %10s %8s\n", "job", "runner", "median s", "ratio*";
        for (i = 1; i <= NR; i++) { split(row[i], f, ","); split(f[1], k, "|");
          printf "%-6s %-34s %10.3f %8.2f\n", k[1], k[2], f[2], f[2] / ref[k[1]] } }' "$tmp/results"
echo "* ratio to native (targets: find <= 2, tar <= 1.5, a CPU-bound job <= 1.05; gcc on hello.c is"
echo "  mostly start-up: vu's own, ~5 ms for ns and ~8 ms for pvm on the 2-core VM)"

native=$(./loop 200000 raw </dev/null)
trip=$(VU_PVM_NOOP=1 $pvm -- ./loop 20000 raw </dev/null)
full=$($pvm -- ./loop 20000 raw </dev/null)
fast=$($pvm -- ./loop 200000 libc </dev/null)
echo
echo "one fstat (newfstatat AT_EMPTY_PATH), us per call (VU_PVM_NOOP=1: the monitor lets every call run unchanged, for this measurement only):"
printf '  native %s | trapped, monitor answers CONTINUE (the round trip alone) %s | trapped, answered by the monitor %s | fast path (in process) %s\n' \
  "$native" "$trip" "$full" "$fast"
awk -v t="$trip" -v f="$full" -v n="$native" 'BEGIN { printf "  of a trapped call: round trip %.1f us (%.0f%%), the monitor'"'"'s own work %.1f us (%.0f%%)\n", t - n, 100 * (t - n) / (f - n), f - t, 100 * (f - t) / (f - n) }'
