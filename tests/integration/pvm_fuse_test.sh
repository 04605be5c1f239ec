#!/usr/bin/env bash
# pvm_fuse_test.sh VU DENY_USERNS DENY_CONTAINER FAKE_FUSE — issue 16, environment A: --mount image: and
# --fuse on the pvm backend with the monitor as the FUSE "kernel" (pvm/fuse_client.h), where no
# mount of any kind is possible: as the test user under deny-userns (Docker's profile; the
# monitor is chosen with VU_PVM_FUSE=monitor), and root-run under deny-container (every mount
# denied to everyone, the setuid fusermount3 included). The same command lines on the ns backend
# of an ordinary host give the reference output.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
root_run_setup "the container host installs its filter as root" "squashfuse mksquashfs fuse2fs mkfs.ext4 debugfs" "$@"
T="timeout -k 5 60"

on_host() {
  case $1 in
    ordinary) shift; as_user $T "$@" ;;
    "userns denied") shift; as_user VU_PVM_FUSE=monitor $T "$bin/deny-userns" "$@" ;;
    container) shift; $T "$bin/deny-container" "$user" "${VIEW_ENV[@]}" VU_PVM_FUSE=monitor "$@" ;;
  esac
}
# Processes of the test user still alive (zombies wait for init to reap them: not running).
leftovers() { ps -o pid=,stat=,args= -u "$user" | awk '$2 !~ /^Z/' | grep -v -e ' ps ' -e grep || true; }

# The reference: the ns backend on an ordinary host.
if ! on_host ordinary "$VU" run --backend=ns --net host -- true >/dev/null 2>&1; then
  echo "SKIP: the ns backend does not work for $user here (no reference)"; exit 77
fi

W=$work/fx
as_user mkdir -p "$W/app/bin" "$W/app/share/doc" "$W/app/empty" "$W/ext/old"
as_user sh -c "
  cd $W/app
  cp /usr/bin/env bin/tool
  printf '#!/bin/sh\necho script ran: \"\$@\"\n' > bin/script.sh; chmod 755 bin/script.sh
  for i in 1 2 3 4 5; do seq \$i 1000 > share/doc/file\$i; done
  head -c 300000 /usr/bin/env > share/blob; chmod 640 share/blob
  ln share/doc/file1 share/hard
  ln -s doc/file2 share/sym
  : > share/zero
  touch -d '2020-01-02 03:04:05' share/doc/file3 share
  mksquashfs $W/app $W/app.sqfs -quiet -noappend >/dev/null
  echo before > $W/ext/old/keep
  /sbin/mkfs.ext4 -q -F -E root_owner -d $W/ext $W/disk.ext4 16M >/dev/null
  printf 'hsqs' > $W/corrupt.sqfs; head -c 4096 /dev/urandom >> $W/corrupt.sqfs
"

# same NAME VU-OPTIONS… -- COMMAND… — pvm on each host prints what ns prints on an ordinary one.
same() {
  local name=$1; shift
  local want want_rc got rc host
  [ -z "${same_before:-}" ] || eval "$same_before"  # (before each view)
  want=$(on_host ordinary "$VU" run --backend=ns --net host "$@" 2>/dev/null); want_rc=$?
  for host in "userns denied" container; do
    [ -z "${same_before:-}" ] || eval "$same_before"
    got=$(on_host "$host" "$VU" run --net host "$@" 2>"$work/err"); rc=$?
    if [ "$got" = "$want" ] && [ $rc = $want_rc ]; then ok "$host: $name"
    else bad "$host: $name" "status $rc (ns on an ordinary host: $want_rc)" \
      "diff: $(diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -c 600)" "stderr: $(head -c 400 "$work/err")"; fi
  done
}

SQ="--mount image:$W/app.sqfs:/opt/app"
# Directory sizes are the filesystem's own (a squashfs listing's length): left out of the listings.
same "squashfs: find -printf (types, modes, links, owners, sizes of files, times)" $SQ -- \
  sh -c "cd /opt/app && find . -printf '%p %y %m %n %u %g %T@\n' | sort; find . ! -type d -printf '%p %s\n' | sort"
