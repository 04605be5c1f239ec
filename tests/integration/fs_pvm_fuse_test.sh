#!/usr/bin/env bash
# fs_pvm_fuse_test.sh VU DENY_USERNS_HOST DENY_CONTAINER FAKE_FUSE — filesystems on the pvm
# backend (issue 16), what only environment B has to show. Environment B is a host whose user
# namespaces are denied by a filter applied without no_new_privs (deny-userns-host, installed as
# root, then the test user's ids): vu falls back to pvm and mounts through the setuid
# fusermount3. Here: --root writes reach an image; a FUSE target inside a --cow directory is
# placed as the ns backend places it; a program killed mid-view is named; kill -9 of vu leaves
# nothing mounted or running; bad input (a program that never mounts, or mounts and never
# answers INIT) fails clearly before the command starts. Environment A (a container,
# deny-container) is served by the monitor's FUSE client (one check here; integration.pvm_fuse
# has the rest). The probes of image contents on ns, B and A: conformance.fs_images; --cow on
# pvm (the monitor's, both environments): integration.fs_pvm. Run as root; views run as the
# test user.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
root_run_setup "environment B's filter is installed as root" "fuse2fs squashfuse mksquashfs fusermount3" "$@"
ns() { as_user "$VU" run --backend=ns --net host "$@"; }

if ! as_user "$VU" run --backend=ns --net none -- true 2>/dev/null; then echo "SKIP: no user namespaces here for the ns side"; exit 77; fi
if ! pvmB --explain --fuse true /mnt -- true 2>&1 | grep -q 'environment B'; then
  echo "SKIP: environment B is not available here: $(pvmB --explain --fuse true /mnt -- true 2>&1 | head -3)"; exit 77
fi
base_mounts=$(fuse_left)

W=$work/fx
as_user mkdir -p "$W/src/bin" "$W/src/sub/deep"
as_user sh -c "cd $W/src && echo in-image > a.txt && printf '#!/bin/sh\necho tool ran\n' > bin/tool && chmod 755 bin/tool && echo deep > sub/deep/f && ln -s a.txt link && head -c 100000 /dev/urandom > big"
as_user sh -c "mksquashfs $W/src $W/app.sqfs -quiet -noappend >/dev/null && truncate -s 16M $W/disk.img && mkfs.ext4 -q -d $W/src $W/disk.img"

# ---- what only B has to show -----------------------------------------------------------------
# (The probes of images — ls -l, stat, find, du, tar, cp -a, sha256sum — on ns, B and A are
# conformance.fs_images; --cow on pvm is the monitor's in both environments: integration.fs_pvm.)
# --root: writes reach the image (fuse2fs without default_permissions, as the ns view's root).
out=$(pvmB --root --mount "image:$W/disk.img:/mnt" -- sh -c 'echo written-by-pvm > /mnt/new.txt && sync' 2>&1)
expect "pvm-B --root: write into an ext4 image" 0 $? "$out"
got=$(ns --mount "image:$W/disk.img:/mnt:ro" -- cat /mnt/new.txt 2>&1)
[ "$got" = written-by-pvm ] && ok "…it persists in the image (read by an ns view)" || bad "…it persists in the image" "$got"
[ "$(fuse_left)" = "$base_mounts" ] && ok "…nothing left mounted" || bad "…nothing left mounted" "$(grep ' - fuse' /proc/self/mountinfo)"

# The ns order: --cow directories first, then --fuse/--mount; a FUSE target inside a --cow
# directory covers that part of it (the image, not the lower directory, is seen there).
as_user sh -c "rm -rf $W/olow && mkdir -p $W/olow/sub && echo low > $W/olow/keep && echo hidden > $W/olow/sub/hidden"
order='cd "$1" && ls . sub && cat sub/a.txt && echo new > new && cat new keep'
want=$(ns --cow "$W/ol-ns:$W/olow" --mount "image:$W/app.sqfs:$W/olow/sub" -- sh -c "$order" x "$W/olow" 2>&1)
got=$(pvmB --cow "$W/ol-pvm:$W/olow" --mount "image:$W/app.sqfs:$W/olow/sub" -- sh -c "$order" x "$W/olow" 2>&1)
if [ "$got" = "$want" ] && printf '%s' "$got" | grep -q in-image; then ok "ns = pvm-B: a FUSE target inside a --cow directory is mounted over it"
else bad "ns = pvm-B: a FUSE target inside a --cow directory is mounted over it" "pvm: $(printf '%s' "$got" | tr '\n' ' ')" "ns:  $(printf '%s' "$want" | tr '\n' ' ')"; fi
[ -f "$W/ol-pvm/new" ] && [ ! -e "$W/olow/new" ] && ok "…and the change outside it lands in the layer" || bad "…the change lands in the layer" "$(ls -A "$W/ol-pvm" "$W/olow")"

