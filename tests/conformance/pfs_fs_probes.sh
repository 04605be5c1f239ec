#!/usr/bin/env bash
# pfs_fs_probes.sh VU DENY_USERNS_HOST DENY_CONTAINER — same image, same view, on every backend
# and environment (issue 16). The same probes (ls -l, stat, find, du, tar c | tar t, cp -a,
# sha256sum of every file, exec from the image) run over a squashfs image and an ext4 image in:
#   ns   the ns backend on an ordinary host (kernel FUSE in a user namespace: the reference)
#   B    pvm where user namespaces are denied by a filter applied without no_new_privs
#        (deny-userns-host): the kernel's FUSE through the setuid fusermount3
#   A    pvm in a container (deny-container: every mount denied, setuid helpers too): the
#        monitor serves the FUSE program itself (pvm/fuse_client.h)
# Standard output and status must be identical. Root-run (the filters are installed as root);
# every view runs as the test user. SKIP when an environment is not available here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/harness.sh" || exit 1
root_run_setup "the filters are installed as root" "fuse2fs squashfuse mksquashfs mkfs.ext4 debugfs fusermount3" "$@"
T="timeout -k 5 120"
in_view() {  # ENV VU-OPTIONS… -- COMMAND…
  case $1 in
    ns) shift; as_user $T "$VU" run --backend=ns --net host "$@" ;;
    B) shift; $T "$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host "$@" ;;
    A) shift; $T "$bin/deny-container" "$user" "${VIEW_ENV[@]}" "$VU" run --net host "$@" ;;
  esac
}

in_view ns -- true 2>/dev/null || { echo "SKIP: the ns backend does not work for $user here (no reference)"; exit 77; }
envs="ns"
if in_view B --explain --fuse true /mnt -- true 2>&1 | grep -q 'environment B'; then envs="$envs B"
else skipped "environment B" "$(in_view B --explain --fuse true /mnt -- true 2>&1 | grep -m1 environment)"; fi
if in_view A -- true 2>"$work/err"; then envs="$envs A"
else skipped "environment A" "pvm does not start in a container here: $(head -2 "$work/err")"; fi
base_mounts=$(fuse_left)

# The fixture: directories, an executable and a script, a binary blob, a hard link, symlinks,
# an empty file, a file with a fixed old time, modes other than the default.
W=$work/fx
as_user mkdir -p "$W/src/bin" "$W/src/share/doc" "$W/src/sub/deep" "$W/src/empty"
as_user sh -c "
  cd $W/src || exit 1
  echo in-image > a.txt
  cp /usr/bin/env bin/tool
  printf '#!/bin/sh\necho script ran: \"\$@\"\n' > bin/script.sh; chmod 755 bin/script.sh
  for i in 1 2 3; do seq \$i 2000 > share/doc/file\$i; done
  head -c 300000 /usr/bin/env > share/blob; chmod 640 share/blob
  ln share/doc/file1 share/hard
  ln -s doc/file2 share/sym
  ln -s a.txt link
  : > share/zero
  echo deep > sub/deep/f; chmod 700 sub/deep
  touch -d '2020-01-02 03:04:05' share/doc/file3 share
  mksquashfs $W/src $W/app.sqfs -quiet -noappend >/dev/null
  /sbin/mkfs.ext4 -q -F -d $W/src $W/disk.ext4 16M >/dev/null
" || { bad "fixture" "could not make the images"; summary; exit; }
# lost+found (root's and 0700 in the image) as the user's: a directory of another owner is
# unreadable on ns and readable on pvm-A, whose permission checks are the shadow tree's (a limit
# listed in pvm/fuse_client.h), which would be the only difference of the listings.
for field in uid gid; do
  debugfs -w -R "set_inode_field lost+found $field $(id -${field%id} "$user")" "$W/disk.ext4" >/dev/null 2>&1 || { bad "fixture" "debugfs"; summary; exit; }
done

# The probes: one shell script, $1 the mountpoint. Directory sizes and blocks are each
# filesystem's own, the same through any FUSE path; times to the second.
probes='cd "$1" || exit 1
echo "== ls -l"; ls -lR --time-style=+%s .
echo "== stat"; find . | sort | xargs stat -c "%n %s %b %a %F %h %U:%G %Y"
echo "== find"; find . -printf "%p %y %m %n %s %l\n" | sort
echo "== du"; du -a . | sort -k2; du -s --apparent-size .
echo "== tar c | tar t"; tar cf - . | tar tvf - --numeric-owner | sort -k6
echo "== cp -a"; cp -a . /vu-scratch/copy && (cd /vu-scratch/copy && find . -printf "%p %y %m %n %s %T@ %l\n" | sort)
echo "== sha256sum"; find . -type f | sort | xargs sha256sum
echo "== exec"; ./bin/tool sh -c "echo tool ran"; ./bin/script.sh a b; cat link'