same "squashfs: ls -l of files" $SQ -- sh -c 'ls -l --time-style=+%s /opt/app/share /opt/app/share/doc | grep -v "^d"'
same "squashfs: stat" $SQ -- stat -c '%n %s %a %h %F %U %Y' /opt/app/share/blob /opt/app/share/sym /opt/app/bin/tool
same "squashfs: sha256sum of every file" $SQ -- sh -c 'cd /opt/app && find . -type f | sort | xargs sha256sum'
same "squashfs: exec of a binary from the image" $SQ -- /opt/app/bin/tool sh -c 'echo tool ran'
same "squashfs: #! script from the image" $SQ -- /opt/app/bin/script.sh a b
same "squashfs: read-only" $SQ -- sh -c 'touch /opt/app/new 2>/dev/null; echo "touch: $?"'
same "squashfs: --fuse squashfuse" --fuse "squashfuse $W/app.sqfs" /srv/sq -- cat /srv/sq/share/sym
# The program's limits, not the shadow's (pvm/fuse_client.h, "Limits: the program's, asked"): a
# name of 256 bytes is sent to fuse2fs, whose shim (pvm/fuse_shim.c, on every backend) answers
# ENAMETOOLONG as ext4 would; a growing ftruncate (truncate(1); truncate(2):
# integration.pjdfstest_image) gets fuse2fs's answer (success, and a size of 0 past ext4's
# largest file). Each view gets a fresh copy of the image, and e2fsck checks it afterwards:
# fuse2fs alone wrote such a name as a corrupt entry (the directory then read as EIO).
same_before='as_user cp "$W/disk.ext4" "$W/e.ext4"'
same "ext4: names of 256 bytes and growing truncates: the program's answers" --mount "image:$W/e.ext4:/mnt" -- \
  sh -c 'n=$(printf "%0256d" 0) && mkdir /mnt/d /mnt/e && cd /mnt/d || exit 1
    for c in "stat -c %s $n" "cat $n/x" "rm $n" "chmod 600 $n" "truncate -c -s 0 $n" "ln -s t ../e/$n" "mkdir ../e/$n"; do
      $c 2>&1 | sed "s/$n/N256/g"; echo "$c: $?" | sed "s/$n/N256/g"; done
    touch f && truncate -s 1000000000000000 f; echo "ftruncate: $? $(stat -c %s f)"
    truncate -s 5000 f && echo "grown: $(stat -c %s f) $(wc -c <f)"; ls /mnt/d'
same_before=
long_names='n=$(printf "%0256d" 0); cd /mnt && mkdir d && cd d || exit 1
  mkdir $n; touch $n; ln -s t $n; touch a; mv a $n; ln a $n; mknod $n p; mkdir ok; ls; sync'
for host in ordinary "userns denied" container; do
  as_user cp "$W/disk.ext4" "$W/e.ext4"
  b=; [ "$host" = ordinary ] && b=--backend=ns
  out=$(on_host "$host" "$VU" run $b --net host --mount "image:$W/e.ext4:/mnt" -- sh -c "$long_names" 2>&1)
  fsck=$(/sbin/e2fsck -fn "$W/e.ext4" 2>&1); rc=$?
  n_long=$(grep -c "File name too long" <<<"$out")
  if [ $rc = 0 ] && [ "$n_long" = 6 ] && grep -qx ok <<<"$out"; then ok "$host: ext4: names of 256 bytes are ENAMETOOLONG and the image stays clean (e2fsck)"
  else bad "$host: ext4: names of 256 bytes: ENAMETOOLONG, a clean image" "e2fsck status $rc: $(tail -c 300 <<<"$fsck")" \
    "ENAMETOOLONG $n_long of 6; output: $(sed 's/0\{200,\}/N/g' <<<"$out" | head -c 600)"; fi
done

# The shim reaches fuse2fs behind a wrapper on ns too (--fuse lines all get it: fusefs.h).
as_user cp "$W/disk.ext4" "$W/e.ext4"
out=$(on_host ordinary "$VU" run --backend=ns --net host --fuse "env fuse2fs -o fakeroot,nonempty $W/e.ext4" /mnt -- \
  sh -c "ls /mnt >/dev/null; $long_names" 2>&1)
fsck=$(/sbin/e2fsck -fn "$W/e.ext4" 2>&1); rc=$?
n_long=$(grep -c "File name too long" <<<"$out")
if [ $rc = 0 ] && [ "$n_long" = 6 ]; then ok "ordinary: --fuse 'env fuse2fs': names of 256 bytes are ENAMETOOLONG, a clean image"
else bad "ordinary: --fuse 'env fuse2fs': ENAMETOOLONG, a clean image" "e2fsck status $rc: $(tail -c 300 <<<"$fsck")" \
  "ENAMETOOLONG $n_long of 6; output: $(sed 's/0\{200,\}/N/g' <<<"$out" | head -c 600)"; fi

# Write-back order (A replays the view's state at sync): a file made 0444 and a directory made
# 0555 after their content still reach the image (fuse2fs without fakeroot checks its owner's
# write permission), and a directory's times are set after the names made in it. The image
# then says what ns's says (debugfs), and e2fsck finds it clean.
order='cd /mnt && ls >/dev/null && echo x > ro && chmod 444 ro && mkdir p && touch p/f && chmod 555 p &&
  mkdir t && touch t/f && touch -d "2001-01-01 00:00:00" t && mkdir z && chmod 000 z && sync'
