#!/usr/bin/env bash
# lifetime_test.sh VU DENY_USERNS — nothing of a view outlives its supervisor.
#
# vu is killed with SIGKILL (it cannot clean up) while its view runs processes that left the
# command's tree (background jobs, setsid, a nested user namespace), on each backend and kind of
# view; every one of them must be gone within a bounded time, and what the killed vu left on
# disk must be removed by the next run. Then the same at random moments of start-up, in a loop.
set -u
VU=$1
DENY=$2
here=$(dirname "$0")
. "$here/harness.sh" || exit 1
if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi

# survivors MARK — processes of ours whose command line carries MARK (a sleep duration).
survivors() { pgrep -u "$(id -u)" -f "sleep $1" || true; }

# gone_within MARK — waits up to 3 s for the processes marked MARK to disappear; prints the
# survivors' command lines when they do not.
gone_within() {
  local mark=$1
  for _ in $(seq 60); do
    [ -z "$(survivors "$mark")" ] && return 0
    sleep 0.05
  done
  pgrep -u "$(id -u)" -a -f "sleep $mark"
  return 1
}

# kill9 NAME MARK VU-ARGS… — starts a view whose command spreads processes out of its own
# tree, waits until they run, kills vu with SIGKILL, and checks none survives.
kill9() {
  local name=$1 mark=$2; shift 2
  rm -f "$work/ready"
  "$VU" run "$@" -- sh -c "sleep $mark & (setsid sleep $mark &); (sleep $mark &) ; \
    if command -v unshare >/dev/null && unshare -U true 2>/dev/null; then unshare -U sleep $mark & fi; \
    touch $work/ready; exec sleep $mark" >/dev/null 2>"$work/kill9.err" &
  local vu_pid=$!
  for _ in $(seq 200); do [ -e "$work/ready" ] && break; sleep 0.02; done
  if [ ! -e "$work/ready" ]; then
    kill -KILL $vu_pid 2>/dev/null; wait $vu_pid 2>/dev/null
    bad "$name: the view did not start" "$(head -c 400 "$work/kill9.err")"
    return
  fi
  sleep 0.1
  local before
  before=$(survivors "$mark" | wc -l)
  kill -KILL $vu_pid; wait $vu_pid 2>/dev/null
  if left=$(gone_within "$mark"); then ok "$name: kill -9 of vu leaves none of its $before processes"
  else bad "$name: processes outlived vu" "$left"; pkill -KILL -u "$(id -u)" -f "sleep $mark"; fi
}

# The watchdog holds the view's user namespace: namespace inode numbers are reused at once, and
# a number alone could name another namespace (whose processes the watchdog would kill) once
# the view's is freed.
rm -f "$work/viewns"
"$VU" run --net none -- sh -c "readlink /proc/self/ns/user > $work/viewns.t && mv $work/viewns.t $work/viewns; exec sleep 3141.8" \
  >/dev/null 2>&1 & vu_pid=$!
