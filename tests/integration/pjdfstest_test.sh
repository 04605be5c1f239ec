#!/usr/bin/env bash
# pjdfstest_test.sh VU DENY_USERNS PJDFSTEST_TAR — POSIX conformance (pjdfstest) in three views
# of the same kind (--root --map-users: the suite is root and chowns to ids up to 65534):
#   tmpfs    --tmpfs DIR                       the reference: what a plain filesystem does
#   kernel   --cow LAYER:DIR:kernel            overlayfs in the user namespace
#   vu-cowfs --cow LAYER:DIR:fuse              vu's FUSE layer
# Prints a pass/fail table (the runner: pjdfstest_lib.sh). Fails when vu-cowfs fails a subtest
# that the tmpfs view passes, unless the kernel overlay fails it too (then it is overlay
# semantics, not ours). The tarball may hold one directory of the suite only (pjdfstest_run.sh,
# PJDFSTEST_ONLY).
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
. "$here/pjdfstest_lib.sh" || exit 1
suite=$work/pjdfstest/tests
pjd_streams=${PJDFSTEST_STREAMS:-3}

# The three views run side by side (each with $pjd_streams streams): CI's whole run stays short.
mkdir -p "$work/t" "$work/low-k" "$work/low-f"
views=(tmpfs vu-cowfs)
[ $have_overlay = 1 ] && views=(tmpfs kernel vu-cowfs)
pjd_run tmpfs "$work/t" "$VU" run --net none --root --map-users --tmpfs "$work/t" -- &
[ $have_overlay = 1 ] && pjd_run kernel "$work/low-k" "$VU" run --net none --root --map-users --cow "$work/layer-k:$work/low-k:kernel" -- &
pjd_run vu-cowfs "$work/low-f" "$VU" run --net none --root --map-users --cow "$work/layer-f:$work/low-f:fuse" -- &
wait
[ $have_overlay = 1 ] || : > "$work/res-kernel"
pjd_table "${views[@]}"

# The layers hold files of subordinate ids: only a view that maps them can remove them.
"$VU" run --net none --root --map-users -- rm -rf "$work"/layer-k "$work"/layer-f

# vu-cowfs's failures that a plain tmpfs does not have and the kernel overlay does not share.
fails() { grep ' fail$' "$work/res-$1" | sort; }
ours=$(fails vu-cowfs | comm -23 - <(fails tmpfs) | comm -23 - <(fails kernel))
if [ -z "$ours" ]; then ok "pjdfstest: vu-cowfs fails nothing that tmpfs passes and the kernel overlay passes"
else bad "pjdfstest: vu-cowfs fails nothing that tmpfs passes and the kernel overlay passes" \
  "$(echo "$ours" | wc -l) subtests, e.g.:" "$(echo "$ours" | head -40 | tr '\n' ' ')" "$(head -c 600 "$work/err-vu-cowfs")"; fi
pjd_complete tmpfs
summary