# ---- a FUSE program killed while the view runs: vu names it, the view goes on --------------
pvmB --mount "image:$W/app.sqfs:/opt/app" -- sh -c 'kill -KILL $(pgrep -f "^squashfuse $1") && sleep 0.3; ls /opt/app' x "$W/app.sqfs" >/dev/null 2>"$work/err"
grep -q "^vu: squashfuse $W/app.sqfs was killed by signal Killed.*/opt/app is unreachable" "$work/err" \
  && ok "pvm-B: squashfuse killed mid-view: vu names it and its signal" || bad "pvm-B: squashfuse killed mid-view" "$(cat "$work/err")"
[ "$(fuse_left)" = "$base_mounts" ] && ok "…and nothing stays mounted" || bad "…and nothing stays mounted" "$(grep ' - fuse' /proc/self/mountinfo)"

# ---- a mount namespace made meanwhile by someone else holds a copy of the mount ------------
# (a browser's sandbox, a container: here `unshare -Urm` as the same user, outside the filter).
# The kernel then does not end fuse2fs's connection at vu's lazy unmount; vu asks the idle
# program to end (SIGTERM: libfuse writes back) instead of waiting for the namespace, and of
# killing it at the deadline with what it had not written back.
if as_user unshare -Urm true 2>/dev/null; then
  as_user truncate -s 16M "$W/hold.img" && as_user /sbin/mkfs.ext4 -q "$W/hold.img"
  rm -f "$work/held"
  pvmB --root --mount "image:$W/hold.img:/mnt" -- sh -c "head -c 3000000 /dev/urandom > /mnt/held.bin && sha256sum < /mnt/held.bin > $work/want && touch $work/held && sleep 1" &
  vp=$!
  for _ in $(seq 200); do [ -e "$work/held" ] && break; sleep 0.05; done
  as_user unshare -Urm sleep 50 &
  hp=$!
  timeout 70 tail --pid=$vp -f /dev/null
  alive=no; kill -0 $hp 2>/dev/null && alive=yes
  kill $hp 2>/dev/null; wait $hp 2>/dev/null; wait $vp 2>/dev/null
  [ -e "$work/held" ] && [ $alive = yes ] && ok "pvm-B: vu ends while another namespace still holds a copy of the mount" \
    || bad "pvm-B: vu ends while another namespace still holds a copy of the mount" "view started: $([ -e "$work/held" ] && echo yes || echo no), holder alive when vu ended: $alive"
  got=$(ns --mount "image:$W/hold.img:/mnt:ro" -- sh -c 'sha256sum < /mnt/held.bin' 2>&1)
  [ -s "$work/want" ] && [ "$got" = "$(cat "$work/want")" ] && ok "…and what the view wrote is in the image" || bad "…and what the view wrote is in the image" "got: $got"
  /sbin/e2fsck -fn "$W/hold.img" >/dev/null 2>&1 && ok "…which e2fsck finds clean" || bad "…which e2fsck finds clean" "e2fsck -fn: status $?"
  [ "$(fuse_left)" = "$base_mounts" ] && ok "…and nothing stays mounted here" || bad "…and nothing stays mounted here" "$(grep ' - fuse' /proc/self/mountinfo)"
else
  skipped "a namespace holding a copy of the mount" "unshare -Urm fails for $user here"
fi

# ---- kill -9 of vu mid-run: nothing stays mounted, nothing runs ------------------------------
as_user mkdir -p "$W/k-low/d"
# (not the pvmB function: $! must be vu itself, which deny-userns-host and env execute)
"$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host \
  --mount "image:$W/disk.img:/mnt" --cow "$W/k-layer:$W/k-low" -- sh -c 'echo up; exec sleep 60' > "$work/up" 2>&1 &
