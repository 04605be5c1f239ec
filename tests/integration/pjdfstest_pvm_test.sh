#!/usr/bin/env bash
# pjdfstest_pvm_test.sh VU DENY_USERNS PJDFSTEST_TAR — pjdfstest's subset that needs no uid but
# the view's (issue 16: chmod, link, mkdir, open, rename, rmdir, symlink, truncate, unlink,
# utimensat) on the same filesystems through both backends, all --root (pvm has no --map-users):
#   ns-tmpfs  pvm-tmpfs   --tmpfs DIR              a tmpfs (pvm: the monitor's scratch directory
#                                                  in /dev/shm, path map); 6 of the 10 directories
#   ns-cow    pvm-cow     --cow LAYER:DIR[:fuse]   ns: vu-cowfs; pvm: the monitor's copy-on-write
#                                                  (under deny-userns), the same semantics by design
# Prints a pass/fail table per directory of the suite (the runner: pjdfstest_lib.sh); pvm's
# subtests must pass and fail exactly as ns's on the same filesystem, paths of PATH_MAX-1 bytes
# (*/03.t) included (pvm/host_at.h). (The kernel overlay's column is integration.pjdfstest's.)
# Built and started by pjdfstest_run.sh with PJDFSTEST_SCRIPT=pjdfstest_pvm_test.sh.
set -u
VU=$1
DENY=$2
tarball=$3
here=$(dirname "$0")
. "$here/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
probe=$("$VU" probe)
echo "$probe" | grep -qE '^FUSE in a user namespace +yes' || { echo "SKIP: no FUSE in a user namespace (ns reference)"; exit 77; }
tar -C "$work" -xf "$tarball" || exit 1
. "$here/pjdfstest_lib.sh" || exit 1
suite=$work/pjdfstest/tests
pjd_dirs=${PJDFSTEST_DIRS:-"chmod link mkdir open rename rmdir symlink truncate unlink utimensat"}
pjd_streams=${PJDFSTEST_STREAMS:-3}

# The tmpfs pair on the directories integration.pjdfstest_image runs, less unlink (its ctime
# checks sleep), without link, rename and utimensat (75% of the subtests; the cow pair runs them): CI
# time, the suite is the longest (each subtest is a process, and pvm traces every exec).
tmpfs_dirs=${PJDFSTEST_TMPFS_DIRS:-"chmod mkdir open rmdir symlink truncate"}
mkdir -p "$work/t-n" "$work/t-p" "$work/low-n" "$work/low-p"
pjd_dirs=$tmpfs_dirs pjd_run ns-tmpfs "$work/t-n" "$VU" run --backend=ns --net none --root --tmpfs "$work/t-n" -- &
pjd_dirs=$tmpfs_dirs pjd_run pvm-tmpfs "$work/t-p" "$DENY" "$VU" run --net host --root --tmpfs "$work/t-p" -- &
pjd_run ns-cow "$work/low-n" "$VU" run --backend=ns --net none --root --cow "$work/layer-n:$work/low-n:fuse" -- &
pjd_run pvm-cow "$work/low-p" "$DENY" "$VU" run --net host --root --cow "$work/layer-p:$work/low-p" -- &
wait
pjd_table ns-tmpfs pvm-tmpfs ns-cow pvm-cow

[ "$(grep -c ' ok$' "$work/res-ns-cow")" -gt 0 ] || { bad "pjdfstest ran in the ns views" "$(head -c 600 "$work/err-ns-cow")"; summary; exit; }
pjd_same ns-tmpfs pvm-tmpfs
pjd_same ns-cow pvm-cow
pjd_complete ns-tmpfs
summary
