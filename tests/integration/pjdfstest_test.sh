#!/usr/bin/env bash
# pjdfstest_test.sh VU DENY_USERNS PJDFSTEST_TAR — POSIX conformance (pjdfstest) in three views
# of the same kind (--root --map-users: the suite is root and chowns to ids up to 65534):
#   tmpfs    --tmpfs DIR                       the reference: what a plain filesystem does
#   kernel   --cow LAYER:DIR:kernel            overlayfs in the user namespace
#   vu-cowfs --cow LAYER:DIR:fuse              vu's FUSE layer
# Prints the three failure counts. Fails when vu-cowfs fails a subtest that the tmpfs view
# passes, unless the kernel overlay fails it too (then it is overlay semantics, not ours).
# The tarball may hold one directory of the suite only (pjdfstest_run.sh, PJDFSTEST_ONLY).
set -u
VU=$1
tarball=$3
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
if ! "$VU" run --net none --root --map-users -- true 2>"$work/stderr"; then
  echo "SKIP: no view with --root --map-users here: $(cat "$work/stderr")"; exit 77
fi
probe=$("$VU" probe)
echo "$probe" | grep -qE '^FUSE in a user namespace +yes' || { echo "SKIP: no FUSE in a user namespace"; exit 77; }
have_overlay=1
echo "$probe" | grep -qE '^overlayfs in a user namespace +yes' || have_overlay=0
tar -C "$work" -xf "$tarball" || exit 1
suite=$work/pjdfstest/tests

# Runs the .t files in the view, in $3 parallel streams (the suite mostly sleeps: a second per
# ctime check), all in $1 (its tests make random names; a subdirectory would lengthen the
# PATH_MAX tests' paths); prints "FILE N" for each failed subtest (and "FILE *" for a file that
# did not run its plan) on stdout.
runner='
stream() {
  cd "$1" || exit 1
  i=0
  for t in $(cd "$2" && find . -name "*.t" | sort); do
    i=$((i + 1))
    [ $((i % $4)) = "$3" ] || continue
    out=$(sh "$2/$t" 2>&1)
    plan=$(printf "%s\n" "$out" | sed -n "s/^1\.\.\([0-9]*\)$/\1/p" | head -1)
    printf "%s\n" "$out" | grep -v "# TODO" | sed -u -n "s|^not ok \([0-9]*\).*|$t \1|p"
    n=$(printf "%s\n" "$out" | grep -cE "^(not )?ok [0-9]+")
    [ -n "$plan" ] && [ "$n" = "$plan" ] || echo "$t * (ran $n of ${plan:-?})"
  done
}
k=0
while [ $k -lt "$3" ]; do stream "$1" "$2" $k "$3" & k=$((k + 1)); done
wait
'
streams=${PJDFSTEST_STREAMS:-3}
run_in() {  # NAME DIR VU-OPTIONS…
  local name=$1 dir=$2; shift 2
  timeout 1500 "$VU" run --net none --root --map-users "$@" -- sh -c "$runner" pjdfstest "$dir" "$suite" "$streams" \
    > "$work/fail-$name" 2>"$work/err-$name"
  local rc=$?
  echo "pjdfstest $name: $(wc -l < "$work/fail-$name") failed subtests (vu status $rc)"
}

# The three views run side by side (each with $streams streams): CI's whole run stays short.
mkdir -p "$work/t" "$work/low-k" "$work/low-f"
run_in tmpfs "$work/t" --tmpfs "$work/t" &
[ $have_overlay = 1 ] && run_in kernel "$work/low-k" --cow "$work/layer-k:$work/low-k:kernel" &
run_in vu-cowfs "$work/low-f" --cow "$work/layer-f:$work/low-f:fuse" &
wait
[ $have_overlay = 1 ] || : > "$work/fail-kernel"

# The layers hold files of subordinate ids: only a view that maps them can remove them.
"$VU" run --net none --root --map-users -- rm -rf "$work"/layer-k "$work"/layer-f

# vu-cowfs's failures that a plain tmpfs does not have and the kernel overlay does not share.
ours=$(sort "$work/fail-vu-cowfs" | comm -23 - <(sort "$work/fail-tmpfs") | comm -23 - <(sort "$work/fail-kernel"))
if [ -z "$ours" ]; then ok "pjdfstest: vu-cowfs fails nothing that tmpfs passes and the kernel overlay passes"
else bad "pjdfstest: vu-cowfs fails nothing that tmpfs passes and the kernel overlay passes" \
  "$(echo "$ours" | wc -l) subtests, e.g.:" "$(echo "$ours" | head -40 | tr '\n' ' ')" "$(head -c 600 "$work/err-vu-cowfs")"; fi
# Every file of the suite ran its plan in the reference (a "*" line says one did not).
grep -q ' \*' "$work/fail-tmpfs" && bad "pjdfstest: every file ran in the tmpfs view" "$(grep ' \*' "$work/fail-tmpfs" | head)" \
  || ok "pjdfstest: every file ran in the tmpfs view"
summary
