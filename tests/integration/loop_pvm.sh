#!/usr/bin/env bash
# loop_pvm.sh VU DENY_USERNS DENY_CONTAINER DENY_USERNS_HOST LOOP_PROBE — the pvm backend under
# loops (the developers' guide: starts under timeout, parallel views, kill -9 of each process of
# a view, a full disk, hostile input; count hangs and leftovers). integration.lifetime has the
# kill -9-of-vu loops of both backends; this suite is pvm's, with its filesystems and networks:
#   starts    every kind of pvm view (default network, --net none, -p, --cow, --bind/--tmpfs,
#             --mount image: in environment A (a container: deny-container, and VU_PVM_FUSE=monitor)
#             and B (deny-userns-host, setuid fusermount3), auto under deny-userns), each under
#             timeout: hangs, failures, and after each the leftovers (processes of the test
#             user, FUSE mounts, vu's files in /tmp, /dev/shm and $XDG_RUNTIME_DIR)
#   parallel  PAR views at once doing real work: tar x into a --cow directory (read back and
#             compared), TCP and UDP echo over the view's loopback (loop-probe echo: sendmsg with
#             iovecs and names), tar x into an ext4 image in environment B
#   kill -9   of each process of a view at a random moment: vu, the command, its child, the FUSE
#             program (A and B), B's unmount watcher, all of them at once (pkill -9 -u: the next
#             view unmounts what the killed watchers left) — while the view copies files up: no hang,
#             no leftover, and the layer holds no half-copied file under its final name
#   full disk a --cow layer on a 1 MiB tmpfs (mounted here, as root): ENOSPC to the view, the
#             lower tree untouched, no partial copy-up in the layer, vu exits with the view's status
#   hostile   loop-probe hostile (bad pointers and lengths on the trapped calls) in --cow,
#             --bind, A and B views: it runs to its end, vu neither crashes nor hangs, and no call
#             succeeds in the view that fails natively
# LOOPS scales the counts: unset (CI, about a minute on 2 cores), a number N (N times CI's), or
# "large" (10: hundreds of starts). Root-run (environment B's filter and the small tmpfs need
# root); every view runs as the test user (VU_TEST_USER).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
case ${LOOPS:-1} in large) N=10 ;; *[!0-9]*|'') echo "LOOPS: a number or 'large'"; exit 2 ;; *) N=${LOOPS:-1} ;; esac
root_run_setup "environment B's filter and the full-disk tmpfs" "fuse2fs mkfs.ext4 fusermount3 tar" "$@"
PROBE=$bin/$(basename "$5")
xdg=/run/user/$uid made_xdg=""
if [ ! -d "$xdg" ]; then mkdir -p "$xdg" && chown "$user" "$xdg" && chmod 700 "$xdg" && made_xdg=1; fi
trap 'umount "$work/small" 2>/dev/null; [ -n "$made_xdg" ] && rm -rf "$xdg"; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
VIEW_ENV+=(XDG_RUNTIME_DIR="$xdg")
# Every view runs under timeout (TO, 60 s); a hang is a run that took that long (the status
# cannot tell: 137 is also a command killed by SIGKILL).
TO=(timeout -s KILL 60)
hung() { [ $(($SECONDS - $1)) -ge 59 ]; }