vupid=$!
for _ in $(seq 100); do [ -s "$work/up" ] && break; sleep 0.05; done
n_up=$(fuse_left)
kill -KILL $vupid; wait $vupid 2>/dev/null
for i in $(seq 50); do [ "$(fuse_left)" = "$base_mounts" ] && break; sleep 0.1; done
if [ "$n_up" -ge $((base_mounts + 1)) ] && [ "$(fuse_left)" = "$base_mounts" ]; then ok "kill -9 of vu: the FUSE mount is gone within $((i / 10)).$((i % 10)) s"
else bad "kill -9 of vu: mounts left" "while up: $n_up" "$(grep ' - fuse' /proc/self/mountinfo)"; fi
for _ in $(seq 50); do pgrep -u "$user" -f 'vu-cowfs|fuse2fs|sleep 60' >/dev/null || break; sleep 0.1; done
pgrep -u "$user" -af 'vu-cowfs|fuse2fs|sleep 60' && bad "kill -9 of vu: processes left" || ok "kill -9 of vu: no process of the view left"

# ---- bad input -------------------------------------------------------------------------------
as_user sh -c "head -c 4096 /dev/zero > $W/junk.img"
check_err "pvm-B: an image that is neither ext nor squashfs" 2 'unknown image type' pvmB --mount "image:$W/junk.img:/mnt" -- true
check_err "pvm-B: a FUSE program that exits at once" 125 "'true' exited with status 0 without mounting /mnt" pvmB --fuse true /mnt -- true
check_err "pvm-B: a FUSE program that fails names its message" 125 "Can't open squashfs image" pvmB --fuse "squashfuse $W/none.sqfs" /mnt -- true
check_err "pvm-B: a FUSE program that never mounts: bounded wait" 125 'no FUSE mount within 30 s' pvmB --fuse 'sleep 3600 #' /mnt -- true
# A program that mounts and then never answers the kernel's INIT: every call on the mount would
# wait for ever; vu waits a bounded time ($VU_FUSE_INIT_TIMEOUT s), kills it, unmounts, 125.
out=$("$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" VU_FUSE_INIT_TIMEOUT=1 \
  timeout -k 5 60 "$VU" run --net host --fuse "$bin/fake-fuse noinit" /srv/x -- echo the command ran 2>"$work/stderr"); rc=$?
if [ $rc = 125 ] && [ -z "$out" ] && grep -q "mounted /srv/x but did not answer the kernel's INIT within 1 s" "$work/stderr"; then
  ok "pvm-B: a FUSE program that mounts and never answers INIT: 125 before the command, bounded"
else bad "pvm-B: a FUSE program that mounts and never answers INIT" "status $rc, stdout: $out" "stderr: $(head -c 600 "$work/stderr")"; fi
# At the end the view's processes are killed; one with a file of a mount open waits in close(2)
# for the program's answer to FLUSH, and a program that meets a ptrace stop while answering
# (fake-fuse flushfork forks, as libfuse starts a worker thread) is resumed only by vu's
# supervising thread: the teardown serves it while it reaps (runtime/pvm_fuse.h). (Hung for
# ever when the teardown waited for the killed processes first.)
out=$(timeout -s KILL 60 "$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host --fuse "$bin/fake-fuse flushfork" /srv/x \
  -- sh -c 'for i in 1 2 3; do sleep 3600 < /srv/x/file & done; cat /srv/x/file' 2>&1); rc=$?
expect "pvm-B: teardown while the program forks to answer FLUSH: no hang" "0 hello" "$rc $out"
check_err "pvm-B: --cow LAYER:/ is refused" 125 'copy-on-write root' pvmB --cow "$W/rl:/" -- true
# Environment A (a container: setuid helpers cannot mount either): the monitor serves the image
# itself (pvm/fuse_client.h; its own suite is integration.pvm_fuse).
check "environment A (a container): the monitor serves the image" 0 "$(cat "$W/src/a.txt")" \
  pvmA --mount "image:$W/app.sqfs:/mnt" -- cat /mnt/a.txt
[ "$(fuse_left)" = "$base_mounts" ] && ok "bad input: nothing left mounted" || bad "bad input: nothing left mounted" "$(grep ' - fuse' /proc/self/mountinfo)"
pgrep -u "$user" -af 'sleep 3600|squashfuse|fake-fuse' && bad "bad input: processes left" || ok "bad input: no process left"
summary
