#!/usr/bin/env bash
# loop_views.sh VU DENY_USERNS DENY_CONTAINER DENY_USERNS_HOST — the views integration.loop_pvm
# does not loop over, under loops: pvm views on a VDE switch (vu-vstack), ping on pvm's slirp
# network (the stand-in, pvm/inet_echo.h), --net join: on pvm, --fuse in pvm environments A and B,
# the ns backend's --rootfs (its pid namespace and vu-init) and vu-cowfs. Every command under
# timeout; hangs and leftovers counted after each run (processes of the test user but the
# switch, FUSE mounts, vu's files in /tmp, /dev/shm and $XDG_RUNTIME_DIR, host ports of the user):
#   starts    VDE views (also right after vu returns: vu-vstack ended and reaped by vu), ping
#   kill -9   at a random moment, of each process of a view in turn: vu-vstack, vu (VDE pvm),
#             vu-net (ns), vu-init, vu and the command (ns --rootfs), vu-cowfs (ns --cow :fuse),
#             vu and the command (pvm --net join:)
#   hostile   VNLs that fail, or whose command never ends (cmd://sleep: bounded, nothing left)
#   --fuse    'fuse2fs IMG' DIR in A and B: mounted, written, written back
# LOOPS=N multiplies the counts (CI: 1, about a minute on 2 cores). Root-run (B's filter, the
# network namespace for join:, setpriv); every view runs as the test user (VU_TEST_USER).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
case ${LOOPS:-1} in *[!0-9]*|'') echo "LOOPS: a number"; exit 2 ;; *) N=${LOOPS:-1} ;; esac
root_run_setup "environment B's filter and a network namespace" "vde_switch fuse2fs mkfs.ext4 debugfs e2fsck busybox ip setpriv ss ping" "$@"
[ -x "$bin/vu-vstack" ] || { echo "SKIP: vu-vstack is not built"; exit 77; }
xdg=/run/user/$uid made_xdg=""
if [ ! -d "$xdg" ]; then mkdir -p "$xdg" && chown "$user" "$xdg" && chmod 700 "$xdg" && made_xdg=1; fi
NS=vu-loop-views-$$
swpid=""
trap '[ -n "$swpid" ] && kill "$swpid" 2>/dev/null; ip netns delete "$NS" 2>/dev/null; [ -n "$made_xdg" ] && rm -rf "$xdg"; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
VIEW_ENV+=(XDG_RUNTIME_DIR="$xdg")
TO=(timeout -s KILL 40)
W=$work/fx
as_user mkdir -p "$W/m" "$W/low" "$W/src" "$W/scratch"
as_user sh -c "cd $W/low && for i in 1 2 3 4 5 6; do head -c \$((i * 60000)) /dev/urandom > f\$i; done && cp f* $W/scratch/"
as_user sh -c "echo in-image > $W/src/a && truncate -s 16M $W/disk.img && mkfs.ext4 -q -E root_owner=$uid:$(id -g "$user") -d $W/src $W/disk.img"

low_sum=$(cat "$W"/low/f* | cksum)
# The switch, the test user's (its pid is spared by the counts).
as_user vde_switch -s "$W/sw" -p "$W/sw.pid" -d </dev/null >/dev/null 2>&1
for _ in $(seq 50); do [ -S "$W/sw/ctl" ] && [ -s "$W/sw.pid" ] && break; sleep 0.1; done
[ -S "$W/sw/ctl" ] || { echo "SKIP: vde_switch did not start"; exit 77; }
swpid=$(cat "$W/sw.pid")
VNL=vde://$W/sw

have_ns=1
as_user "${TO[@]}" "$VU" run --backend=ns --net none -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here: its loops are skipped"