# The kinds of pvm view. run_kind K CMD…: runs CMD in a view of kind K (bounded: 60 s).
kinds=(default none port cow bind-tmpfs A-container A-monitor B auto-deny-userns)
W=$work/fx
as_user mkdir -p "$W/src/sub" "$W/tree" "$W/low"
as_user sh -c "cd $W/src && echo in-image > a && seq 1 20000 > sub/n && truncate -s 32M $W/disk.img && mkfs.ext4 -q -d $W/src $W/disk.img"
as_user sh -c "cd $W/low && for i in \$(seq 1 12); do head -c \$((i * 40000)) /dev/urandom > f\$i; done && mkdir -p d/e && echo deep > d/e/x"
as_user sh -c "mkdir -p $W/tarsrc && cd $W/tarsrc && for i in \$(seq 1 60); do mkdir -p d\$((i % 7)) && seq 1 \$((i * 50)) > d\$((i % 7))/f\$i; done && tar cf $W/t.tar ."
run_kind() {
  local k=$1; shift
  case $k in
    default) as_user "${TO[@]}" "$VU" run --backend=pvm -- "$@" ;;
    none) as_user "${TO[@]}" "$VU" run --backend=pvm --net none -- "$@" ;;
    port) as_user "${TO[@]}" "$VU" run --backend=pvm -p "127.0.0.1:$((20000 + RANDOM % 20000)):8080" -- "$@" ;;
    cow) as_user "${TO[@]}" "$VU" run --backend=pvm --cow "$W/layer:$W/low" -- "$@" ;;
    bind-tmpfs) as_user "${TO[@]}" "$VU" run --backend=pvm --net none --bind "$W/tree:/mnt" --tmpfs /vu-scratch -- "$@" ;;
    A-container) "${TO[@]}" "$bin/deny-container" "$user" "${VIEW_ENV[@]}" "$VU" run --net host --mount "image:$W/disk.img:/mnt" --cow "$W/layer:$W/low" -- "$@" ;;
    A-monitor) as_user VU_PVM_FUSE=monitor "${TO[@]}" "$bin/deny-userns" "$VU" run --mount "image:$W/disk.img:/mnt" -- "$@" ;;
    B) "${TO[@]}" "$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host --mount "image:${IMG:-$W/disk.img}:/mnt" --cow "$W/layerB:$W/low" -- "$@" ;;
    auto-deny-userns) as_user "${TO[@]}" "$bin/deny-userns" "$VU" run --net none --cow "$W/layer2:$W/low" --tmpfs /vu-scratch -- "$@" ;;
  esac
}
# What each kind's command checks (its output must be "ok").
probe_of() {
  case $1 in
    A-*|B) echo 'test "$(cat /mnt/a)" = in-image && echo ok' ;;
    cow|auto-*) echo "test \"\$(cat $W/low/d/e/x)\" = deep && echo ok" ;;
    bind-tmpfs) echo 'touch /vu-scratch/t && test -d /mnt && echo ok' ;;
    *) echo 'echo ok' ;;
  esac
}

# Leftovers: processes of the test user, FUSE mounts beyond those there at the start, and vu's
# files in /tmp, /dev/shm and $XDG_RUNTIME_DIR beyond the start's.
# (Only the test user's FUSE mounts: another user's run on the machine is not this one's.)
files() { find /tmp /dev/shm "$xdg" -mindepth 1 -maxdepth 1 -user "$user" ! -path "$work" 2>/dev/null | sort; }
base_mounts=$(fuse_left)
base_files=$(files)
# leftovers: prints what is left (empty: nothing), after a bounded grace period (2 s) for
# processes and mounts that are on their way out.
leftovers() {
  local p m f
  for _ in $(seq 40); do
    p=$(pgrep -u "$user" -a || true)
    m=$(fuse_left)
    [ -z "$p" ] && [ "$m" = "$base_mounts" ] && break
    sleep 0.05
  done
  f=$(comm -13 <(echo "$base_files") <(files))
  [ -n "$p" ] && echo "processes: $p"
  [ "$m" != "$base_mounts" ] && echo "mounts: $(grep ' - fuse' /proc/self/mountinfo | grep "user_id=$uid,")"
  [ -n "$f" ] && echo "files: $f"
  return 0
}
# clean: after a failure, so the next check starts from nothing.
clean() {
  pkill -KILL -u "$user" 2>/dev/null
  for _ in $(seq 20); do pgrep -u "$user" >/dev/null || break; sleep 0.05; done
  grep ' - fuse' /proc/self/mountinfo | grep -F "$W" | awk '{print $5}' | while read -r mp; do umount -l "$mp"; done
  comm -13 <(echo "$base_files") <(files) | while read -r f; do rm -rf "$f"; done
}

