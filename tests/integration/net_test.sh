#!/usr/bin/env bash
# net_test.sh VU DENY_USERNS — vu-net's life cycle (issue 12, items 5-11), run as an unprivileged
# user: bounded start-up on a full vde_switch, signals during start-up, no linger without data in
# flight, switch:// directories, UDP forwards, forward backlogs, /dev/shm full, vu-net's death.
# Traffic only to loopback and to namespaces made here; every loop is bounded in count and time.
# LOOPS (default 100) and SWITCH_LOOPS (60) size the repeated-start loops.
set -u
VU=$1
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

uid=$(id -u)
echo "running as uid $uid ($(id -un))"
if [ "$uid" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi
if [ ! -r /dev/net/tun ] || [ ! -w /dev/net/tun ]; then echo "SKIP: /dev/net/tun is not usable"; exit 77; fi
for t in socat vde_switch vde_plug ss; do
  command -v $t >/dev/null || { echo "SKIP: $t is missing"; exit 77; }
done
if ! "$VU" run --net none -- true 2>"$work/stderr"; then
  echo "SKIP: vu cannot start a view here: $(cat "$work/stderr")"; exit 77
fi
T="timeout 20"
port=$((20000 + RANDOM % 20000))

# The live vu-net processes of this user (this test owns the user: run_as_user.sh). Zombies are
# not counted: an orphan is reaped by init, which on some machines (a VM's init) takes a second.
vu_nets() { ps -u "$uid" -o pid=,stat=,comm= | awk '$3 == "vu-net" && $2 !~ /^Z/ { printf "%s ", $1 }'; }
# hint_has NAME REGEX — the last check_err's stderr has a hint matching REGEX.
hint_has() {
  grep -qE -- "^  hint: .*$2" "$work/stderr" && ok "$1" || bad "$1" "stderr: $(cat "$work/stderr")" "want a hint matching: $2"
}
# The vu-net started by vu PID.
net_of() { pgrep -P "$1" -x vu-net | head -1; }
# wait_gone PID SECONDS: 0 when PID is gone within SECONDS.
wait_gone() {
  local i
  for i in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}

# --- 6: vu-net lingers only while the view's sockets have data to deliver ----------------------
vde_switch -s "$work/sw" -d -p "$work/sw.pid" && sleep 0.3
for net in none slirp "vde://$work/sw"; do
  $T "$VU" run --net "$net" -- true
  sleep 0.2
  left=$(vu_nets)
  [ -z "$left" ] && ok "no vu-net 200 ms after vu run --net ${net%%:*} -- true" ||
    bad "vu-net lingers after vu run --net $net -- true" "pids: $left"
  [ -n "$left" ] && sleep 2
done

# --- 5: a vde_switch that accepts and never answers ---------------------------------------------
# vde_switch -n 2 has one port for us; a vde_plug takes it, then the switch accepts the next
# connection and never answers it.
vde_switch -s "$work/full" -n 2 -d -p "$work/full.pid" && sleep 0.3
sleep 60 | vde_plug "vde://$work/full" >/dev/null 2>&1 & plug=$!
sleep 0.3
start=$(date +%s%N)
check_err "full vde_switch: bounded, names the switch (status 125)" 125 "vde://$work/full.*(did not answer|no answer)" \
  $T "$VU" run --net "vde://$work/full" -- true
ms=$((($(date +%s%N) - start) / 1000000))
[ $ms -lt 10000 ] && ok "…within 10 s (${ms} ms)" || bad "full vde_switch took ${ms} ms"
for sig in INT TERM HUP; do
  "$VU" run --net "vde://$work/full" -- true 2>"$work/sig.err" & v=$!
  sleep 0.5
  kill -$sig $v
  start=$(date +%s%N)
  if wait_gone $v 2; then
    wait $v; rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    [ $ms -lt 1000 ] && ok "SIG$sig to a starting vu ends it (${ms} ms, status $rc)" || bad "SIG$sig ended vu only after ${ms} ms"
  else
    bad "SIG$sig to a starting vu does nothing" "$(cat "$work/sig.err")"
    kill -KILL $v; wait $v
  fi
done
# vu net attach (into a namespace of our own) on the same switch: bounded too, and ^C ends it.
if unshare -rn true 2>/dev/null; then
  check_err "vu net attach on a full vde_switch: bounded, names the switch" 125 "vde://$work/full: the switch accepted the connection but did not answer" \
    $T unshare -rn "$VU" net attach "vde://$work/full"
  unshare -rn "$VU" net attach "vde://$work/full" 2>/dev/null & v=$!
  sleep 0.5
  kill -INT $v
  if wait_gone $v 1; then wait $v; expect "SIGINT ends a starting vu net attach" 130 $?
  else bad "SIGINT to a starting vu net attach does nothing"; kill -KILL $v; wait $v; fi
else
  skipped "vu net attach on a full switch" "unshare -rn is not allowed here"
fi
kill $plug 2>/dev/null; pkill -P $$ -x sleep 2>/dev/null; wait $plug 2>/dev/null
kill "$(cat "$work/full.pid")" 2>/dev/null
sleep 0.3
left=$(vu_nets)
[ -z "$left" ] && ok "nothing left of the interrupted views" || bad "vu-net left after interrupted starts" "$left"

# Many views in a row on a stock vde_switch (32 ports): none waits for a port.
n=${LOOPS:-100} hangs=0 fails=0
for i in $(seq "$n"); do
  timeout 10 "$VU" run --net "vde://$work/sw" -- true 2>"$work/loop.err"; rc=$?
  [ $rc = 124 ] && hangs=$((hangs + 1))
  [ $rc != 0 ] && [ $rc != 124 ] && fails=$((fails + 1)) && cp "$work/loop.err" "$work/loop.last"
done
[ $hangs = 0 ] && [ $fails = 0 ] && ok "$n runs on vde_switch: 0 hangs, 0 failures" ||
  bad "$n runs on vde_switch: $hangs hangs, $fails failures" "$(cat "$work/loop.last" 2>/dev/null)"
kill "$(cat "$work/sw.pid")" 2>/dev/null

# --- 7: switch:// directories --------------------------------------------------------------------
n=${SWITCH_LOOPS:-60} hangs=0 fails=0
for i in $(seq "$n"); do
  timeout 10 "$VU" run --net "switch://$work/esw" -- true 2>"$work/loop.err"; rc=$?
  [ $rc = 124 ] && hangs=$((hangs + 1))
  [ $rc != 0 ] && [ $rc != 124 ] && fails=$((fails + 1)) && cp "$work/loop.err" "$work/loop.last"
done
[ $hangs = 0 ] && [ $fails = 0 ] && ok "$n runs on switch://: 0 hangs, 0 failures" ||
  bad "$n runs on switch://: $hangs hangs, $fails failures" "$(cat "$work/loop.last" 2>/dev/null)"
# A live switch at the path: a clear error, with a hint.
$T "$VU" run --net "switch://$work/live" -- sleep 3 & v=$!
sleep 0.5
check_err "switch:// on a live switch: clear error" 125 "switch://$work/live: a switch is already running" \
  $T "$VU" run --net "switch://$work/live" -- true
hint_has "…with a hint" "vde://$work/live"
wait $v
# A stale one (its vu-net was killed): reclaimed.
"$VU" run --net "switch://$work/stale" -- sleep 3 2>/dev/null & v=$!
sleep 0.5
kill -KILL "$(net_of $v)" 2>/dev/null
wait $v
[ -d "$work/stale" ] && ok "(a killed vu-net left its switch directory)" || skipped "stale switch" "no directory was left"
check "switch:// reclaims a stale directory" 0 "ok" $T "$VU" run --net "switch://$work/stale" -- echo ok
mkdir -p "$work/plain" && touch "$work/plain/keep"
check_err "switch:// on a directory that is not a switch: clear error" 125 "switch://$work/plain.*not a switch" \
  $T "$VU" run --net "switch://$work/plain" -- true
[ -e "$work/plain/keep" ] && ok "…and it is left alone" || bad "switch:// removed a foreign directory's file"

# --- 8: UDP forwards answer on the default network -----------------------------------------------
udp_echo() {  # udp_echo NAME VU-ARGS… : a view echoing UDP on 5353, 20 datagrams from the host
  local name=$1; shift
  $T "$VU" run "$@" -- socat UDP-RECVFROM:5353,fork EXEC:cat & v=$!
  local got=0 i
  for i in $(seq 40); do
    r=$(echo "ping$i" | timeout 0.5 socat -T0.4 - UDP:127.0.0.1:$((port + 10)) 2>/dev/null)
    [ "$r" = "ping$i" ] && got=$((got + 1))
    [ $got -ge 20 ] && break
  done
  kill $v 2>/dev/null; wait $v 2>/dev/null
  [ $got -ge 20 ] && ok "UDP forward answers ($name): $got replies" || bad "UDP forward ($name): $got of 20 replies"
}
udp_echo "default network" -p $((port + 10)):5353/udp
udp_echo "allow-host-loopback" --net slirp:allow-host-loopback -p $((port + 10)):5353/udp

# --- 9: the host side of a TCP forward listens with a server's backlog ---------------------------
$T "$VU" run -p $((port + 11)):80 -- sleep 2 & v=$!
backlog=
for i in $(seq 20); do
  backlog=$(ss -Hltn "sport = :$((port + 11))" | awk '{print $3}')
  [ -n "$backlog" ] && break
  sleep 0.1
done
somax=$(cat /proc/sys/net/core/somaxconn)
[ "$backlog" = "$somax" ] && ok "TCP forward listens with backlog $somax (SOMAXCONN)" || bad "TCP forward backlog: ${backlog:-none} (want $somax)"
wait $v

# --- 10: -p errors name their cause ---------------------------------------------------------------
start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
if [ "$start" -gt 80 ]; then
  check_err "-p on a privileged port: says so" 125 "port 80/tcp: Permission denied" "$VU" run -p 80:80 -- true
  hint_has "…with a hint" "ip_unprivileged_port_start"
else
  skipped "-p on a privileged port" "ip_unprivileged_port_start is $start"
fi
check_err "-p on an address not of this host: says so" 125 "192.0.2.1.*Cannot assign requested address" \
  "$VU" run -p 192.0.2.1:$((port + 12)):80 -- true
hint_has "…with a hint" "not an address of this host"
socat TCP-LISTEN:$((port + 13)),bind=127.0.0.1,reuseaddr /dev/null & busy=$!
sleep 0.3
check_err "-p on a busy port: in use" 125 "port $((port + 13))/tcp: Address already in use" "$VU" run -p $((port + 13)):80 -- true
hint_has "…with a hint" "in use"
kill $busy 2>/dev/null; wait $busy 2>/dev/null

# A full /dev/shm (any local user can fill it): resolv.conf falls back to TMPDIR or /tmp.
if unshare -Urm true 2>/dev/null; then
  check "full /dev/shm: resolv.conf still written" 0 "nameserver 10.0.2.3" \
    unshare -Urm sh -c 'mount -t tmpfs -o size=8k none /dev/shm && { dd if=/dev/zero of=/dev/shm/fill bs=4k count=8 2>/dev/null; true; } && exec '"$T"' "$0" run -- cat /etc/resolv.conf' "$VU"
else
  skipped "full /dev/shm" "unshare -Urm is not allowed here"
fi

# --- 11: vu-net killed mid-view: vu says what died -----------------------------------------------
"$VU" run -- sleep 2 2>"$work/killed.err" & v=$!
sleep 0.5
kill -KILL "$(net_of $v)" 2>/dev/null
wait $v
grep -qE "^vu: vu-net .*killed by signal 9" "$work/killed.err" && ok "vu says vu-net died, and of which signal" ||
  bad "vu-net killed mid-view: vu said nothing" "$(cat "$work/killed.err")"

summary