# (Zombies aside: reaping them is init's — a slow init, as a container's, shows them a while.)
procs() { ps -u "$user" -o pid=,stat=,args= | awk -v sw="$swpid" '$1 != sw && $2 !~ /^Z/'; }
files() { find /tmp /dev/shm "$xdg" -mindepth 1 -maxdepth 1 -user "$user" ! -path "$work" 2>/dev/null | sort; }
ports() { ss -tulnHe 2>/dev/null | grep -c "uid:$uid " ; }
base_files=$(files) base_mounts=$(fuse_left) base_ports=$(ports)
# leftovers [now]: what is left after a bounded grace period (2 s) for processes on their way
# out (vu-net ends after vu, by design); "now": no grace, right after vu returned.
leftovers() {
  local p m
  for _ in $(seq 40); do
    p=$(procs); m=$(fuse_left)
    { [ -z "$p" ] && [ "$m" = "$base_mounts" ]; } || [ "${1:-}" = now ] && break
    sleep 0.05
  done
  [ -n "$p" ] && echo "processes: $p"
  [ "$m" != "$base_mounts" ] && echo "mounts: $(grep ' - fuse' /proc/self/mountinfo | grep "user_id=$uid,")"
  local f; f=$(comm -13 <(echo "$base_files") <(files))
  [ -n "$f" ] && echo "files: $f"
  [ "$(ports)" != "$base_ports" ] && echo "ports: $(ss -tulnHe | grep "uid:$uid ")"
  return 0
}
clean() {
  local p
  for p in $(procs | awk '{print $1}'); do kill -KILL "$p" 2>/dev/null; done
  for _ in $(seq 20); do [ -z "$(procs)" ] && break; sleep 0.05; done
  grep ' - fuse' /proc/self/mountinfo | grep "user_id=$uid," | awk '{print $5}' | while read -r mp; do umount -l "$mp"; done
  comm -13 <(echo "$base_files") <(files) | while read -r f; do rm -rf "$f"; done
}
hung() { [ $(($SECONDS - $1)) -ge 39 ]; }

# ---- starts ------------------------------------------------------------------------------------
# A VDE view: vu-vstack has ended and vu has reaped it when vu returns (it was left to linger as
# an orphan when the monitor's state outlived it in a detached worker).
h=0 f=0 l=0 ln=0
for i in $(seq $((10 * N))); do
  t0=$SECONDS
  as_user "${TO[@]}" "$VU" run --backend=pvm --net "$VNL" --ip "10.0.0.$((i % 200 + 2))/24" -- \
    sh -c 'ip -o -4 addr show dev vde0 | grep -q "inet 10.0.0"' 2>"$work/err"; rc=$?
  hung $t0 && h=$((h + 1))
  [ $rc = 0 ] || { f=$((f + 1)); echo "# VDE view: status $rc: $(head -c 300 "$work/err")"; }
  # (zombies too: vu reaps it)
  [ -n "$(pgrep -u "$user" -x vu-vstack)" ] && { ln=$((ln + 1)); echo "# VDE view: right after vu: $(pgrep -u "$user" -a -x vu-vstack | tr '\n' ';')"; }
  left=$(leftovers); [ -n "$left" ] && { l=$((l + 1)); echo "# VDE view: $left"; clean; }
done
expect "$((10 * N)) starts of a pvm view on a VDE switch: no hang, failure or leftover" "0 0 0" "$h $f $l"
expect "...and no vu-vstack left when vu returns (waited for by vu)" 0 $ln
# Ping on pvm's slirp network: the view's own address (the stand-in's loopback answer), the
# gateway (the monitor's answer).
h=0 f=0 l=0
for i in $(seq $((5 * N))); do
  for to in 10.0.2.100 10.0.2.2; do
    t0=$SECONDS
    as_user "${TO[@]}" "$VU" run --backend=pvm -- ping -c 2 -i 0.2 -W 3 "$to" >"$work/out" 2>&1; rc=$?
    hung $t0 && h=$((h + 1))
    [ $rc = 0 ] || { f=$((f + 1)); echo "# ping $to: status $rc: $(head -c 300 "$work/out")"; }
    left=$(leftovers); [ -n "$left" ] && { l=$((l + 1)); echo "# ping $to: $left"; clean; }
  done
done
expect "$((10 * N)) pings in pvm views (own address, gateway): no hang, failure or leftover" "0 0 0" "$h $f $l"

