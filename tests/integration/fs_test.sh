#!/usr/bin/env bash
# fs_test.sh VU DENY_USERNS — filesystems in a view (issue 4), run as an unprivileged user:
# one copy-on-write suite run against both implementations (kernel overlayfs and vu-cowfs) whose
# transcripts must be identical, layers written by one and read by the other, the issue's
# command lines, FUSE programs and images, and the bad-input cases.
set -u
VU=$1
DENY=$2
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

uid=$(id -u)
gid=$(id -g)
echo "running as uid $uid ($(id -un))"
if [ "$uid" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
if ! "$VU" run --net none -- true 2>"$work/stderr"; then
  echo "SKIP: user namespaces are not available here: $(cat "$work/stderr")"; exit 77
fi
probe=$("$VU" probe)
have_fuse=1 have_overlay=1
have_mkfs=1; PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4 >/dev/null || have_mkfs=0
echo "$probe" | grep -qE '^FUSE in a user namespace +yes' || have_fuse=0
echo "$probe" | grep -qE '^overlayfs in a user namespace +yes' || have_overlay=0

# ---- the copy-on-write suite --------------------------------------------------------------
# The lower tree (make_lower) and the transcript (suite), shared with fs_pvm_test.sh.
. "$here/cow_suite.sh" || exit 1
cat > "$work/deep.sh" <<'EOF'
n=$(printf %0200d 0); i=0
while [ $i -lt 22 ]; do mkdir $n && cd $n || break; i=$((i + 1)); done
echo deep > a && mv a b && ln b c && ln -s b s && mv s s2 && cat c && readlink s2 && rm b c s2 && ls -A
cd "$T" && rm -r $n && echo depth $i
EOF
cow_run() {  # IMPL LAYER LOWER [--root]
  local impl=$1 layer=$2 lower=$3; shift 3
  "$VU" run --net none "$@" --cow "$layer:$lower:$impl" --setenv T="$lower" --setenv DEEP="$work/deep.sh" -- sh -c "$suite"
}

if [ $have_overlay = 0 ] && [ $have_fuse = 0 ]; then
  skipped "copy-on-write suite" "neither overlayfs nor FUSE in a user namespace (vu probe)"
else
  for root in "" --root; do
    tag=${root:-keep}
    transcripts=()
    for impl in kernel fuse; do
      if [ $impl = kernel ] && [ $have_overlay = 0 ]; then skipped "cow suite ($impl, $tag)" "no overlayfs in a user namespace"; continue; fi
      if [ $impl = fuse ] && [ $have_fuse = 0 ]; then skipped "cow suite ($impl, $tag)" "no FUSE in a user namespace"; continue; fi
      make_lower "$work/low-$impl"
      before=$(cd "$work/low-$impl" && find . -printf '%p %s %m\n' | sort | md5sum)
      cow_run $impl "$work/layer-$impl-$tag" "$work/low-$impl" $root > "$work/out-$impl-$tag" 2>&1
      rc=$?
      after=$(cd "$work/low-$impl" && find . -printf '%p %s %m\n' | sort | md5sum)
      expect "cow suite ($impl, $tag) runs" 0 $rc "$(head -c 800 "$work/out-$impl-$tag")"
      [ "$before" = "$after" ] && ok "cow ($impl, $tag): the target is untouched on the host" || bad "cow ($impl, $tag): the target is untouched on the host"
      # The transcript names the directory; make it comparable.
      sed -i "s|$work/low-$impl|LOWER|g" "$work/out-$impl-$tag"
      transcripts+=("$work/out-$impl-$tag")
      # Spot checks that could fail, beyond equality.
      want_owner=$([ -n "$root" ] && echo "0:0" || echo "$uid:$gid")
      grep -q "^owner: $want_owner 644 regular file $want_owner 755 directory $want_owner 444 regular file $want_owner 777 symbolic link" "$work/out-$impl-$tag" \
        && ok "cow ($impl, $tag): every file is the view's ($want_owner)" || bad "cow ($impl, $tag): owners" "$(grep ^owner "$work/out-$impl-$tag")"
      grep -q '^append: hello more' "$work/out-$impl-$tag" && ok "cow ($impl, $tag): copy-up on write" || bad "cow ($impl, $tag): copy-up on write" "$(grep ^append "$work/out-$impl-$tag")"
      grep -q '^mkdir-over: $' "$work/out-$impl-$tag" && ok "cow ($impl, $tag): a directory made again is opaque" || bad "cow ($impl, $tag): opaque" "$(grep ^mkdir-over "$work/out-$impl-$tag")"
      grep -q '^hardlink: same-inode new' "$work/out-$impl-$tag" && ok "cow ($impl, $tag): hard links" || bad "cow ($impl, $tag): hard links" "$(grep ^hardlink "$work/out-$impl-$tag")"
      grep -q '^beyond-path-max: deep b depth 22 $' "$work/out-$impl-$tag" && ok "cow ($impl, $tag): rename, link, symlink deeper than PATH_MAX" || bad "cow ($impl, $tag): deeper than PATH_MAX" "$(grep ^beyond-path-max "$work/out-$impl-$tag")"
      grep -q '^rename-dir: m moved' "$work/out-$impl-$tag" && ok "cow ($impl, $tag): directory rename (EXDEV, then mv copies)" || bad "cow ($impl, $tag): directory rename" "$(grep ^rename-dir "$work/out-$impl-$tag")"
      l="$work/layer-$impl-$tag"
      [ -c "$l/g" ] && [ "$(stat -c %t:%T "$l/g")" = 0:0 ] && ok "cow ($impl, $tag): a delete leaves an overlayfs whiteout" || bad "cow ($impl, $tag): whiteout for g" "$(ls -la "$l")"
      [ "$(cat "$l/d/f2" 2>/dev/null)" = "he" ] && [ "$(cat "$l/n")" = new ] && ok "cow ($impl, $tag): changes land in the layer" || bad "cow ($impl, $tag): changes in the layer" "$(ls -laR "$l" | head -30)"
      ls -A "$work" | grep -q '^\.vu-cow-work' && bad "cow ($impl, $tag): work directory left behind" "$(ls -A "$work")" || ok "cow ($impl, $tag): nothing left beside the layer"
    done
    if [ ${#transcripts[@]} = 2 ]; then
      if cmp -s "${transcripts[0]}" "${transcripts[1]}"; then ok "cow suite ($tag): kernel and FUSE transcripts identical"
      else bad "cow suite ($tag): kernel and FUSE transcripts identical" "$(diff "${transcripts[0]}" "${transcripts[1]}" | head -20)"; fi
    fi
  done
  # One format: a layer written by each implementation, read back by the other.
  if [ $have_overlay = 1 ] && [ $have_fuse = 1 ]; then
    for pair in "kernel fuse" "fuse kernel"; do
      set -- $pair
      make_lower "$work/x-low"
      rm -rf "$work/x-layer"
      "$VU" run --net none --cow "$work/x-layer:$work/x-low:$1" -- sh -c "cd $work/x-low && rm g && rm -r e && mkdir e && echo 2 > e/new && echo more >> d/f" 2>"$work/stderr"
      got=$("$VU" run --net none --cow "$work/x-layer:$work/x-low:$2" -- sh -c "cd $work/x-low && ls -A . e && cat d/f" 2>&1 | tr '\n' ' ')
      want=".: d e gone link mv ro  e: new hello more "
      [ "$got" = "$want" ] && ok "layer written by $1 read by $2" || bad "layer written by $1 read by $2" "got:  $got" "want: $want" "$(cat "$work/stderr")"
    done
  fi
fi

# ---- hard links and the caches (issue 14): write through one name, read through the other --------
links='
set -u
cd "$T"
show() { printf "%s: %s\n" "$1" "$(eval "$2" 2>&1 | tr "\n" " ")"; }
ct() { stat -c %z "$1"; }
changed() { t0=$(ct "$1"); sleep 0.02; eval "$2" >/dev/null 2>&1; [ "$t0" != "$(ct "$1")" ] && echo ctime-changed || echo ctime-same; }
show write-a-read-b "echo one > a && ln a b && cat b && echo two > a && cat b"
show dd-notrunc "printf X | dd of=b conv=notrunc status=none && cat a b"
show append "echo app >> b && cat a"
show truncate "truncate -s 2 a && cat b; echo"
show nlink "stat -c %h a b"
show link-ctime "changed a \"ln a c\"; stat -c %h a b c"
show unlink-ctime "changed a \"rm c\"; stat -c %h a b"
show rename-ctime "t0=\$(ct b); sleep 0.02; mv b bb; [ \"\$t0\" != \"\$(ct bb)\" ] && echo ctime-changed; stat -c %h a bb; cat bb"
show lower-link "ln d/f lf && echo more >> lf && cat d/f && stat -c %h d/f lf"
show chmod-other-name "chmod 600 a && stat -c %a bb"
show unlink-open "exec 3<a; rm a; cat <&3; stat -c %h bb"
show mmap-like "cp bb x && ln x y && echo zz >> y && cat x"
'
if [ $have_overlay = 1 ] && [ $have_fuse = 1 ]; then
  for impl in kernel fuse; do
    make_lower "$work/hl-low-$impl"
    "$VU" run --net none --root --cow "$work/hl-layer-$impl:$work/hl-low-$impl:$impl" --setenv T="$work/hl-low-$impl" -- sh -c "$links" > "$work/hl-$impl" 2>&1
  done
  if cmp -s "$work/hl-kernel" "$work/hl-fuse"; then ok "hard links and caches: kernel and vu-cowfs transcripts identical"
  else bad "hard links and caches: kernel and vu-cowfs transcripts identical" "$(diff "$work/hl-kernel" "$work/hl-fuse")"; fi
  grep -q "^write-a-read-b: one two $" "$work/hl-fuse" && ok "vu-cowfs: a write through one name is read through the other" \
    || bad "vu-cowfs: a write through one name is read through the other" "$(cat "$work/hl-fuse")"
  [ "$(cat "$work/hl-layer-fuse/bb")" = Xw ] && cmp -s "$work/hl-layer-fuse/bb" "$work/hl-layer-kernel/bb" && ok "vu-cowfs: the layer holds what was written through both names" || bad "vu-cowfs: the layer holds what was written through both names" "$(od -c "$work/hl-layer-fuse/bb" | head -3)"
else
  skipped "hard-link transcript" "needs overlayfs and FUSE in a user namespace"
fi

# ---- owners and other users of the view (issue 14: --root --map-users) ----------------------------
others='
cd "$1" || exit 1
chown 1000:1000 d && chown 1001 g && stat -c %u:%g d g
setpriv --reuid 1000 --regid 1000 --clear-groups sh -c "stat -c %a . >/dev/null && cat d/f && echo new > d/mine && stat -c %u:%g d/mine; (echo x >> g) 2>/dev/null || echo denied"
chown 1000 d/mine && stat -c %u:%g d/mine
mknod wo c 0 0 2>/dev/null; echo "mknod c 0 0: $?"; ls wo 2>/dev/null
'
if [ $have_fuse = 1 ] && "$VU" run --net none --root --map-users -- true 2>/dev/null; then
  for impl in kernel fuse; do
    [ $impl = kernel ] && [ $have_overlay = 0 ] && continue
    make_lower "$work/ao-low-$impl"
    "$VU" run --net none --root --map-users --cow "$work/ao-layer-$impl:$work/ao-low-$impl:$impl" -- sh -c "$others" x "$work/ao-low-$impl" > "$work/ao-$impl" 2>&1
  done
  want="1000:1000
1001:0
hello
1000:1000
denied
1000:1000
mknod c 0 0: 1"
  [ "$(cat "$work/ao-fuse")" = "$want" ] && ok "vu-cowfs --root --map-users: chown to mapped ids, other users with normal permission checks, no whiteout from mknod" \
    || bad "vu-cowfs --root --map-users: chown to mapped ids, other users with normal permission checks, no whiteout from mknod" "$(cat "$work/ao-fuse")"
  if [ $have_overlay = 1 ]; then
    cmp -s "$work/ao-kernel" "$work/ao-fuse" && ok "…the same on the kernel overlay" || bad "…the same on the kernel overlay" "$(diff "$work/ao-kernel" "$work/ao-fuse")"
  fi
  # A lower symlink keeps its owner in the view (a lower file is shown as the view's): the
  # kernel's fs.protected_symlinks decides by it whether the view may follow another user's link
  # planted in a sticky world-writable directory (/tmp). (Kernel overlayfs refuses such a lower.)
  "$VU" run --net none --root --map-users -- sh -c 'cd "$1" && ln -s d/f lnk && chown -h 1000:1000 lnk' x "$work/ao-low-fuse"
  out=$("$VU" run --net none --cow "$work/ao-l2-fuse:$work/ao-low-fuse:fuse" -- stat -c %u "$work/ao-low-fuse/lnk" "$work/ao-low-fuse/d/f" 2>&1)
  [ "$out" = "$(cat /proc/sys/kernel/overflowuid; id -u)" ] && ok "vu-cowfs: a lower symlink of another user is shown as theirs (nobody), a lower file as the view's" \
    || bad "vu-cowfs: a lower symlink of another user keeps its owner" "stat -c %u lnk d/f: $out (want $(cat /proc/sys/kernel/overflowuid) $(id -u))"
  # The layers hold files of subordinate ids: only a view that maps them can remove them.
  "$VU" run --net none --root --map-users -- rm -rf "$work"/ao-layer-* "$work"/ao-low-* "$work"/ao-l2-*
  if [ $have_mkfs = 1 ] && command -v fuse2fs >/dev/null; then
    mkdir -p "$work/ao-src" && echo hi > "$work/ao-src/a.txt"
    truncate -s 8M "$work/ao.img" && PATH=$PATH:/usr/sbin:/sbin mkfs.ext4 -q -E root_owner=0:0 -d "$work/ao-src" "$work/ao.img"
    out=$("$VU" run --net none --root --map-users --mount "image:$work/ao.img:/mnt" -- \
      setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'cat /mnt/a.txt; (echo x > /mnt/b) 2>/dev/null || echo denied' 2>&1)
    [ "$out" = "hi
denied" ] && ok "--mount image: another user of the view reads, with normal permission checks" || bad "--mount image: another user of the view reads, with normal permission checks" "$out"
  fi
else
  skipped "owners and other users" "needs FUSE and --map-users (subordinate ids) here"
fi

# ---- vu-cowfs: a full layer, copy-up safety, a killed daemon ---------------------------------
if [ $have_fuse = 1 ]; then
  # A layer whose filesystem fills (a 1 MiB tmpfs on the layer's directory, in the view only):
  # the writer must hear ENOSPC at write() or close(), never a silent success with less in
  # the layer. dd checks close(); the layer's own file is read past the FUSE cache.
  mkdir -p "$work/full-low" "$work/full"
  out=$("$VU" run --net none --tmpfs "$work/full:size=1m" --cow "$work/full:$work/full-low:fuse" -- sh -c '
    cd "$1-low"
    head -c 1040000 /dev/zero > fill || echo "fill failed"
    if dd if=/dev/zero of=big bs=64k count=1 status=none 2>/dev/null; then
      echo "big: dd says written, the layer has $(wc -c < "$1/big")"; fi
    if echo hello | dd of=small status=none 2>/dev/null; then
      [ "$(cat "$1/small" 2>/dev/null)" = hello ] || echo "small: dd says written, the layer has $(wc -c < "$1/small")"; fi
    echo done' vu-full "$work/full" 2>&1)
  [ "$out" = done ] && ok "vu-cowfs: a full layer reaches the writer (ENOSPC at write or close)" \
    || bad "vu-cowfs: a full layer reaches the writer (ENOSPC at write or close)" "$out"
  # Copy-up as an attacker sees it: the old copy-up wrote through the predictable name
  # .vu-cowfs-copy.<tid> (O_CREAT|O_TRUNC, following symlinks) beside the target. A symlink
  # planted there must not redirect the copy; the layer's root is 0700 (no one else enters it),
  # while the view still sees the target's own mode.
  make_lower "$work/at-low"
  rm -rf "$work/at-layer"
  echo secret > "$work/victim"
  out=$("$VU" run --net none --cow "$work/at-layer:$work/at-low:fuse" -- sh -c '
    cd "$1-low" && touch d/other || exit 1
    pid=$(pgrep -f "^[^ ]*vu-cowfs $1-layer ") || { echo "no vu-cowfs"; exit 1; }
    for p in $pid; do ln -s "$2" "$1-layer/d/.vu-cowfs-copy.$p"; done
    echo more >> d/f && cat d/f && stat -c %a .' vu-attack "$work/at" "$work/victim" 2>&1)
  [ "$out" = "hello
more
$(stat -c %a "$work/at-low")" ] && [ "$(cat "$work/victim")" = secret ] && ok "vu-cowfs: copy-up does not follow a planted symlink" \
    || bad "vu-cowfs: copy-up does not follow a planted symlink" "$out" "victim: $(cat "$work/victim")"
  [ "$(stat -c %a "$work/at-layer")" = 700 ] && ok "--cow: a new layer is 0700 on the host" || bad "--cow: a new layer is 0700 on the host" "$(stat -c %a "$work/at-layer")"
  # The lower layer may be a directory others write (/tmp): a lower file swapped on the host for
  # a FIFO between the view's lookup and its open must not make vu-cowfs wait on the FIFO (one
  # thread serves the whole view). A reopen through /proc/self/fd sends FUSE_OPEN for the name
  # looked up before, with no new lookup: the swap is certain to be seen there.
  make_lower "$work/ff-low"
  rm -rf "$work/ff-layer" "$work/ff-sync" && mkdir "$work/ff-sync"
  "$VU" run --net none --cow "$work/ff-layer:$work/ff-low:fuse" -- sh -c '
    exec 3< "$1/g" || exit 1
    : > "$2/ready"
    i=0; while [ ! -e "$2/go" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    timeout 5 cat /proc/self/fd/3 >/dev/null 2>&1; echo "reopen: $?"
    timeout 5 cat "$1/d/f"' vu-fifo "$work/ff-low" "$work/ff-sync" > "$work/ff-out" 2>&1 &
  ffvu=$!
  for _ in $(seq 200); do [ -e "$work/ff-sync/ready" ] && break; sleep 0.05; done
  rm -f "$work/ff-low/g" && mkfifo "$work/ff-low/g" && : > "$work/ff-sync/go"
  for _ in $(seq 300); do kill -0 $ffvu 2>/dev/null || break; sleep 0.05; done
  # A vu-cowfs left waiting on the FIFO is let go (a writer opens it), so nothing stays behind.
  timeout 2 sh -c 'exec 4<>"$1"; sleep 0.2' sh "$work/ff-low/g"
  wait $ffvu
  [ "$(cat "$work/ff-out")" = "reopen: 1
hello" ] && ok "vu-cowfs: a lower file swapped for a FIFO is refused at open, not waited on" \
    || bad "vu-cowfs: a lower file swapped for a FIFO is refused at open, not waited on" "$(cat "$work/ff-out")"
  # vu-cowfs killed while the view runs: the writers get ENOTCONN, and vu says what died.
  make_lower "$work/k-low"
  "$VU" run --net none --cow "$work/k-layer:$work/k-low:fuse" -- sh -c '
    kill -KILL $(pgrep -f "^[^ ]*vu-cowfs $1-layer ") && sleep 0.3; echo x > "$1-low/new"' vu-kill "$work/k" >/dev/null 2>"$work/stderr"
  grep -q "^vu: copy-on-write layer $work/k-layer (vu-cowfs) was killed by signal Killed.*$work/k-low is unreachable" "$work/stderr" \
    && ok "vu-cowfs killed mid-view: vu names it and its signal" || bad "vu-cowfs killed mid-view: vu names it and its signal" "$(cat "$work/stderr")"
fi

# ---- kernel --cow: what a killed vu leaves beside the layer -----------------------------------
if [ $have_overlay = 1 ]; then
  mkdir -p "$work/w" && make_lower "$work/w/low"
  works() { ls -d "$work/w"/.vu-cow-work.* 2>/dev/null | sort; }
  ("$VU" run --net none --cow "$work/w/l1:$work/w/low:kernel" -- sh -c 'kill -KILL $PPID; sleep 2'; true) 2>/dev/null
  killed=$(works)
  # A live view beside it, whose work directory must survive the next view's clean-up.
  "$VU" run --net none --cow "$work/w/l2:$work/w/low:kernel" -- sh -c 'echo up; exec sleep 30' > "$work/w/up" 2>&1 &
  live_vu=$!
  for _ in $(seq 100); do [ -s "$work/w/up" ] && break; sleep 0.05; done
  live=$(comm -13 <(echo "$killed") <(works))
  "$VU" run --net none --cow "$work/w/l3:$work/w/low:kernel" -- true
  left=$(works)
  kill $live_vu; wait $live_vu 2>/dev/null
  if [ -n "$killed" ] && [ -n "$live" ] && [ "$left" = "$live" ]; then ok "kernel --cow: a killed vu's work directory is removed by the next, a live one's kept"
  else bad "kernel --cow: a killed vu's work directory is removed by the next, a live one's kept" "killed: $killed" "live: $live" "left: $left"; fi
  [ -z "$(works)" ] && ok "…and the live one removes its own" || bad "…and the live one removes its own" "$(works)"
fi

# ---- the issue's command lines --------------------------------------------------------------
if [ $have_fuse = 1 ]; then
  rm -rf "$work/ul"
  "$VU" run --net none --cow "$work/ul:/usr" --root -- sh -c 'touch /usr/NEW; rm /usr/bin/ls; test ! -e /usr/bin/ls && test -e /usr/NEW' 2>"$work/stderr"
  rc=$?
  expect "--cow LAYER:/usr --root: touch /usr/NEW; rm /usr/bin/ls" 0 $rc "$(cat "$work/stderr")"
  [ -e "$work/ul/NEW" ] && [ -c "$work/ul/bin/ls" ] && [ -x /usr/bin/ls ] && [ ! -e /usr/NEW ] \
    && ok "changes land in the layer; /usr untouched" || bad "changes land in the layer; /usr untouched" "$(ls -la "$work/ul" "$work/ul/bin" 2>&1 | head)"
  "$VU" run --net none --cow "$work/ul:/usr" --explain > "$work/explain"
  grep -q 'vu-cowfs (FUSE): /usr is not yours' "$work/explain" && ok "--explain says FUSE, and why" || bad "--explain says FUSE, and why" "$(cat "$work/explain")"
  make_lower "$work/own"
  "$VU" run --net none --cow "$work/own-layer:$work/own" --explain > "$work/explain"
  grep -q 'kernel overlayfs: every file below' "$work/explain" && ok "--explain says kernel overlayfs for a tree you own" || bad "--explain: kernel" "$(cat "$work/explain")"
  # The seeds' "virtual installation of software": the whole root filesystem copy-on-write.
  rm -rf "$work/rl"
  out=$("$VU" run --net none --cow "$work/rl:/" --root -- sh -c '
    printf "#!/bin/sh\necho installed\n" > /usr/local/bin/vu-test-tool && chmod +x /usr/local/bin/vu-test-tool &&
    vu-test-tool && rm /etc/hostname && test ! -e /etc/hostname && cat /proc/self/comm && test -c /dev/null &&
    stat -f -c %T / && id -u' 2>&1)
  expect "--cow LAYER:/ --root: install into /usr, delete from /etc" 0 $? "$out"
  [ "$out" = "installed
cat
fuseblk
0" ] || [ "$out" = "installed
cat
fuse
0" ] && ok "…the root is vu-cowfs; /proc and /dev are the real ones" || bad "…the root is vu-cowfs; /proc and /dev are the real ones" "$out"
  [ -x "$work/rl/usr/local/bin/vu-test-tool" ] && [ -c "$work/rl/etc/hostname" ] && [ ! -e /usr/local/bin/vu-test-tool ] \
    && ok "…the changes are in the layer, the host's / is untouched" || bad "…the changes are in the layer" "$(ls -la "$work/rl" 2>&1 | head)"
  ls -d "${TMPDIR:-/tmp}"/vu-cow-root.* >/dev/null 2>&1 && bad "…staging directory left behind" || ok "…no staging directory left behind"
else
  skipped "--cow on /usr and /" "no FUSE in a user namespace"
fi

# ---- FUSE programs and images ----------------------------------------------------------------
mkdir -p "$work/src" "$work/mnt" && echo in-image > "$work/src/a.txt"
if [ $have_fuse = 0 ]; then
  skipped "FUSE programs" "no FUSE in a user namespace"
else
  if [ $have_mkfs = 1 ] && command -v fuse2fs >/dev/null; then
    truncate -s 8M "$work/disk.img" && PATH=$PATH:/usr/sbin:/sbin mkfs.ext4 -q -d "$work/src" "$work/disk.img"
    out=$("$VU" run --net none --root --mount "image:$work/disk.img:/mnt" -- sh -c 'cat /mnt/a.txt; echo written > /mnt/b.txt' 2>&1)
    expect "--mount image:disk.img (ext4 through fuse2fs)" 0 $? "$out"
    [ "$out" = in-image ] && ok "the image's file is read in the view" || bad "the image's file is read in the view" "$out"
    out=$("$VU" run --net none --mount "image:$work/disk.img:/mnt:ro" -- cat /mnt/b.txt 2>&1)
    [ "$out" = written ] && ok "a write to the image was flushed at exit" || bad "a write to the image was flushed at exit" "$out"
    "$VU" run --net none --root --mount "image:$work/disk.img:/mnt:ro" -- sh -c 'echo x > /mnt/c.txt' 2>/dev/null
    [ $? != 0 ] && ok "image:…:ro refuses writes" || bad "image:…:ro refuses writes"
    out=$("$VU" run --net none --fuse "fuse2fs -o fakeroot $work/disk.img" "$work/mnt" -- cat "$work/mnt/a.txt" 2>&1)
    [ "$out" = in-image ] && ok "--fuse 'fuse2fs -o fakeroot disk.img' DIR" || bad "--fuse 'fuse2fs -o fakeroot disk.img' DIR" "$out"
    # fuse2fs exits 0 when it cannot use /dev/fuse: the missing mount is the failure.
    touch "$work/ran"; rm "$work/ran"
    check_err "fuse2fs without a usable /dev/fuse: the command never runs" 125 'without mounting /mnt' \
      "$VU" run --net none --bind /dev/null:/dev/fuse --mount "image:$work/disk.img:/mnt" -- touch "$work/ran"
    [ ! -e "$work/ran" ] && ok "…and the command did not run" || bad "…and the command did not run"
  else
    skipped "ext4 images" "mkfs.ext4 or fuse2fs missing (scripts/setup.sh installs them)"
  fi
  if command -v mksquashfs >/dev/null && command -v squashfuse >/dev/null; then
    mksquashfs "$work/src" "$work/app.sqfs" -quiet -all-root >/dev/null
    out=$("$VU" run --net none --fuse "squashfuse $work/app.sqfs" /opt/app -- cat /opt/app/a.txt 2>&1)
    [ "$out" = in-image ] && ok "--fuse 'squashfuse app.sqfs' /opt/app (target created)" || bad "--fuse 'squashfuse app.sqfs' /opt/app" "$out"
    out=$(cd "$work" && "$VU" run --net none --mount image:app.sqfs:/mnt --fuse "squashfuse app.sqfs" /srv -- sh -c 'cat /mnt/a.txt /srv/a.txt' 2>&1)
    [ "$out" = "in-image
in-image" ] && ok "two FUSE filesystems, relative image paths" || bad "two FUSE filesystems, relative image paths" "$out"
    check_err "a FUSE program that fails: its message is shown" 125 "Can't open squashfs image" \
      "$VU" run --net none --fuse "squashfuse $work/nonexistent.sqfs" /mnt -- true
  else
    skipped "squashfs" "mksquashfs or squashfuse missing"
  fi
  check_err "a FUSE program that exits 0 without mounting" 125 "'true' exited with status 0 without mounting /mnt" \
    "$VU" run --net none --fuse true /mnt -- true
  check_err "a FUSE program that is not installed" 125 'not found' "$VU" run --net none --fuse "no-such-fuse-program x" /mnt -- true
fi

# ---- bad input -----------------------------------------------------------------------------------
echo f > "$work/file"
check_err "--cow onto a file" 2 'is not a directory' "$VU" run --net none --cow "$work/l2:$work/file" -- true
check_err "--cow with a layer whose parent is missing" 2 'parent must exist' "$VU" run --net none --cow "$work/no/such/layer:/usr" -- true
check_err "--cow :kernel where the kernel cannot" 2 'overlayfs cannot make every file yours' "$VU" run --net none --cow "$work/l3:/usr:kernel" -- true
check_err "--cow with a bad option" 2 'unknown option' "$VU" run --net none --cow "$work/l3:/usr:fast" -- true
check_err "--cow without a target" 2 'expected LAYER:TARGET' "$VU" run --net none --cow "$work/l3" -- true
check_err "--mount a missing image" 2 'No such file' "$VU" run --net none --mount "image:$work/none.img:/mnt" -- true
check_err "--mount an unknown image type" 2 'unknown image type' "$VU" run --net none --mount "image:$work/file:/mnt" -- true
check_err "--mount with a bad form" 2 'expected image:FILE:TARGET' "$VU" run --net none --mount "disk:$work/file" -- true
check_err "--fuse without a mountpoint" 2 '' "$VU" run --net none --fuse "squashfuse x"
# pvm: FUSE through the setuid fusermount3 (integration.fs_pvm_fuse) or, under no_new_privs
# (deny-userns sets it: environment A), served by the monitor (integration.pvm_fuse); not a
# copy-on-write root.
check_err "--cow LAYER:/ under the pvm backend" 125 'needs user namespaces' "$VU" run --backend=pvm --cow "$work/l4:/" -- true
check_err "--fuse of a program that exits at once, where user namespaces are refused under no_new_privs (environment A)" 125 'vu:' "$DENY" "$VU" run --fuse true /mnt -- true
[ ! -e "$work/l2" ] && [ ! -e "$work/l3" ] && [ ! -e "$work/l4" ] && ok "bad input creates no layer" || bad "bad input creates no layer" "$(ls "$work")"

summary