# ---- starts ----------------------------------------------------------------------------------
declare -A hangs fails lefts
starts=0
for round in $(seq $((3 * N))); do
  for k in "${kinds[@]}"; do
    t0=$SECONDS
    out=$(run_kind "$k" sh -c "$(probe_of "$k")" 2>"$work/err"); rc=$?
    starts=$((starts + 1))
    if hung $t0; then hangs[$k]=$((${hangs[$k]:-0} + 1)); echo "# hang: $k (round $round)"
    elif [ $rc != 0 ] || [ "$out" != ok ]; then fails[$k]=$((${fails[$k]:-0} + 1)); echo "# failed: $k (round $round): status $rc, $out $(head -c 300 "$work/err")"; fi
    left=$(leftovers)
    if [ -n "$left" ]; then lefts[$k]=$((${lefts[$k]:-0} + 1)); echo "# leftovers: $k (round $round): $left"; clean; fi
  done
done
for k in "${kinds[@]}"; do
  got="hangs ${hangs[$k]:-0} failures ${fails[$k]:-0} leftovers ${lefts[$k]:-0}"
  expect "$((3 * N)) starts of a $k view: $got" "hangs 0 failures 0 leftovers 0" "$got"
done
echo "# starts: $starts"

# ---- parallel views doing real work ----------------------------------------------------------
par=$((N > 1 ? 8 : 4))
# work K I: the I-th view's job (K: its kind); prints "ok I" when the result is right.
work_tar='d=$1; mkdir -p "$d/x$2" && tar xf "$3" -C "$d/x$2" && (cd "$d/x$2" && find . -type f | sort | xargs cat | cksum) > "$d/sum$2" && test "$(cat "$d/sum$2")" = "$4" && echo ok $2'
want_sum=$(cd "$W/tarsrc" && find . -type f | sort | xargs cat | cksum)
pfail=0 pruns=0
for round in $(seq "$N"); do
  as_user rm -rf "$W/layer" "$W/layerB" "$W/layer2"
  for i in $(seq "$par"); do
    case $((i % 4)) in
      0) run_kind cow sh -c "$work_tar" x "$W/low" "$i" "$W/t.tar" "$want_sum" ;;
      1) run_kind default "$PROBE" echo 300 && echo "ok $i" ;;
      2) as_user cp "$W/disk.img" "$W/disk$i.img"  # one writer per image, as natively
         IMG=$W/disk$i.img run_kind B sh -c "$work_tar" x /mnt/sub "$i" "$W/t.tar" "$want_sum" ;;
      3) run_kind none "$PROBE" echo 300 && echo "ok $i" ;;
    esac > "$work/par$i" 2>&1 &
  done
  wait
  for i in $(seq "$par"); do
    pruns=$((pruns + 1))
    grep -qx "ok $i" "$work/par$i" || { pfail=$((pfail + 1)); echo "# parallel view $i (round $round): $(head -c 400 "$work/par$i")"; }
  done
  # The tar x into the --cow directory landed in the layer, whole.
  for i in $(seq 4 4 "$par"); do
    [ "$(cat "$W/layer/x$i/../sum$i" 2>/dev/null)" = "$want_sum" ] || { pfail=$((pfail + 1)); echo "# parallel view $i: the layer lacks its files"; }
  done
done
expect "$pruns parallel views ($par at once: tar x into --cow and an ext4 image in B, TCP+UDP echo): all right" 0 $pfail
left=$(leftovers)
[ -z "$left" ] && ok "parallel views: nothing left" || { bad "parallel views: leftovers" "$left"; clean; }
as_user sh -c "rm -rf $W/layer $W/layerB $W/layer2"
# The image is fresh for what follows.
as_user sh -c "rm -f $W/disk.img && truncate -s 32M $W/disk.img && mkfs.ext4 -q -d $W/src $W/disk.img"