held=""
for _ in $(seq 100); do
  if [ -s "$work/viewns" ]; then
    wd=$(pgrep -u "$(id -u)" -P "$vu_pid" -x vu-watchdog)
    fds=$(for f in /proc/$wd/fd/*; do readlink "$f"; done 2>/dev/null | tr '\n' ' ')
    held=$(echo "$fds" | tr ' ' '\n' | grep -cFx "$(cat "$work/viewns")")
    [ "$held" = 1 ] && break
  fi
  sleep 0.02
done
pkill -u "$(id -u)" -f "sleep 3141.8"; wait $vu_pid 2>/dev/null
[ "$held" = 1 ] && ok "the watchdog holds the view's user namespace (its number cannot be reused)" \
  || bad "the watchdog holds the view's user namespace" "view: $(cat "$work/viewns" 2>/dev/null), watchdog ${wd:-?} holds: ${fds:-?}"

mkdir -p "$work/layer" "$work/layer2" "$work/tree"
kill9 "ns, --net none" 3141.1 --net none
kill9 "ns, default network (slirp)" 3141.2
kill9 "ns, --tmpfs and --bind" 3141.3 --net none --tmpfs /vu-scratch --bind "$work/tree:/mnt"
kill9 "ns, kernel --cow" 3141.4 --net none --cow "$work/layer:$work/tree"
kill9 "ns, --fuse (the keeper and its program)" 3141.9 --net none --cow "$work/layer2:$work/tree:fuse"
kill9 "pvm, no mounts (nothing trapped by ptrace)" 3141.5 --backend=pvm --net host
kill9 "pvm, with mounts" 3141.6 --backend=pvm --net host --tmpfs /vu-scratch
mkdir -p "$work/layer3"
kill9 "pvm, --cow (the monitor's)" 3141.61 --backend=pvm --net host --cow "$work/layer3:$work/tree"
kill9 "auto under a userns-denying filter (pvm)" 3141.7 --net host
# That last one ran vu under deny-userns only if we say so:
rm -f "$work/ready"
"$DENY" "$VU" run --net host -- sh -c "sleep 3141.8 & (setsid sleep 3141.8 &); touch $work/ready; exec sleep 3141.8" >/dev/null 2>&1 &
p=$!
for _ in $(seq 200); do [ -e "$work/ready" ] && break; sleep 0.02; done
sleep 0.1; kill -KILL $p; wait $p 2>/dev/null
if left=$(gone_within 3141.8); then ok "userns denied (auto picks pvm): kill -9 of vu leaves nothing"
else bad "userns denied: processes outlived vu" "$left"; pkill -KILL -u "$(id -u)" -f "sleep 3141.8"; fi

# What a killed pvm view left on disk (its tmpfs directory) is removed by the next one.
stale=$(find /dev/shm "${TMPDIR:-/tmp}" -maxdepth 1 -user "$(id -u)" -name 'vu-pvm.[0-9]*.*' 2>/dev/null)
if [ -n "$stale" ]; then
  "$VU" run --backend=pvm --net host --tmpfs /vu-scratch -- true
  still=$(for d in $stale; do [ -e "$d" ] && echo "$d"; done)
  if [ -z "$still" ]; then ok "pvm: the next view removes a killed view's tmpfs directory"
  else bad "pvm: a killed view's tmpfs directory stays" "$still"; fi
else
  bad "pvm: a killed view left no tmpfs directory to clean (the test expected one)" ""
fi

# kind_args I — sets args to the I-th of seven kinds of view (both backends, with and without
# mounts and network; pvm's own copy-on-write, its default network and -p), round-robin.
# (integration.loop_pvm loops pvm's FUSE environments, parallel views and kills mid-work.)
kind_args() {
  case $(($1 % 7)) in
    0) args=(--net none) ;;
    1) args=() ;;
    2) args=(--backend=pvm --net host) ;;
    3) args=(--backend=pvm --net host --tmpfs /vu-scratch) ;;
    4) args=(--backend=pvm --net none --cow "$work/layer4:$work/tree") ;;
    5) args=(--backend=pvm) ;;
    6) args=(--backend=pvm -p "127.0.0.1:$((20000 + RANDOM % 20000)):8080") ;;
  esac
}

# Kill at random moments of start-up and teardown, in a loop: no survivor.
left_total=0
for i in $(seq 40); do
  mark=3142.$i
  kind_args $i
  "$VU" run "${args[@]}" -- sh -c "sleep $mark & (setsid sleep $mark &); exec sleep $mark" >/dev/null 2>&1 &
  p=$!
  sleep "0.0$((RANDOM % 10))"
  kill -KILL $p 2>/dev/null
  wait $p 2>/dev/null
  gone_within "$mark" >/dev/null || { left_total=$((left_total + 1)); pkill -KILL -u "$(id -u)" -f "sleep $mark"; }
done
expect "40 kills at random moments of start-up (7 kinds of view): no survivors" 0 $left_total

# Starts under a bound: none hangs, none fails.
hangs=0 fails=0
for i in $(seq 100); do
  kind_args $i
  timeout -s KILL 20 "$VU" run "${args[@]}" -- true 2>>"$work/starts.err"; rc=$?
  case $rc in 0) ;; 124|137) hangs=$((hangs + 1)) ;; *) fails=$((fails + 1)) ;; esac
done
expect "100 starts on both backends (7 kinds of view): no hang" 0 $hangs
expect "... and no failure" 0 $fails "$(sort "$work/starts.err" | uniq -c | head -5)"

# The watchdog of a view that ended normally is gone with vu, and never holds vu's output.
out=$(timeout 10 "$VU" run --net none -- echo hi); rc=$?
expect "x=\$(vu run …) returns at once (the watchdog holds no pipe of vu's)" "0 hi" "$rc $out"
live_watchdogs() { ps -u "$(id -u)" -o stat=,pid=,comm= | awk '$3 == "vu-watchdog" && $1 !~ /^Z/'; }
if [ -n "$(live_watchdogs)" ]; then bad "a watchdog outlived its view" "$(live_watchdogs)"
else ok "no watchdog outlives a view that ended"; fi

# kill -9 of the watchdog: vu still ends with the command's status (it died of SIGPIPE, 141,
# writing to the dead watchdog's pipe).
timeout 20 "$VU" run --net none -- sh -c 'sleep 1; exit 3' >/dev/null 2>&1 & vu_pid=$!
wd=""
for _ in $(seq 100); do
  vu=$(pgrep -u "$(id -u)" -P "$vu_pid" -x vu) && wd=$(pgrep -u "$(id -u)" -P "$vu" -x vu-watchdog) && break
  sleep 0.02
done
[ -n "$wd" ] && kill -9 "$wd"
wait $vu_pid; rc=$?
expect "the watchdog killed: vu exits with the command's status" "found 3" "${wd:+found} $rc"

summary
