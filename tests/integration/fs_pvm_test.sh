#!/usr/bin/env bash
# fs_pvm_test.sh VU DENY_USERNS SYSCALL_PROBE [DENY_CONTAINER] — --cow on the pvm backend (issue 16,
# environment A: the monitor's own copy-on-write, pvm/cow.h; no FUSE, no overlayfs).
#   As the test user (run_as_user.sh): under deny-userns (Docker's profile) vu falls back to pvm;
#   the copy-on-write transcript of fs_test.sh (cow_suite.sh) must print what the ns backend
#   prints (vu-cowfs and the kernel overlay where they work here), a layer written by pvm must
#   read the same on ns and the reverse, and a second transcript covers hard links, exec and #!
#   inside the cow directory and mmap of a file later written.
#   As root (with DENY_CONTAINER): the same transcript in a container (every mount denied to
#   everyone, then the test user's ids), as integration.hosts runs it, against ns as that user.
set -u
VU=$1
DENY=$2
PROBE=$3
CONTAINER=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
. "$here/cow_suite.sh" || exit 1

extras='
set -u
cd "$T"
show() { printf "%s: %s\n" "$1" "$(eval "$2" 2>&1 | tr "\n" " ")"; }
show exec-lower "./tool"
show exec-script-lower "./script.sh a"
show exec-copied "cp /bin/echo ./myecho && ./myecho copied"
show exec-script-new "printf \"#!/bin/sh\necho new \\\$1\n\" > new.sh && chmod +x new.sh && ./new.sh b && sh -c ./new.sh"
show exec-after-write "echo \"echo changed\" >> tool && ./tool"
show mmap-later "$PROBE mmap-later d/f"
show links "ln d/f lf && echo more >> lf && cat d/f && stat -c %h d/f lf && test d/f -ef lf && echo same"
show ino-stable "i=\$(stat -c %i g); echo x >> g; [ \$i = \$(stat -c %i g) ] && echo stable"
show fstat-is-stat "exec 3<g; [ \$(stat -c %i g) = \$(stat -L -c %i /proc/self/fd/3) ] && echo same"
show find "find . -name f -o -name x | sort"
show du "du -a d | wc -l"
show tar "tar cf - d e 2>&1 | tar tf - | sort | tr \"\n\" \" \""
show cp-a "cp -a d d-copy && ls -A d-copy && stat -c %a d-copy/f"
show rm-r "rm -r d-copy e && ls -A"
show mkdir-p "mkdir -p x/y/z && touch x/y/z/w && find x | sort"
show big-listing "touch big/new && rm big/f7 && ls big | wc -l && ls -f big | sort | uniq -d | wc -l && ls big | grep -c -x f7"
show fifo-lower "cat pipe & echo through > pipe; wait"
'
extra_lower() {  # DIR: the cow lower tree plus what the second transcript runs
  make_lower "$1"
  printf '#!/bin/sh\necho tool\n' > "$1/tool"; chmod 755 "$1/tool"
  printf '#!/bin/sh\necho script "$1"\n' > "$1/script.sh"; chmod 755 "$1/script.sh"
  mkdir "$1/big" && (cd "$1/big" && for i in $(seq 1500); do : > "f$i"; done)  # a listing of many getdents64 calls
  mkfifo "$1/pipe"  # a lower FIFO opened for writing: the lower object itself (nothing copied up)
}

ns_ref() {  # IMPL TAG LOWER LAYER OUT SCRIPT [--root]: the ns transcript, or "" when impossible
  local impl=$1 tag=$2 lower=$3 layer=$4 out=$5 script=$6; shift 6
  "$VU" run --backend=ns --net none "$@" --cow "$layer:$lower:$impl" --setenv T="$lower" --setenv PROBE="$PROBE" \
    -- sh -c "$script" > "$out" 2>&1
}

