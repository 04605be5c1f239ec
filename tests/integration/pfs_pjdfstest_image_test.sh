#!/usr/bin/env bash
# pfs_pjdfstest_image_test.sh VU DENY_USERNS_HOST PJDFSTEST_TAR DENY_CONTAINER — pjdfstest on an
# ext4 image served by fuse2fs (`--mount image:disk.ext4:/mnt`, made with the test user as the
# owner of its root) in three views (issue 16), as the user (not --root: under --root the ns
# backend shows the image's ids as the view's and pvm-B the host's, README; only one .t file of
# the suite asks for uid 0):
#   ns   the ns backend on an ordinary host: the kernel's FUSE in a user namespace (reference)
#   B    pvm, user namespaces denied by a filter without no_new_privs (deny-userns-host): the
#        kernel's FUSE through the setuid fusermount3
#   A    pvm in a container (deny-container): the monitor serves fuse2fs (pvm/fuse_client.h)
# Prints a pass/fail table per directory of the suite (the runner: pjdfstest_lib.sh). B and A must
# pass and fail exactly what ns does, subtest by subtest (the same fuse2fs; in A the program is
# asked where the shadow tree's own limits would answer: names of NAME_MAX+1 bytes, */02.t, and a
# truncate to 10^15 bytes, truncate/12.t; pvm/fuse_client.h, "Limits: the program's, asked").
# Root-run (the filters are installed as root; every view runs as the test user). Built and
# started by pjdfstest_run.sh with PJDFSTEST_SCRIPT=pfs_pjdfstest_image_test.sh PJDFSTEST_ROOT_RUN=1.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
root_run_setup "the filters are installed as root" "fuse2fs mkfs.ext4 fusermount3" "$1" "$2" "$4"
ENVS="PATH=/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8"
as_user "$VU" run --backend=ns --net none -- true 2>/dev/null || { echo "SKIP: the ns backend does not work for $user here (no reference)"; exit 77; }
views=(ns)
if "$bin/deny-userns-host" "$user" env -i $ENVS "$VU" run --explain --fuse true /mnt -- true 2>&1 | grep -q 'environment B'; then views+=(B)
else skipped "environment B" "not available here"; fi
views+=(A)
base_mounts=$(fuse_left)

as_user tar -C "$work" -xf "$3" || exit 1
suite=$work/pjdfstest/tests
# The directories of integration.pjdfstest_pvm less link, rename and utimensat (CI time: rename
# alone has 4857 subtests; the three views take ~2 min together on 2 loaded cores).
dirs=${PJDFSTEST_DIRS:-"chmod mkdir open rmdir symlink truncate unlink"}
# The runner (each .t in a directory of its own: in the ns view the results depended on which
# files ran before).
. "$here/pjdfstest_lib.sh" || exit 1
pjd_dirs=$dirs
pjd_streams=${PJDFSTEST_STREAMS:-2}
pjd_timeout=800
uidgid="$(id -u "$user"):$(id -g "$user")"
for v in "${views[@]}"; do
  # Room for what failed subtests leave behind (a full image made later subtests fail at random).
  as_user sh -c "truncate -s 512M $work/disk-$v.ext4 && /sbin/mkfs.ext4 -q -F -N 131072 -E root_owner=$uidgid $work/disk-$v.ext4" || exit 1
done
run_in() {  # VIEW
  local v=$1 pre=() spec=(--mount "image:$work/disk-$1.ext4:/mnt" --)
  case $v in
    ns) pre=(runuser -u "$user" -- env -i HOME="$work" $ENVS "$VU" run --backend=ns --net none) ;;
    B) pre=("$bin/deny-userns-host" "$user" env -i HOME="$work" $ENVS "$VU" run --net host) ;;
    A) pre=("$bin/deny-container" "$user" env -i HOME="$work" $ENVS "$VU" run --net host) ;;
  esac
  pjd_run "$v" /mnt "${pre[@]}" "${spec[@]}"
}
start=$(date +%s)
for v in "${views[@]}"; do run_in "$v" & done
wait
echo "(the views took $(($(date +%s) - start)) s together)"
# PJDFSTEST_KEEP=DIR: the result files are copied there (res-ns, res-B, res-A: "FILE N ok|fail"),
# and the views' stderr (err-ns, err-B, err-A).
[ -z "${PJDFSTEST_KEEP:-}" ] || cp "$work"/res-* "$work"/err-* "$PJDFSTEST_KEEP"/

pjd_table "${views[@]}"

[ "$(grep -c ' ok$' "$work/res-ns")" -gt 0 ] || { bad "pjdfstest ran in the ns view" "$(head -c 600 "$work/err-ns")"; summary; exit; }
# The same subtests pass and fail in pvm as in ns: paths of PATH_MAX-1 bytes (*/03.t:
# pvm/host_at.h), names of NAME_MAX+1 bytes (*/02.t: fuse2fs's shim answers ENAMETOOLONG,
# through the kernel and through the monitor alike: pvm/fuse_shim.c) and the largest file (truncate/12.t: fuse2fs's answer, not
# tmpfs's) included.
for v in "${views[@]}"; do
  [ $v = ns ] && continue
  pjd_same ns "$v"
done
# What the views did reached each image whole: vu wrote nothing back in vain (in A the view's
# calls succeed on the shadow tree and reach fuse2fs at the sync points: a failed write-back is
# the only sign of lost changes), and the image is consistent (fuse2fs once wrote names of 256
# bytes as corrupt entries, which later turned the image read-only: pvm/fuse_shim.c).
for v in "${views[@]}"; do
  wb=$(grep -c "writing back" "$work/err-$v")
  [ "$wb" = 0 ] && ok "$v: every change of the view was written back" || bad "$v: every change written back" "$wb write-backs failed, e.g.:" "$(grep "writing back" "$work/err-$v" | head -3)"
  fsck=$(/sbin/e2fsck -fn "$work/disk-$v.ext4" 2>&1) && ok "$v: the image is consistent (e2fsck -fn)" || bad "$v: the image is consistent (e2fsck -fn)" "$(tail -c 500 <<<"$fsck")"
done
[ "$(fuse_left)" = "$base_mounts" ] && ok "nothing left mounted" || bad "nothing left mounted" "$(grep ' - fuse' /proc/self/mountinfo)"
l=$(ps -o pid=,stat=,args= -u "$user" | awk '$2 !~ /^Z/' | grep -v -e ' ps ' -e grep)
[ -z "$l" ] && ok "nothing left running" || bad "nothing left running" "$l"
summary