image_says() {
  for d in / /p; do debugfs -R "ls -l $d" "$1" 2>/dev/null | awk 'NF>=9 && $NF != "." && $NF != ".." {print $2, $NF}' | sort; done
  debugfs -R 'cat /ro' "$1" 2>/dev/null; debugfs -R 'stat /t' "$1" 2>/dev/null | grep -o ' mtime: 0x[0-9a-f]*'
}
as_user cp "$W/disk.ext4" "$W/o.ext4"
on_host ordinary "$VU" run --backend=ns --net host --fuse "fuse2fs -o nonempty $W/o.ext4" /mnt -- sh -c "$order" >/dev/null 2>&1
want=$(image_says "$W/o.ext4")
for host in "userns denied" container; do
  as_user cp "$W/disk.ext4" "$W/o.ext4"
  out=$(on_host "$host" "$VU" run --net host --fuse "fuse2fs -o nonempty $W/o.ext4" /mnt -- sh -c "$order" 2>&1)
  fsck=$(/sbin/e2fsck -fn "$W/o.ext4" 2>&1); rc=$?
  got=$(image_says "$W/o.ext4")
  if [ $rc = 0 ] && [ "$got" = "$want" ] && ! grep -q "writing back" <<<"$out"; then ok "$host: ext4: 0444 file, 0555 and 0000 directories, a directory's times: written back as ns writes them"
  else bad "$host: ext4: write-back order" "e2fsck status $rc; got: $got" "ns: $want" "output: $(head -c 400 <<<"$out")"; fi
done