# probe NAME VU-OPTIONS… -- COMMAND…: every environment prints what ns prints.
probe() {
  local name=$1; shift
  local want want_rc got rc e
  want=$(in_view ns "$@" 2>"$work/err-ns"); want_rc=$?
  [ $want_rc = 0 ] || { bad "ns: $name" "status $want_rc" "$(head -c 400 "$work/err-ns")"; return; }
  for e in $envs; do
    [ $e = ns ] && continue
    got=$(in_view $e "$@" 2>"$work/err"); rc=$?
    if [ "$got" = "$want" ] && [ $rc = $want_rc ]; then ok "ns = pvm-$e: $name"
    else bad "ns = pvm-$e: $name" "status $rc (ns: $want_rc)" \
      "diff ns pvm-$e: $(diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -20)" "stderr: $(head -c 400 "$work/err")"; fi
  done
}
probe "squashfs image: ls -l, stat, find, du, tar, cp -a, sha256sum, exec" \
  --tmpfs /vu-scratch --mount "image:$W/app.sqfs:/opt/app" -- sh -c "$probes" x /opt/app
probe "squashfs: --fuse 'squashfuse IMAGE' on a target the host lacks" \
  --fuse "squashfuse $W/app.sqfs" /vu-opt/app -- sh -c 'ls /vu-opt; cat /vu-opt/app/a.txt; ls -l /vu-opt/app/share/sym'
probe "ext4 image (fuse2fs): ls -l, stat, find, du, tar, cp -a, sha256sum, exec" \
  --tmpfs /vu-scratch --mount "image:$W/disk.ext4:/mnt:ro" -- sh -c "$probes" x /mnt
# Another owner's objects (root's: mkfs.ext4 -d run as root keeps the owners), as the user and
# under --root: the kernel's checks (fuse2fs's default_permissions) on ns and B, the shadow
# tree's on A (pvm/fuse_client.h, Permissions). Mounted read-write: the refusals are the checks'
# (EACCES, EPERM), not EROFS; under --root only what leaves the image as it was.
mkdir -p "$W/perm/secret" "$W/perm/rootdir" && echo s > "$W/perm/secret/s" && echo r > "$W/perm/rootdir/r" &&
  echo p > "$W/perm/private" && echo g > "$W/perm/grp" && chgrp "$(id -g "$user")" "$W/perm/grp" &&
  chmod 700 "$W/perm/secret" && chmod 755 "$W/perm/rootdir" && chmod 600 "$W/perm/private" && chmod 640 "$W/perm/grp" &&
  chmod 664 "$W/perm/rootdir/r" && chown "$user:$(id -g "$user")" "$W/perm" &&
  /sbin/mkfs.ext4 -q -F -d "$W/perm" "$W/perm.ext4" 16M >/dev/null && chown "$user" "$W/perm.ext4" ||
  { bad "fixture" "could not make the permissions image"; summary; exit; }
perms='cd "$1" || exit 1
for f in secret/s private grp rootdir/r; do cat "$f" 2>&1; echo "cat $f: $?"; done
ls secret 2>&1; echo "ls secret: $?"; ls rootdir; (cd secret 2>&1); echo "cd secret: $?"
stat -c "%n %a" secret private grp rootdir rootdir/r
if [ "$2" = write ]; then
  touch rootdir/new 2>&1; echo "touch rootdir/new: $?"
  (echo x >> rootdir/r) 2>&1; echo "append rootdir/r: $?"
  mkdir rootdir/d 2>&1; echo "mkdir rootdir/d: $?"
fi'
probe "ext4 image: another owner's files and directories (modes, owners)" \
  --mount "image:$W/perm.ext4:/mnt" -- sh -c "$perms" x /mnt write
probe "ext4 image: another owner's files under --root (root's are the view's)" \
  --root --mount "image:$W/perm.ext4:/mnt" -- sh -c "$perms" x /mnt