# ---- kill -9 of each process of a view ---------------------------------------------------------
# The view copies files up (appends a line to each lower file, over and over) and lists the
# image; one of its processes is killed at a random moment.
copyup='touch "$1"; sleep 1000 & while :; do for f in '"$W"'/low/f*; do echo more >> "$f"; done; cat /mnt/a >/dev/null 2>&1; done'
# pid_of TARGET VUPID — the pid of TARGET among the view's processes.
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
pid_of() {
  local t=$1 v=$2 p
  case $t in
    vu) echo "$v" ;;
    command) for p in $(descendants "$v"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = sh ] && grep -q copyup "/proc/$p/cmdline" 2>/dev/null && { echo "$p"; return; }; done ;;
    child) for p in $(descendants "$v"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && { echo "$p"; return; }; done ;;
    fuse) for p in $(descendants "$v"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = fuse2fs ] && { echo "$p"; return; }; done ;;
    watcher) for p in $(descendants "$v"); do grep -q fusermount3 "/proc/$p/cmdline" 2>/dev/null && { echo "$p"; return; }; done ;;
    all) echo "$v" ;;  # every process of the test user at once (pkill -9 -u): vu and its watchers too
  esac
}
# consistent LAYER: every file of the layer that came from the lower tree begins with the
# lower file whole (a copy-up is never seen half done).
consistent() {
  local f bad=""
  for f in "$1"/f*; do
    [ -f "$f" ] || continue
    cmp -s -n "$(stat -c %s "$W/low/$(basename "$f")")" "$W/low/$(basename "$f")" "$f" || bad="$bad $(basename "$f")"
  done
  [ -z "$bad" ] || echo "half-copied:$bad"
}
kills=0 khangs=0 kleft=0 kbad=0 kmissing=0
for round in $(seq $((2 * N))); do
  for spec in vu:cow command:cow child:cow vu:A-container fuse:A-container command:A-container vu:B fuse:B watcher:B command:B all:B; do
    t=${spec%%:*} k=${spec#*:}
    layer=$W/layer; [ "$k" = B ] && layer=$W/layerB
    as_user rm -rf "$W/layer" "$W/layerB"
    rm -f "$work/ready"
    t0=$SECONDS
    # (not through run_kind's subshell: $! must be timeout's child chain we can walk)
    run_kind "$k" sh -c "$copyup" copyup "$work/ready" >/dev/null 2>"$work/kerr" &
    bg=$!
    for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.02; done
    sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
    v=$(for p in $(descendants $bg); do [ "$(cat /proc/$p/comm 2>/dev/null)" = vu ] && echo "$p"; done | head -1)
    target=""
    [ -n "$v" ] && target=$(pid_of "$t" "$v")
    if [ -z "$target" ]; then
      kmissing=$((kmissing + 1)); echo "# kill -9 $t of a $k view: no such process (vu ${v:-none}; $(head -c 300 "$work/kerr"))"
      kill -KILL "$v" 2>/dev/null; wait $bg 2>/dev/null; clean; continue
    fi
    if [ "$t" = all ]; then pkill -KILL -u "$user"; else kill -KILL "$target"; fi
    kills=$((kills + 1))
    # vu ends by itself when it or the command is killed; when the command's child, the FUSE
    # program (vu names it, the view goes on) or the watcher is, the loop goes on: stop it then.
    if [ "$t" = child ] || [ "$t" = fuse ] || [ "$t" = watcher ]; then
      sleep 0.2
      c=$(pid_of command "$v"); [ -n "$c" ] && kill -KILL "$c" 2>/dev/null
    fi
    wait $bg
    hung $t0 && { khangs=$((khangs + 1)); echo "# kill -9 $t of a $k view: vu hung"; }
    # What a killed vu left on disk is removed by the next view (as integration.lifetime checks);
    # with its watchers killed too, the mount they did not take down as well (runtime/pvm_fuse.h).
    { [ "$t" = vu ] || [ "$t" = all ]; } && run_kind "$k" true 2>/dev/null
    left=$(leftovers)
    [ -n "$left" ] && { kleft=$((kleft + 1)); echo "# kill -9 $t of a $k view: $left"; clean; }
    c=$(consistent "$layer"); [ -n "$c" ] && { kbad=$((kbad + 1)); echo "# kill -9 $t of a $k view: $c"; }
  done
done
# kill -9 of vu at random moments of its start-up (the FUSE probe's trial mount, the mounts):
# what it left is removed by the next view of the kind, and nothing stays mounted or running.
# (Not under run_kind: $! must become vu itself — the filters exec it — to be killed within
# the 10-100 ms such a start takes; SIGKILL bounds it.)
for i in $(seq $((5 * N))); do
  for k in A-container B; do
    case $k in
      A-container) h=$bin/deny-container more=(--mount "image:$W/disk.img:/mnt" --cow "$W/layer:$W/low") ;;
      B) h=$bin/deny-userns-host more=(--mount "image:$W/disk.img:/mnt" --cow "$W/layerB:$W/low") ;;
    esac
    "$h" "$user" "${VIEW_ENV[@]}" "$VU" run --net host "${more[@]}" -- true >/dev/null 2>&1 &
    p=$!
    sleep "0.0$((RANDOM % 6))$((RANDOM % 10))"
    kill -KILL $p 2>/dev/null && kills=$((kills + 1))
    wait $p 2>/dev/null
  done