# ext4 through fuse2fs (libfuse2: the shim answers its /dev/fuse and mount(2)).
for host in "userns denied" container; do
  as_user cp "$W/disk.ext4" "$W/d.ext4"
  # After sync, while the view still runs, the image itself has the file (debugfs reads it).
  out=$(on_host "$host" "$VU" run --net host --mount "image:$W/d.ext4:/mnt" -- \
    sh -c "ls /mnt; cat /mnt/old/keep; cp /etc/hosts /mnt/; mkdir /mnt/dir; echo new > /mnt/dir/f; rm /mnt/old/keep; sync;
           /sbin/debugfs -R 'cat /hosts' $W/d.ext4 2>/dev/null | cmp -s - /etc/hosts && echo synced" \
    2>"$work/err"); rc=$?
  if [ $rc = 0 ] && [ "$out" = "$(printf 'lost+found\nold\nbefore\nsynced')" ]; then ok "$host: ext4: listed, read, and sync reaches the image"
  else bad "$host: ext4: listed, read, synced" "status $rc: $out" "stderr: $(head -c 400 "$work/err")"; fi
  got=$(debugfs -R 'cat /hosts' "$W/d.ext4" 2>/dev/null | sha256sum; debugfs -R 'cat /dir/f' "$W/d.ext4" 2>/dev/null;
        debugfs -R 'ls /old' "$W/d.ext4" 2>/dev/null | grep -c keep)
  want=$(sha256sum </etc/hosts; echo new; echo 0)
  if [ "$got" = "$want" ]; then ok "$host: ext4: cp in, mkdir, rm, sync: the image has the changes (debugfs)"
  else bad "$host: ext4: changes in the image" "got: $got" "want: $want"; fi
  out=$(on_host "$host" "$VU" run --net host --mount "image:$W/d.ext4:/mnt" -- sh -c 'cat /mnt/dir/f; ls /mnt/old' 2>&1)
  if [ "$out" = new ]; then ok "$host: ext4: another view reads them"; else bad "$host: ext4: another view" "$out"; fi
  # Files the view may write but its owner cannot read (open(…, O_CREAT|O_WRONLY, 0151), a
  # 0200 one, cp of a 0444 file), written back at a sync in the middle and at the end: each
  # reaches the image once, with its content and mode (the write-back read the shadow file:
  # refused, the program kept the name unrecorded and the next sync made it again, twice in
  # the directory). And hard links whose first or second name is removed, changed through the
  # other (the node was the removed name's: fuse2fs said ENOENT to every later write-back).
  as_user cp "$W/disk.ext4" "$W/m.ext4"
  out=$(on_host "$host" "$VU" run --net host --mount "image:$W/m.ext4:/mnt" -- sh -c '
    mkdir /mnt/m && cd /mnt/m || exit 1
    umask 0; printf one > w; chmod 0200 w; printf two > x; chmod 0151 x; printf four > s; chmod 0444 s; cp s r
    sync; printf three > y; chmod 0 y; sync; printf more >> w; printf more >> r 2>/dev/null
    printf h > a1; ln a1 a2; printf h > b1; ln b1 b2; sync; rm a1 b2; sync; printf 2 >> a2; printf 2 >> b1; chmod 0640 a2 b1; sync; :' 2>"$work/err"); rc=$?
  got=$(for f in w x y r a2 b1; do printf '%s %s ' $f "$(debugfs -R "stat /m/$f" "$W/m.ext4" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')"; debugfs -R "cat /m/$f" "$W/m.ext4" 2>/dev/null; echo; done)
  want=$(printf 'w 0200 onemore\nx 0151 two\ny 0000 three\nr 0444 four\na2 0640 h2\nb1 0640 h2\n')
  fsck=$(/sbin/e2fsck -fn "$W/m.ext4" 2>&1); frc=$?
  if [ $rc = 0 ] && [ "$got" = "$want" ] && [ $frc = 0 ] && ! grep -q "writing back" "$work/err"; then ok "$host: ext4: files their owner cannot read, and a hard link's other name, are written back once, content and mode (e2fsck clean)"
  else bad "$host: ext4: files their owner cannot read" "status $rc, e2fsck $frc: $(grep -m3 -i duplicate <<<"$fsck")" "got: $got" "want: $want" "stderr: $(head -c 400 "$work/err")"; fi
done

# Bad programs and images: a clear error, status 125, nothing left running.
for host in "userns denied" container; do
  check_err "$host: a FUSE program that exits at once" 125 'exited before serving' \
    on_host "$host" "$VU" run --net host --fuse 'false' /srv/x -- true
  check_err "$host: a corrupt squashfs image" 125 'squashfuse' \
    on_host "$host" "$VU" run --net host --mount "image:$W/corrupt.sqfs:/srv/x" -- true
  check_err "$host: a program that never answers INIT" 125 'did not answer INIT within 1 s' \
    on_host "$host" env VU_FUSE_INIT_TIMEOUT=1 "$VU" run --net host --fuse 'sh -c "sleep 50" x' /srv/x -- true
  l=$(leftovers)
  if [ -z "$l" ]; then ok "$host: nothing left running"; else bad "$host: left running" "$l"; fi
done
# The never-block rule: a program that never answers a READ holds up the reader only, which a
# signal still ends (timeout's SIGTERM); the view's other calls go on. A program that dies
# mid-run fails the reads with an error and says so; nothing changed, so the status is the
# command's.
F=$bin/fake-fuse
for host in "userns denied" container; do
  out=$(on_host "$host" "$VU" run --net host --fuse "$F ok" /srv/f -- cat /srv/f/file 2>"$work/err")
  if [ "$out" = hello ]; then ok "$host: fake-fuse serves a file"; else bad "$host: fake-fuse ok" "$out" "$(head -c 300 "$work/err")"; fi
  out=$(on_host "$host" "$VU" run --net host --fuse "$F hang" /srv/f -- \
    sh -c 'timeout -s TERM 1 cat /srv/f/file; echo "cat: $?"; ls /srv/f; echo other calls go on' 2>"$work/err"); rc=$?
  if [ $rc = 0 ] && [ "$out" = "$(printf 'cat: 124\nfile\nother calls go on')" ]; then
    ok "$host: a read the program never answers: the reader is ended by its signal, the rest goes on"
  else bad "$host: a hanging read" "status $rc: $out" "stderr: $(head -c 300 "$work/err")"; fi
  check_err "$host: a program that dies mid-run: reads fail, vu says so" 0 'fake-fuse has exited' \
    on_host "$host" "$VU" run --net host --fuse "$F die" /srv/f -- sh -c 'cat /srv/f/file; true'
  l=$(leftovers)
  if [ -z "$l" ]; then ok "$host: nothing left running after them"; else bad "$host: left running" "$l"; fi
done
# Without VU_PVM_FUSE=monitor the probe picks environment A itself here (deny-userns sets
# no_new_privs: the setuid fusermount3 cannot mount), and explains why.
out=$(as_user $T "$bin/deny-userns" "$VU" run --net host --explain $SQ -- true 2>&1)
case $out in *"served by the monitor"*) ok "userns denied: environment A without VU_PVM_FUSE (the probe's choice)" ;;
  *) bad "userns denied: environment A without VU_PVM_FUSE" "$out" ;; esac
check "userns denied: …and the view reads the image" 0 "$(cat "$W/app/share/doc/file3")" \
  as_user $T "$bin/deny-userns" "$VU" run --net host $SQ -- cat /opt/app/share/doc/file3
summary