# What no view changed is still in the image: an A view writes its changes back at its end,
# and a directory it could not list (another owner's 0700) must not read as emptied.
got=$(debugfs -R 'cat /secret/s' "$W/perm.ext4" 2>/dev/null)
[ "$got" = s ] && ok "another owner's directory keeps its files after the views" || bad "another owner's directory lost its files" "$got"
# The same for a directory the view itself closes (chmod 000) after a sync: its file stays (an
# A view's write-back once took what it could not stat for removed).
if [[ " $envs " == *" A "* ]]; then
  as_user sh -c "truncate -s 8M $W/z.ext4 && /sbin/mkfs.ext4 -q -F -E root_owner $W/z.ext4 >/dev/null" &&
    in_view A --mount "image:$W/z.ext4:/mnt" -- sh -c 'mkdir /mnt/d && echo x > /mnt/d/f && sync && chmod 000 /mnt/d'
  got=$(debugfs -R 'cat /d/f' "$W/z.ext4" 2>/dev/null)
  [ "$got" = x ] && ok "pvm-A: a directory closed by the view keeps its files" || bad "pvm-A: a directory closed by the view lost its files" "$got"
fi
# chmod and unlink of another owner's file: the kernel says EPERM and EACCES on B, EOVERFLOW on
# ns (the owner is not mapped in the view's user namespace); A must say what B says.
chmods='cd "$1" && chmod 666 private 2>&1; echo $?; chmod 666 /mnt/private 2>&1; echo $?; rm -f rootdir/r 2>&1; echo $?
stat -c "%n %a" private rootdir/r'
for e in $envs; do
  [ $e = ns ] && continue
  check "pvm-$e: chmod and rm of another owner's file are refused" 0 "chmod: changing permissions of 'private': Operation not permitted
1
chmod: changing permissions of '/mnt/private': Operation not permitted
1
rm: cannot remove 'rootdir/r': Permission denied
1
private 600
rootdir/r 664" in_view $e --mount "image:$W/perm.ext4:/mnt" -- sh -c "$chmods" x /mnt
done
# The rest of default_permissions' rules for another owner's objects (pvm/fuse_client.h,
# Permissions): utimes with explicit times, chown, the sticky bit, fs.protected_hardlinks. A must
# say what B says (ns: EOVERFLOW for every change of an unmapped owner's object).
if [[ " $envs " == *" A "* && " $envs " == *" B "* ]]; then
  mkdir -p "$W/rt/stk" "$W/rt/mine" && chmod 1777 "$W/rt/stk" "$W/rt/mine" && echo x >"$W/rt/stk/f" && echo y >"$W/rt/f" &&
    echo z >"$W/rt/ro" && echo w >"$W/rt/mine/f" && chmod 666 "$W/rt/f" "$W/rt/stk/f" "$W/rt/mine/f" && chown "$user:" "$W/rt" "$W/rt/mine" &&
    /sbin/mkfs.ext4 -q -F -d "$W/rt" "$W/rt.ext4" 16M && chown "$user:" "$W/rt.ext4" || exit 1
  owners='cd /mnt || exit 1; for c in "touch -d 2020-01-01 f" "touch f" "touch ro" "chown $(id -u):$(id -g) f" "chgrp $(id -g) ro" \
    "rm stk/f" "mv stk/f stk/g" "rm mine/f" "ln ro h" "ln f h2"; do $c 2>&1; echo "$c: $?"; done; find . -mindepth 1 -printf "%p %m %u %TY\n" | sort'
  for e in B A; do
    cp "$W/rt.ext4" "$W/rt-$e.ext4" && chown "$user:" "$W/rt-$e.ext4"
    in_view $e --mount "image:$W/rt-$e.ext4:/mnt" -- sh -c "$owners" >"$work/owners-$e" 2>&1; echo "status $?" >>"$work/owners-$e"
  done
  if cmp -s "$work/owners-B" "$work/owners-A"; then ok "pvm-A: another owner's files: utimes, chown, sticky bit, hard links as on B"
  else bad "pvm-A: another owner's files as on B" "$(diff "$work/owners-B" "$work/owners-A" | head -20)"; fi
fi
[ "$(fuse_left)" = "$base_mounts" ] && ok "nothing left mounted" || bad "nothing left mounted" "$(grep ' - fuse' /proc/self/mountinfo)"
l=$(ps -o pid=,stat=,args= -u "$user" | awk '$2 !~ /^Z/' | grep -v -e ' ps ' -e grep)
[ -z "$l" ] && ok "nothing left running" || bad "nothing left running" "$l"
summary