if [ -n "$CONTAINER" ]; then
  # ---- root: the container host ------------------------------------------------------------
  root_run_setup "the container host installs its filter as root" "" "$VU" "$CONTAINER" "$PROBE" "$here/cow_suite.sh"
  PROBE=$bin/$(basename "$PROBE")
  in_container() { "$bin/deny-container" "$user" "${VIEW_ENV[@]}" "$@"; }
  for root in "" --root; do
    tag=${root:-keep}
    as_user bash -c ". $bin/cow_suite.sh; make_lower $work/ns-$tag; make_lower $work/pvm-$tag"
    as_user "$VU" run --backend=ns --net none $root --cow "$work/ns-layer-$tag:$work/ns-$tag:fuse" --setenv T="$work/ns-$tag" \
      -- sh -c "$suite" > "$work/ns-out-$tag" 2>&1
    in_container "$VU" run --net host $root --cow "$work/pvm-layer-$tag:$work/pvm-$tag" --setenv T="$work/pvm-$tag" \
      -- sh -c "$suite" > "$work/pvm-out-$tag" 2>&1
    expect "container: the cow suite runs ($tag)" 0 $?
    sed -i "s|$work/ns-$tag|LOWER|g" "$work/ns-out-$tag"
    sed -i "s|$work/pvm-$tag|LOWER|g" "$work/pvm-out-$tag"
    if ! grep -q '^read: ' "$work/ns-out-$tag"; then skipped "container: cow suite ($tag)" "no ns reference here (vu-cowfs: $(head -c 200 "$work/ns-out-$tag"))"
    elif cmp -s "$work/ns-out-$tag" "$work/pvm-out-$tag"; then ok "container: pvm --cow transcript = ns vu-cowfs ($tag)"
    else bad "container: pvm --cow transcript = ns vu-cowfs ($tag)" "$(diff "$work/ns-out-$tag" "$work/pvm-out-$tag" | head -20)"; fi
    [ -c "$work/pvm-layer-$tag/g" ] && ok "container: whiteouts in the layer ($tag)" || bad "container: whiteouts in the layer ($tag)" "$(ls -la "$work/pvm-layer-$tag")"
  done
  in_container "$VU" run --net host --cow "$work/c-layer:$work/pvm-keep" --explain > "$work/explain" 2>&1
  grep -q "backend   pvm" "$work/explain" && grep -q "the monitor's copy-on-write" "$work/explain" \
    && ok "container: --explain says pvm and the monitor's copy-on-write" || bad "container: --explain" "$(cat "$work/explain")"
  summary
  exit
fi