# ---- kill -9 of each process of a view -----------------------------------------------------------
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
# (It appends to the files of $2: the --cow view's lower tree, copied up; the others' scratch.)
busy='touch "$1"; sleep 1000 & while :; do ls / >/dev/null; for f in "$2"/f*; do echo x >> "$f"; done; done'
# killrun HOW TARGET VU-ARGS…: a view (HOW: user, or cap: the user with CAP_SYS_ADMIN, as cado
# gives it) doing busy work; TARGET (a process name) killed at a random moment.
as_cap() {
  setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=+sys_admin --ambient-caps=+sys_admin -- \
    "${VIEW_ENV[@]}" "$@"
}
kills=0 kh=0 kl=0 km=0
killrun() {
  local how=$1 t=$2 p target="" bg t0 dir=$W/scratch; shift 2
  case " $* " in *" --cow "*) dir=$W/low ;; esac
  rm -f "$work/ready"
  t0=$SECONDS
  case $how in
    user) as_user "${TO[@]}" "$VU" run "$@" -- sh -c "$busy" busy "$work/ready" "$dir" >/dev/null 2>"$work/kerr" & ;;
    cap) as_cap "${TO[@]}" "$VU" run "$@" -- sh -c "$busy" busy "$work/ready" "$dir" >/dev/null 2>"$work/kerr" & ;;
  esac
  bg=$!
  for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.02; done
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  for p in $(descendants $bg); do
    case $t in
      command) grep -q busy "/proc/$p/cmdline" 2>/dev/null && [ "$(cat /proc/$p/comm 2>/dev/null)" = sh ] && { target=$p; break; } ;;
      *) [ "$(cat /proc/$p/comm 2>/dev/null)" = "$t" ] && { target=$p; break; } ;;
    esac
  done
  if [ -z "$target" ]; then
    km=$((km + 1)); echo "# kill -9 $t [$*]: no such process ($(head -c 300 "$work/kerr"))"
  else
    kill -KILL "$target"; kills=$((kills + 1))
  fi
  # The view goes on when a helper is killed (vu says so): its command is ended then.
  sleep 0.3
  for p in $(descendants $bg); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = sh ] && grep -q busy "/proc/$p/cmdline" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  wait $bg
  hung $t0 && { kh=$((kh + 1)); echo "# kill -9 $t [$*]: hang"; }
  # What a killed vu left on disk is the next view's to remove (README: Processes).
  [ "$t" = vu ] && as_user "${TO[@]}" "$VU" run "$@" -- true >/dev/null 2>&1
  local left; left=$(leftovers)
  [ -n "$left" ] && { kl=$((kl + 1)); echo "# kill -9 $t [$*]: $left"; clean; }
  return 0
}
ip netns add "$NS" 2>/dev/null && ip -n "$NS" link set lo up || NS=""
for round in $(seq "$N"); do
  killrun user vu-vstack --backend=pvm --net "$VNL" --ip 10.0.0.7/24
  killrun user vu --backend=pvm --net "$VNL" --ip 10.0.0.8/24
  if [ -n "$NS" ]; then
    killrun cap vu --backend=pvm --net join:"$NS"
    killrun cap command --backend=pvm --net join:"$NS"
  fi
  if [ $have_ns = 1 ]; then
    as_user mkdir -p "$W/tree/bin" "$W/tree/tmp" "$W/tree/proc" "$W/tree/dev" "$W/tree/etc" "$W/tree/sys" "$W/tree$W"
    as_user sh -c "cp $(command -v busybox) $W/tree/bin/ && for a in sh ls sleep touch cat echo true; do ln -sf busybox $W/tree/bin/\$a; done"
    R=(--backend=ns --net none --rootfs "$W/tree" --bind "$work:$work")
    killrun user vu-net --backend=ns
    killrun user vu-init "${R[@]}"
    killrun user vu "${R[@]}"
    killrun user command "${R[@]}"
    killrun user vu-cowfs --backend=ns --net none --cow "$W/layer:$W/low:fuse"
  fi
done
expect "$kills kill -9 of vu-vstack, vu, vu-net, vu-init, vu-cowfs, the command (VDE, join:, --rootfs, --cow): no hang" 0 $kh
expect "...no leftover" 0 $kl
expect "...each process was found to kill" 0 $km
bad_copy=""
for f in "$W"/layer/f*; do
  [ -f "$f" ] || continue
  cmp -s -n "$(stat -c %s "$W/low/$(basename "$f")")" "$W/low/$(basename "$f")" "$f" || bad_copy="$bad_copy $(basename "$f")"