done
for k in A-container B; do run_kind "$k" true >/dev/null 2>&1; done
left=$(leftovers)
[ -n "$left" ] && { kleft=$((kleft + 1)); echo "# kill -9 of vu during start-up (A, B): $left"; clean; }
expect "$kills kill -9 of vu/command/child/FUSE program/watcher (cow, A, B) and of vu at start-up: no hang" 0 $khangs
expect "...no leftover" 0 $kleft
expect "...no half-copied file in the layer" 0 $kbad
expect "...each process was found to kill" 0 $kmissing
[ "$(cat "$W/low/f3" | wc -c)" = 120000 ] && ok "kill -9: the lower tree is untouched" || bad "kill -9: the lower tree changed" "$(ls -l "$W/low")"

# ---- full disk ---------------------------------------------------------------------------------
mkdir -p "$work/small"
if mount -t tmpfs -o size=1m,mode=0755,uid="$uid" vu-loop-small "$work/small"; then
  sum=$(cd "$W/low" && cksum f12 f1)
  as_user sh -c "head -c 1500000 /dev/urandom > $W/low/big"
  out=$(as_user "${TO[@]}" "$VU" run --backend=pvm --cow "$work/small/layer:$W/low" -- sh -c "
    echo a >> $W/low/f1 && echo small-ok
    echo b >> $W/low/big || echo big-failed
    head -c 2000000 /dev/zero > $W/low/fill || echo fill-failed
    tail -c 2 $W/low/f1 | od -c | head -1 | tr -s ' ' ; tail -c 100 $W/low/big | cksum
    exit 3" 2>"$work/err"); rc=$?
  want="small-ok
big-failed
fill-failed
0000000 a \\n
$(tail -c 100 "$W/low/big" | cksum)"
  [ $rc = 3 ] && [ "$out" = "$want" ] && [ "$(grep -c 'No space left on device' "$work/err")" = 2 ] \
    && ok "full disk: copy-up and writes get ENOSPC, the view goes on, vu exits with its status" \
    || bad "full disk: ENOSPC in the view" "status $rc (want 3)" "out: $out" "want: $want" "stderr: $(head -c 400 "$work/err")"
  [ ! -e "$work/small/layer/big" ] && ok "full disk: no half-copied file in the layer" || bad "full disk: a half-copied file in the layer" "$(ls -l "$work/small/layer")"
  [ "$(cd "$W/low" && cksum f12 f1)" = "$sum" ] && [ ! -e "$W/low/fill" ] && ok "full disk: the lower tree is untouched" || bad "full disk: the lower tree changed"
  [ "$(tail -c 2 "$work/small/layer/f1")" = a ] && ok "full disk: what fitted is in the layer" || bad "full disk: the layer lacks f1" "$(ls -l "$work/small/layer")"
  # A copy-up into a layer with no room at all for its temporary file, in a loop.
  as_user sh -c "head -c 2000000 /dev/zero > $work/small/layer/pad" 2>/dev/null
  nf=0
  for i in $(seq $((5 * N))); do
    as_user "${TO[@]}" "$VU" run --backend=pvm --cow "$work/small/layer:$W/low" -- sh -c "echo x >> $W/low/f$((i % 11 + 2)) || exit 7" 2>"$work/err"
    rc=$?
    [ $rc = 7 ] && grep -q 'No space left on device' "$work/err" || { nf=$((nf + 1)); echo "# copy-up into a full layer: status $rc, $(head -c 200 "$work/err")"; }
  done
  expect "full disk: $((5 * N)) copy-ups into a full layer: ENOSPC, the view's status" 0 $nf
  [ -z "$(find "$work/small/layer" -name 'f[0-9]*' ! -name f1)" ] && ok "full disk: none of them left a file in the layer" \
    || bad "full disk: copy-ups left files in the full layer" "$(ls -l "$work/small/layer")"
  left=$(leftovers)
  [ -z "$left" ] && ok "full disk: nothing left" || { bad "full disk: leftovers" "$left"; clean; }
  as_user rm -f "$W/low/big"
  umount "$work/small"
else
  skipped "full disk" "cannot mount a tmpfs here"
fi

# ---- hostile input -----------------------------------------------------------------------------
as_user sh -c "mkdir -p $W/h && echo x > $W/h/x && ln -s x $W/h/sl && cd $W/h && $PROBE hostile $W/h" > "$work/native" 2>&1
hrun=0
for k in cow bind-tmpfs A-container B; do
  case $k in cow) d=$W/low ;; bind-tmpfs) d=/mnt ;; *) d=/mnt/sub ;; esac  # (the image's root is not the user's)
  for _ in $(seq "$N"); do
    as_user rm -rf "$W/layer" "$W/layerB"
    run_kind "$k" sh -c 'cd "$2" && echo x > x && ln -sf x sl && exec "$1" hostile "$2"' x "$PROBE" "$d" > "$work/h-$k" 2>"$work/h-$k.err"; rc=$?
    hrun=$((hrun + 1))
  done
  if [ $rc = 0 ] && [ "$(tail -1 "$work/h-$k")" = done ] && [ "$(wc -l < "$work/h-$k")" = "$(wc -l < "$work/native")" ]; then
    ok "hostile input in a $k view: every call returned, vu neither crashed nor hung"
  else bad "hostile input in a $k view" "status $rc" "last: $(tail -2 "$work/h-$k" | tr '\n' ' ')" "stderr: $(head -c 400 "$work/h-$k.err")"; fi
  # No call may succeed in the view that fails natively (the monitor would have done something
  # the kernel refuses).
  # (xattrs aside: on the image's FUSE mount any name is the program's to take, natively too.)
  more=$(join <(sort "$work/native") <(sort "$work/h-$k") | awk '$2 != "ok" && $3 == "ok" && $1 !~ /xattr/ {print $1 ": native " $2}')
  [ -z "$more" ] && ok "hostile input in a $k view: nothing succeeds that fails natively" \
    || bad "hostile input in a $k view: calls succeed that fail natively" "$more"
  # The same errno as natively, but for the known differences: pvm refuses mount(2) but FUSE's
  # (EPERM), openat2 (ENOSYS: callers fall back to openat), TCP Fast Open (EOPNOTSUPP); it checks
  # some arguments in another order than the kernel; a merged listing is given whole or not at
  # all; a sendmsg's data is read whole (EMSGSIZE above 1 MiB).
  # (xattrs: the image's filesystem is not the native run's.)
  known='^(mount-[^ ]*|umount2-[^ ]*|openat2-[^ ]*|[gs]etxattr-[^ ]*|sendto-fastopen|sendmsg-fastopen|sendto-all-flags|symlinkat-bad|getpeername-null|recvfrom-hole-len|accept-hole|getdents64-edge|sendmsg-iov-ssize-max) '
  differ=$(join <(sort "$work/native") <(sort "$work/h-$k") | awk '$2 != $3' | grep -vE "$known")
  [ -z "$differ" ] && ok "hostile input in a $k view: the errnos native gives, but the known differences" \
    || bad "hostile input in a $k view: errnos differ from native (call native pvm)" "$differ"
done
left=$(leftovers)
[ -z "$left" ] && ok "hostile input: nothing left" || { bad "hostile input: leftovers" "$left"; clean; }
echo "# totals: starts $starts, parallel views $pruns, kills $kills, hostile runs $hrun"
summary