# ---- the test user, user namespaces denied (deny-userns) -----------------------------------------
uid=$(id -u)
echo "running as uid $uid ($(id -un))"
if [ "$uid" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
probe=$("$VU" probe)
have_fuse=1 have_overlay=1 have_ns=1
"$VU" run --backend=ns --net none -- true 2>/dev/null || have_ns=0
echo "$probe" | grep -qE '^FUSE in a user namespace +yes' || have_fuse=0
echo "$probe" | grep -qE '^overlayfs in a user namespace +yes' || have_overlay=0
impls=()
[ $have_ns = 1 ] && [ $have_fuse = 1 ] && impls+=(fuse)
[ $have_ns = 1 ] && [ $have_overlay = 1 ] && impls+=(kernel)
[ ${#impls[@]} = 0 ] && echo "note: no ns --cow here; pvm's transcripts are checked by their spot checks only"

"$DENY" "$VU" run --net host --cow "$work/e-layer:/usr" --explain > "$work/explain" 2>&1
grep -q "backend   pvm" "$work/explain" && grep -q "cow /usr <- layer $work/e-layer: the monitor's copy-on-write" "$work/explain" \
  && ok "--explain: pvm, the monitor's copy-on-write" || bad "--explain: pvm, the monitor's copy-on-write" "$(cat "$work/explain")"
[ ! -e "$work/e-layer" ] && ok "--explain makes no layer" || bad "--explain makes no layer"

for root in "" --root; do
  tag=${root:-keep}
  make_lower "$work/p-$tag"
  before=$(cd "$work/p-$tag" && find . -printf '%p %s %m\n' | sort | md5sum)
  "$DENY" "$VU" run --net host $root --cow "$work/p-layer-$tag:$work/p-$tag" --setenv T="$work/p-$tag" -- sh -c "$suite" > "$work/p-out-$tag" 2>&1
  expect "pvm cow suite ($tag) runs" 0 $? "$(head -c 600 "$work/p-out-$tag")"
  after=$(cd "$work/p-$tag" && find . -printf '%p %s %m\n' | sort | md5sum)
  [ "$before" = "$after" ] && ok "pvm cow ($tag): the target is untouched on the host" || bad "pvm cow ($tag): the target is untouched on the host"
  sed -i "s|$work/p-$tag|LOWER|g" "$work/p-out-$tag"
  for impl in "${impls[@]}"; do
    make_lower "$work/n-$impl-$tag"
    ns_ref "$impl" "$tag" "$work/n-$impl-$tag" "$work/n-layer-$impl-$tag" "$work/n-out-$impl-$tag" "$suite" $root
    sed -i "s|$work/n-$impl-$tag|LOWER|g" "$work/n-out-$impl-$tag"
    if cmp -s "$work/n-out-$impl-$tag" "$work/p-out-$tag"; then ok "pvm cow suite ($tag) = ns $impl"
    else bad "pvm cow suite ($tag) = ns $impl" "$(diff "$work/n-out-$impl-$tag" "$work/p-out-$tag" | head -30)"; fi
  done
  out=$work/p-out-$tag
  want_owner=$([ -n "$root" ] && echo "0:0" || echo "$uid:$(id -g)")
  grep -q "^owner: $want_owner 644 regular file $want_owner 755 directory $want_owner 444 regular file $want_owner 777 symbolic link" "$out" \
    && ok "pvm cow ($tag): every file is the view's ($want_owner)" || bad "pvm cow ($tag): owners" "$(grep ^owner "$out")"
  grep -q '^append: hello more' "$out" && ok "pvm cow ($tag): copy-up on write" || bad "pvm cow ($tag): copy-up on write" "$(grep ^append "$out")"
  grep -q '^mkdir-over: $' "$out" && ok "pvm cow ($tag): a directory made again is opaque" || bad "pvm cow ($tag): opaque" "$(grep ^mkdir-over "$out")"
  grep -q '^rename-dir: m moved' "$out" && ok "pvm cow ($tag): directory rename (EXDEV, then mv copies)" || bad "pvm cow ($tag): directory rename" "$(grep ^rename-dir "$out")"
  grep -q '^listing: d e gone link mv2 n n2 nd2 ro s ' "$out" && ok "pvm cow ($tag): the merged listing" || bad "pvm cow ($tag): the merged listing" "$(grep ^listing "$out")"
  l=$work/p-layer-$tag
  [ -c "$l/g" ] && [ "$(stat -c %t:%T "$l/g")" = 0:0 ] && ok "pvm cow ($tag): a delete leaves an overlayfs whiteout" || bad "pvm cow ($tag): whiteout for g" "$(ls -la "$l")"
  [ "$(getfattr --only-values -n user.overlay.opaque "$l/e" 2>/dev/null)" = y ] && ok "pvm cow ($tag): user.overlay.opaque=y" || bad "pvm cow ($tag): opaque xattr" "$(getfattr -d -m - "$l/e" 2>&1)"
  [ "$(cat "$l/d/f2" 2>/dev/null)" = "he" ] && [ "$(cat "$l/n")" = new ] && ok "pvm cow ($tag): changes land in the layer" || bad "pvm cow ($tag): changes in the layer" "$(ls -laR "$l" | head -30)"
  [ "$(stat -c %a "$l")" = 700 ] && ok "pvm cow ($tag): a new layer is 0700" || bad "pvm cow ($tag): a new layer is 0700" "$(stat -c %a "$l")"
done

# ---- the second transcript: exec, #!, mmap, hard links, inode numbers, tree walks ----------------
extra_lower "$work/x-pvm"
"$DENY" "$VU" run --net host --cow "$work/x-layer-pvm:$work/x-pvm" --setenv T="$work/x-pvm" --setenv PROBE="$PROBE" -- sh -c "$extras" > "$work/x-out-pvm" 2>&1
sed -i "s|$work/x-pvm|LOWER|g" "$work/x-out-pvm"
cat "$work/x-out-pvm"
for impl in "${impls[@]}"; do
  extra_lower "$work/x-$impl"
  ns_ref "$impl" keep "$work/x-$impl" "$work/x-layer-$impl" "$work/x-out-$impl" "$extras"
  sed -i "s|$work/x-$impl|LOWER|g" "$work/x-out-$impl"
  # Known differences, left out of the comparison (the spot checks below hold pvm's): kernel
  # overlayfs reads the new data through a descriptor opened before the copy-up (it reopens the
  # upper file; pvm reads the lower one, whose descriptor it is) and shows two names of a
  # copied-up file as different files (no xino/index in a user namespace); vu-cowfs shows a
  # mapping made after the write with the old data (its page cache kept the lower file's).
  skip_re='^(mmap-later|links):'
  [ $impl = fuse ] && skip_re='^mmap-later:'
  if cmp -s <(grep -Ev "$skip_re" "$work/x-out-$impl") <(grep -Ev "$skip_re" "$work/x-out-pvm"); then ok "pvm second transcript = ns $impl"
  else bad "pvm second transcript = ns $impl" "$(diff "$work/x-out-$impl" "$work/x-out-pvm" | head -30)"; fi
done
x=$work/x-out-pvm
grep -q '^exec-lower: tool $' "$x" && grep -q '^exec-script-lower: script a $' "$x" && ok "pvm cow: exec of a lower binary and #! script" || bad "pvm cow: exec in the cow directory" "$(grep ^exec "$x")"
grep -q '^exec-copied: copied $' "$x" && grep -q '^exec-script-new: new b new $' "$x" && ok "pvm cow: exec of files made in the layer (binary, #!)" || bad "pvm cow: exec of new files" "$(grep ^exec "$x")"
grep -q '^exec-after-write: tool changed $' "$x" && ok "pvm cow: exec of a copied-up script sees the change" || bad "pvm cow: exec after write" "$(grep ^exec-after "$x")"
grep -q '^mmap-later: h X . $' "$x" && ok "pvm cow: a file mapped after it was written shows the write" || bad "pvm cow: mmap of a file later written" "$(grep ^mmap "$x")"
grep -q '^links: .ello more 2 2 same $' "$x" && ok "pvm cow: a hard link to a lower file (copy-up, nlink)" || bad "pvm cow: hard links" "$(grep ^links "$x")"
grep -q '^ino-stable: stable $' "$x" && ok "pvm cow: st_ino stable across a copy-up" || bad "pvm cow: st_ino across copy-up" "$(grep ^ino "$x")"
grep -q '^big-listing: 1500 0 0 $' "$x" && ok "pvm cow: a merged listing over many getdents64 calls (no duplicates, no whiteouts)" || bad "pvm cow: a large merged listing" "$(grep ^big "$x")"
grep -q '^fstat-is-stat: same $' "$x" && ok "pvm cow: fstat of a descriptor = stat of its path" || bad "pvm cow: fstat" "$(grep ^fstat "$x")"
grep -q '^fifo-lower: through $' "$x" && [ ! -e "$work/x-layer-pvm/pipe" ] && ok "pvm cow: a lower FIFO opened for writing is the lower one (not copied up)" || bad "pvm cow: a lower FIFO" "$(grep ^fifo "$x")" "$(ls -la "$work/x-layer-pvm")"

# ---- tar x into the cow: the fast path's opens and futimens (pvm/accel.c) -------------------------
# Into a new directory (only the layer has it: the fast path opens and stamps the files itself)
# and into one the lower tree has (merged: every open is the monitor's). Same tree either way, in
# the layer, the lower tree untouched; a directory the lower tree gains meanwhile is merged at once.
make_lower "$work/t-low"
mkdir -p "$work/t-src/a/b" && for i in $(seq 300); do echo "file $i" > "$work/t-src/a/b/f$i"; done
chmod 640 "$work/t-src/a/b/f3" && touch -d @981158400 "$work/t-src/a/b/f7"
tar -C "$work/t-src" -cf "$work/t.tar" a
t_tree() { (cd "$work/t-low" && find . -mindepth 1 ! -path ./late ! -path './late/*' -printf '%p %y %s %m %T@\n' | sort | md5sum); }
t_before=$(t_tree)
t_view() {  # STATS CMD
  local stats=$1; shift
  "$DENY" env VU_PVM_STATS=1 "$VU" run --net host --cow "$work/t-layer:$work/t-low" --setenv T="$work/t-low" --setenv TAR="$work/t.tar" \
    --setenv W="$work" -- sh -c "$1" 2> "$stats"
}
t_view "$work/t-stats-new" 'mkdir "$T/new" && tar xf "$TAR" -C "$T/new"'
expect "pvm cow: tar x into a new directory runs" 0 $? "$(grep -v '^vu: pvm' "$work/t-stats-new" | head -5)"
t_view "$work/t-stats-d" 'tar xf "$TAR" -C "$T/d"'
expect "pvm cow: tar x into a merged directory runs" 0 $? "$(grep -v '^vu: pvm' "$work/t-stats-d" | head -5)"
mkfifo "$work/t-ready" "$work/t-go"
t_view "$work/t-stats-late" 'set -u; for d in new d; do (cd "$T/$d/a/b" && stat -c "%n %s %a %Y" f3 f7 && cat f* | md5sum && ls | wc -l); done
mkdir "$T/late" && echo > "$W/t-ready" && read -r _ < "$W/t-go" && cd "$T/late" && cat x && ls' > "$work/t-out" &
t_pid=$!
timeout 120 sh -c 'read -r _ < "$1"' _ "$work/t-ready"  # the view made late (bounded: a failed view never opens it)
mkdir "$work/t-low/late" && echo lower-late > "$work/t-low/late/x"
timeout 20 sh -c 'echo go > "$1"' _ "$work/t-go"
wait $t_pid
expect "pvm cow: the extracted trees read back" 0 $? "$(head -c 600 "$work/t-out")" "$(grep -v '^vu: pvm' "$work/t-stats-late" | head -5)"
rm -r "$work/t-low/late"
t_want="$(cd "$work/t-src/a/b" && stat -c "%n %s %a %Y" f3 f7)
$(cd "$work/t-src/a/b" && cat f* | md5sum)
300"
[ "$(sed -n 1,4p "$work/t-out")" = "$t_want" ] && ok "pvm cow: tar x into a new directory (fast path): sizes, modes, times, data" \
  || bad "pvm cow: tar x into a new directory" "$(sed -n 1,4p "$work/t-out")" "want: $t_want"
[ "$(sed -n 5,8p "$work/t-out")" = "$t_want" ] && ok "pvm cow: tar x into a merged directory (the monitor's)" \
  || bad "pvm cow: tar x into a merged directory" "$(sed -n 5,8p "$work/t-out")" "want: $t_want"
[ "$(sed -n 9,10p "$work/t-out" | tr '\n' ' ')" = "lower-late x " ] && ok "pvm cow: a directory the lower tree gains is merged at once" \
  || bad "pvm cow: a directory the lower tree gains meanwhile" "$(sed -n 9,12p "$work/t-out")"
[ -f "$work/t-layer/new/a/b/f300" ] && [ -f "$work/t-layer/d/a/b/f300" ] && ok "pvm cow: tar x lands in the layer" \
  || bad "pvm cow: tar x lands in the layer" "$(ls -R "$work/t-layer" | head)"
[ "$t_before" = "$(t_tree)" ] && ok "pvm cow: tar x leaves the lower tree untouched" \
  || bad "pvm cow: tar x leaves the lower tree untouched" "$(cd "$work/t-low" && find . | sort | head)"
# With the fast path (the library next to vu) the new directory's 300 opens never reach the
# monitor, the merged one's do; futimens of the files (the layer's, both times) never does.
# (What still traps is the programs' start: ld.so's opens, some dozens an exec.)
t_count() { awk -v c="$2" '$3 == "notified" && $4 == c { print $5 }' "$1" | grep . || echo 0; }
t_opens=$(t_count "$work/t-stats-new" openat) t_opens_d=$(t_count "$work/t-stats-d" openat)
t_times=$(t_count "$work/t-stats-new" utimensat) t_times_d=$(t_count "$work/t-stats-d" utimensat)
if [ ! -e "$(dirname "$VU")/libvu-pvm-accel.so" ]; then skipped "pvm cow: the fast path's share" "no libvu-pvm-accel.so next to vu"
elif [ "$t_opens" -lt 300 ] && [ $((t_opens_d - t_opens)) -ge 250 ] && [ "$t_times" -lt 60 ] && [ "$t_times_d" -lt 60 ]; then
  ok "pvm cow: tar x of 300 files opens and stamps in process (trapped: openat $t_opens new, $t_opens_d merged; utimensat $t_times, $t_times_d)"
else bad "pvm cow: the fast path's share of tar x" "trapped: openat $t_opens new (want < 300), $t_opens_d merged (want 250 more); utimensat $t_times, $t_times_d (want < 60)" \
  "$(grep 'vu: pvm' "$work/t-stats-new" | head -8)"; fi

# ---- one layer format: pvm writes, ns reads, and the reverse -------------------------------------
write_cmd="cd \$T && rm g && rm -r e && mkdir e && echo 2 > e/new && echo more >> d/f"
read_cmd="cd \$T && ls -A . e && cat d/f"
want=".: d e gone link mv ro  e: new hello more "
for impl in "${impls[@]}"; do
  for pair in "pvm $impl" "$impl pvm"; do
    set -- $pair
    make_lower "$work/i-low"
    rm -rf "$work/i-layer"
    run_side() {  # pvm|fuse|kernel CMD
      if [ "$1" = pvm ]; then "$DENY" "$VU" run --net host --cow "$work/i-layer:$work/i-low" --setenv T="$work/i-low" -- sh -c "$2"
      else "$VU" run --backend=ns --net none --cow "$work/i-layer:$work/i-low:$1" --setenv T="$work/i-low" -- sh -c "$2"; fi
    }
    run_side "$1" "$write_cmd" 2>"$work/stderr"
    got=$(run_side "$2" "$read_cmd" 2>&1 | tr '\n' ' ')
    [ "$got" = "$want" ] && ok "a layer written by $1 is read by $2" || bad "a layer written by $1 is read by $2" "got:  $got" "want: $want" "$(cat "$work/stderr")"
  done
done
[ ${#impls[@]} = 0 ] && skipped "layer interop" "no ns --cow here"

# ---- bad input -----------------------------------------------------------------------------------
echo f > "$work/file"
check_err "pvm --cow onto a file" 2 'is not a directory' "$DENY" "$VU" run --net host --cow "$work/l2:$work/file" -- true
check_err "pvm --cow LAYER:/" 125 'copy-on-write root needs the ns backend' "$DENY" "$VU" run --net host --cow "$work/l3:/" -- true
mkdir -p "$work/ov"
check_err "pvm --cow with the layer inside the target" 2 'overlap' "$DENY" "$VU" run --net host --cow "$work/ov/layer:$work/ov" -- true
check_err "pvm --fuse of a program that exits at once: a clear error" 125 'exited before serving its filesystem' "$DENY" "$VU" run --fuse true /mnt -- true
[ ! -e "$work/l2" ] && [ ! -e "$work/l3" ] && [ ! -e "$work/ov/layer" ] && ok "bad input creates no layer" || bad "bad input creates no layer" "$(ls -R "$work/ov")"

summary