done
[ "$(cat "$W"/low/f* | cksum)" = "$low_sum" ] && ok "kill -9 of vu-cowfs: the lower tree is untouched" || bad "kill -9 of vu-cowfs: the lower tree changed"
[ -z "$bad_copy" ] && ok "kill -9 of vu-cowfs: no half-copied file in the layer" || bad "kill -9 of vu-cowfs: half-copied files" "$bad_copy"

# ---- hostile VNLs --------------------------------------------------------------------------------
# Each fails with vu's message and status, or runs; none hangs or leaves anything. cmd://sleep:
# a plugin's command that never ends (vde_close waited for it: vu-net and vu-vstack lived on, and
# `$(vu run … 2>&1)` with them) is ended with its helper.
as_user touch "$W/notsock"
hh=0 hl=0 hs=0 hruns=0 pvm_only=0
long=$(head -c 5000 /dev/zero | tr '\0' a)
# (ns: only those its helper, vu-net, opens; the rest fail in the parsing both share.)
for vnl in 'cmd://sleep 60' vde:///nonexistent 'cmd://false' "switch://$W/notsock" "vde://$W/low" "hub://$W/hub1" \
           vde:// 'bogus://x' "vde://$long" 'slirp:bogus' 'join:' 'join:../../etc' "join:$long"; do
  [ "$vnl" = vde:// ] && pvm_only=1
  for backend in pvm ns; do
    [ $backend = ns ] && { [ $have_ns = 0 ] || [ $pvm_only = 1 ]; } && break
    t0=$SECONDS
    out=$(as_user "${TO[@]}" "$VU" run --backend=$backend --net "$vnl" -- echo ran 2>&1); rc=$?
    hruns=$((hruns + 1))
    hung $t0 && { hh=$((hh + 1)); echo "# --net ${vnl:0:40} ($backend): hang"; }
    case $rc in 0|2|125) ;; *) hs=$((hs + 1)); echo "# --net ${vnl:0:40} ($backend): status $rc: ${out:0:300}" ;; esac
    left=$(leftovers); [ -n "$left" ] && { hl=$((hl + 1)); echo "# --net ${vnl:0:40} ($backend): $left"; clean; }
  done
done
expect "$hruns views with hostile VNLs: no hang, no status but 0/2/125, no leftover" "0 0 0" "$hh $hs $hl"

# ---- --fuse 'fuse2fs IMG' DIR in pvm environments A and B ---------------------------------------
# (A: the monitor serves a libfuse2 program through the shim also when --fuse runs it through
# sh -c; it was told to mount /dev/fd/3.) What the view wrote is in the image when vu returns.
for env in A B; do
  fl=0
  for i in $(seq $((2 * N))); do
    as_user cp "$W/disk.img" "$W/d.img"
    cmd=(sh -c "cat $W/m/a && head -c 2000000 /dev/urandom > $W/m/big && cksum < $W/m/big > $work/sum")
    case $env in
      A) as_user VU_PVM_FUSE=monitor "${TO[@]}" "$bin/deny-userns" "$VU" run --fuse "fuse2fs $W/d.img" "$W/m" -- "${cmd[@]}" ;;
      B) "${TO[@]}" "$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host --fuse "fuse2fs $W/d.img" "$W/m" -- "${cmd[@]}" ;;
    esac >"$work/out" 2>"$work/err"; rc=$?
    got=$(debugfs -R 'cat /big' "$W/d.img" 2>/dev/null | cksum)
    if [ $rc != 0 ] || [ "$(cat "$work/out")" != in-image ] || [ "$got" != "$(cat "$work/sum" 2>/dev/null)" ] || ! e2fsck -fn "$W/d.img" >/dev/null 2>&1; then
      fl=$((fl + 1)); echo "# --fuse fuse2fs in $env: status $rc, out $(head -c 100 "$work/out"), image $got, view $(cat "$work/sum" 2>/dev/null): $(head -c 300 "$work/err")"
    fi
    rm -f "$work/sum"
    left=$(leftovers); [ -n "$left" ] && { fl=$((fl + 1)); echo "# --fuse fuse2fs in $env: $left"; clean; }
  done
  expect "$((2 * N)) views --fuse 'fuse2fs IMG' DIR in pvm environment $env: mounted, written back, nothing left" 0 $fl
done
summary
