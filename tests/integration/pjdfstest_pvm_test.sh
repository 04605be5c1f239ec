#!/usr/bin/env bash
# pjdfstest_pvm_test.sh VU DENY_USERNS PJDFSTEST_TAR — pjdfstest's subset that needs no uid but
# the view's (issue 16: chmod, link, mkdir, open, rename, rmdir, symlink, truncate, unlink,
# utimensat) in three copy-on-write views, all --root (pvm has no --map-users):
#   ns kernel   --cow LAYER:DIR:kernel     overlayfs in the user namespace
#   ns fuse     --cow LAYER:DIR:fuse       vu-cowfs
#   pvm         --cow LAYER:DIR            the monitor's copy-on-write (under deny-userns)
# Prints a table of passed/failed subtests per directory of the suite; pvm's counts must equal
# ns's (vu-cowfs's: the same semantics by design). Built and started by pjdfstest_run.sh with
# PJDFSTEST_SCRIPT=pjdfstest_pvm_test.sh.
set -u
VU=$1
DENY=$2
tarball=$3
here=$(dirname "$0")
. "$here/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
probe=$("$VU" probe)
echo "$probe" | grep -qE '^FUSE in a user namespace +yes' || { echo "SKIP: no FUSE in a user namespace (ns reference)"; exit 77; }
have_overlay=1
echo "$probe" | grep -qE '^overlayfs in a user namespace +yes' || have_overlay=0
tar -C "$work" -xf "$tarball" || exit 1
suite=$work/pjdfstest/tests
dirs=${PJDFSTEST_DIRS:-"chmod link mkdir open rename rmdir symlink truncate unlink utimensat"}

# "FILE N ok|fail" for every subtest of the .t files of DIRS, in $4 parallel streams, all in $1.
runner='
stream() {
  cd "$1" || exit 1
  i=0
  for t in $(cd "$2" && for d in $5; do [ -d "$d" ] && find "./$d" -name "*.t"; done | sort); do
    i=$((i + 1))
    [ $((i % $4)) = "$3" ] || continue
    out=$(sh "$2/$t" 2>&1)
    # sed -u: a line is one write; the streams share the result file (block-buffered output interleaved mid-line)
    printf "%s\n" "$out" | grep -v "# TODO" | sed -u -n -e "s|^not ok \([0-9]*\).*|$t \1 fail|p" -e "s|^ok \([0-9]*\).*|$t \1 ok|p"
  done
}
k=0
while [ $k -lt "$3" ]; do stream "$1" "$2" $k "$3" "$4" & k=$((k + 1)); done
wait
'
streams=${PJDFSTEST_STREAMS:-3}
run_in() {  # NAME DIR PREFIX… -- VU-OPTIONS…
  local name=$1 dir=$2; shift 2
  timeout 1500 "$@" -- sh -c "$runner" pjdfstest "$dir" "$suite" "$streams" "$dirs" > "$work/res-$name" 2>"$work/err-$name"
  local rc=$?
  echo "pjdfstest $name: $(grep -c ' ok$' "$work/res-$name") passed, $(grep -c ' fail$' "$work/res-$name") failed (vu status $rc)"
}
mkdir -p "$work/low-k" "$work/low-f" "$work/low-p"
views=(fuse pvm)
run_in fuse "$work/low-f" "$VU" run --backend=ns --net none --root --cow "$work/layer-f:$work/low-f:fuse" &
run_in pvm "$work/low-p" "$DENY" "$VU" run --net host --root --cow "$work/layer-p:$work/low-p" &
if [ $have_overlay = 1 ]; then
  views=(kernel fuse pvm)
  run_in kernel "$work/low-k" "$VU" run --backend=ns --net none --root --cow "$work/layer-k:$work/low-k:kernel" &
fi
wait

printf '%-12s' "directory"; for v in "${views[@]}"; do printf '%18s' "$v pass/fail"; done; echo
for d in $dirs; do
  printf '%-12s' "$d"
  for v in "${views[@]}"; do
    printf '%18s' "$(grep -c "^\./$d/.* ok$" "$work/res-$v")/$(grep -c "^\./$d/.* fail$" "$work/res-$v")"
  done
  echo
done
printf '%-12s' total; for v in "${views[@]}"; do printf '%18s' "$(grep -c ' ok$' "$work/res-$v")/$(grep -c ' fail$' "$work/res-$v")"; done; echo

[ "$(grep -c ' ok$' "$work/res-fuse")" -gt 0 ] || { bad "pjdfstest ran in the ns views" "$(head -c 600 "$work/err-fuse")"; summary; exit; }
diffs=$(diff <(sort "$work/res-fuse") <(sort "$work/res-pvm"))
if [ -z "$diffs" ]; then ok "pjdfstest: pvm --cow passes and fails exactly what ns --cow (vu-cowfs) does"
else bad "pjdfstest: pvm --cow passes and fails exactly what ns --cow (vu-cowfs) does" "$(echo "$diffs" | grep -c '^[<>]') differences, e.g.:" "$(echo "$diffs" | grep '^[<>]' | head -30 | tr '\n' ' ')" "$(head -c 600 "$work/err-pvm")"; fi
summary
