#!/usr/bin/env bash
# net_pvm_test.sh VU DENY_USERNS [SYSCALL_PROBE] — the network half of the view on the pvm backend (issue 15):
# the same probes under --backend=ns, --backend=pvm and under the filter that denies user
# namespaces (vu picks pvm by itself) must print the same; then what only pvm needs checking
# (two views on one port, -p, 64 MiB each way byte for byte, a peer that resets, a view killed
# mid-transfer, bad input). Run as an unprivileged user. Traffic only to loopback.
set -u
VU=$1
DENY=$2
PROBE=${3:-}
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
for t in socat ip sha256sum ping; do command -v $t >/dev/null || { echo "SKIP: $t is missing"; exit 77; }; done
if ! "$VU" run --backend=pvm -- true 2>"$work/err"; then
  echo "FAIL - pvm does not start with its network: $(cat "$work/err")"; echo "0 passed, 1 failed, 0 skipped"; exit 1
fi
have_ns=1
"$VU" run --backend=ns -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here; pvm is checked against the expected text only"
T="timeout -k 5 30"
port() { echo $((20000 + RANDOM % 20000)); }

# What differs between two views by design: the MAC address (random per view) and the
# link-local address made from it.
# link-local address made from it; and the ns view's "tentative" while its kernel checks
# fd00::100 for duplicates (a few hundred ms after start-up; pvm has no such phase).
norm() { sed -E 's#link/ether [0-9a-f:]{17}#link/ether MAC#; /fe80::/d; s/ tentative / /'; }
# netprobe NAME VU-OPTIONS… -- COMMAND…: ns, pvm and pvm-by-itself print the same.
netprobe() {
  local name=$1; shift
  local out_ns out_pvm out_deny rc_ns rc_pvm rc_deny
  out_pvm=$($T "$VU" run --backend=pvm "$@" 2>&1 | grep -v '^vu: ' | norm); rc_pvm=${PIPESTATUS[0]}
  out_deny=$($T "$DENY" "$VU" run "$@" 2>&1 | grep -v '^vu: ' | norm); rc_deny=${PIPESTATUS[0]}
  if [ $have_ns = 1 ]; then
    out_ns=$($T "$VU" run --backend=ns "$@" 2>&1 | grep -v '^vu: ' | norm); rc_ns=${PIPESTATUS[0]}
  else
    out_ns=$out_pvm rc_ns=$rc_pvm
  fi
  if [ "$out_ns" = "$out_pvm" ] && [ "$out_ns" = "$out_deny" ] && [ $rc_ns = $rc_pvm ] && [ $rc_ns = $rc_deny ]; then
    ok "$name"
  else
    bad "$name" "ns  (status $rc_ns): $(printf '%s' "$out_ns" | head -c 600)" \
      "pvm (status $rc_pvm): $(printf '%s' "$out_pvm" | head -c 600)" \
      "deny-userns (status $rc_deny): $(printf '%s' "$out_deny" | head -c 600)"
  fi
}

# --- the view's interfaces, routes and resolver -------------------------------------------------
netprobe "ip -o addr" -- ip -o addr
netprobe "ip -o link" -- ip -o link
netprobe "ip route" -- ip route
netprobe "ip -6 route" -- ip -6 route
netprobe "ip route show table local" -- ip route show table local
netprobe "hostname -I (getifaddrs)" -- hostname -I
netprobe "resolv.conf" -- cat /etc/resolv.conf
netprobe "--ip/--gw" --ip 10.0.3.7/24 --gw 10.0.3.1 -- sh -c 'ip -o -4 addr; ip route'
netprobe "--net none: lo only" --net none -- sh -c 'ip -o addr; ip -o link; ip route; ip -6 route'
netprobe "ip addr add refused as without capabilities" -- sh -c 'ip addr add 10.9.9.9/24 dev vde0; echo "status $?"'

# --- sockets ------------------------------------------------------------------------------------
# The view's own loopback: a server and its client in the view; the server sees the client as
# the view's 127.0.0.1, the client its own address.
netprobe "TCP on the view's loopback" -- sh -c \
  'socat TCP-LISTEN:7001,bind=127.0.0.1,reuseaddr SYSTEM:"echo peer \$SOCAT_PEERADDR local \$SOCAT_SOCKADDR:\$SOCAT_SOCKPORT" & sleep 0.5; socat -u TCP:127.0.0.1:7001 -; wait'
netprobe "UDP on the view's loopback" -- sh -c \
  'socat -T1 UDP-RECVFROM:7002,bind=127.0.0.1 SYSTEM:"head -1 >&2; echo from \$SOCAT_PEERADDR >&2" & sleep 0.5; echo dgram | socat -u - UDP-SENDTO:127.0.0.1:7002; wait'
netprobe "UDP from a client bound to 0.0.0.0:0" -- sh -c \
  'socat -T1 UDP-RECVFROM:7007,bind=127.0.0.1 SYSTEM:"head -1 >&2; echo from \$SOCAT_PEERADDR >&2" & sleep 0.5; echo dgram | socat -u - UDP-SENDTO:127.0.0.1:7007,bind=0.0.0.0:0; wait'
netprobe "TCP over IPv6 on the view's ::1" -- sh -c \
  'socat TCP6-LISTEN:7004,bind=[::1] SYSTEM:"echo v6 peer \$SOCAT_PEERADDR" & sleep 0.5; socat -u TCP6:[::1]:7004 -; wait'
netprobe "IPV6_V6ONLY sockets on the view's ::1" -- sh -c \
  'socat TCP6-LISTEN:7006,bind=[::1],ipv6only=1,reuseaddr SYSTEM:"echo v6only ok" & sleep 0.5; socat -u TCP6:[::1]:7006,ipv6only=1 -; wait'
netprobe "TCP to 10.0.2.100 reaches the view" -- sh -c \
  'socat TCP-LISTEN:7003,reuseaddr SYSTEM:"echo hello" & sleep 0.5; socat -u TCP:10.0.2.100:7003 -; wait'
netprobe "10.0.2.2 unreachable without allow-host-loopback" -- sh -c \
  'socat -u TCP:10.0.2.2:7 - 2>&1 | grep -o "Network is unreachable"'
netprobe "--net none: 10.0.2.2 unreachable" --net none -- sh -c \
  'socat -u TCP:10.0.2.2:7 - 2>&1 | grep -o "Network is unreachable"'
netprobe "refused on the view's loopback" -- sh -c 'socat -u TCP:127.0.0.1:9 - 2>&1 | grep -o "Connection refused"'
# recvmsg with SO_RCVTIMEO (ping's wait; trapped, pvm keeps the deadline): MSG_ERRQUEUE does not
# wait, a queued ICMP error does not end the wait, a signal gives EINTR even with SA_RESTART.
[ -n "$PROBE" ] && netprobe "recvmsg with SO_RCVTIMEO" -- "$PROBE" rcvtimeo
# The trapped socket() calls see an int argument as the kernel does (bits above 32 ignored).
[ -n "$PROBE" ] && netprobe "socket() with high bits in an int argument" -- "$PROBE" socket-hibits

# --- ICMP echo (pvm/inet_echo.h) ---------------------------------------------------------------
# ping's times differ from run to run; the rest (who answers, TTL, counts, status) must not.
P="| sed -E 's/time=[0-9.]+ ms/time=T/; s/, time [0-9]+ms//; /^rtt /d'"
for a in 10.0.2.2 10.0.2.3 10.0.2.100 127.0.0.1 127.0.0.9; do
  netprobe "ping $a" -- bash -c "set -o pipefail; ping -c2 -i0.2 -W2 $a $P"
done
netprobe "ping 10.0.2.2 with allow-host-loopback" --net slirp:allow-host-loopback -- bash -c "set -o pipefail; ping -c1 -W2 10.0.2.2 $P"
netprobe "--net none: ping 127.0.0.1, and 10.0.2.2 unreachable" --net none -- sh -c \
  "ping -c1 -W2 127.0.0.1 $P; ping -c1 -W1 10.0.2.2; echo \"status \$?\""
netprobe "--root: ping 10.0.2.2" --root -- bash -c "set -o pipefail; ping -c1 -W2 10.0.2.2 $P"
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
  # (after a moment: the ns view's fd00::100 is "tentative" just after start-up)
  netprobe "ping -6 ::1, fd00::2, fd00::3, fd00::100" -- bash -c \
    "set -o pipefail; sleep 2; for a in ::1 fd00::2 fd00::3 fd00::100; do ping -6 -c1 -W2 \$a $P || echo \"status \$?\"; done"
else
  skipped "ping -6" "no IPv6 loopback on this host"
fi
# Outside the view's network nothing answers (on ns libslirp's UDP-echo fallback, since this
# host's ping_group_range shuts users out; checked on pvm only: ns would send to the address).
out=$($T "$VU" run --backend=pvm -- bash -c "set -o pipefail; ping -c1 -W1 192.0.2.1 $P; echo \"status \$?\"" 2>&1)
want="PING 192.0.2.1 (192.0.2.1) 56(84) bytes of data.

--- 192.0.2.1 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss

status 1"
[ "$out" = "$want" ] && ok "pvm: ping to an outside address goes unanswered (nothing sent)" || bad "pvm: ping outside" "got: $out"

# The host's 127.0.0.1 through 10.0.2.2 (allow-host-loopback), TCP and UDP. The host server
# tells who called (127.0.0.1 on both backends: slirp's NAT and the host socket alike).
hp=$(port)
socat TCP-LISTEN:$hp,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo host says hi to $SOCAT_PEERADDR' & hsrv=$!
up=$(port)
socat UDP-RECVFROM:$up,bind=127.0.0.1,fork SYSTEM:'read l; echo "host got $l"' & usrv=$!
sleep 0.5
netprobe "TCP to the host's loopback via 10.0.2.2" --net slirp:allow-host-loopback -- sh -c \
  "socat -u TCP:10.0.2.2:$hp - "
netprobe "UDP to the host's loopback via 10.0.2.2" --net slirp:allow-host-loopback -- sh -c \
  "echo ping | socat -T2 - UDP-SENDTO:10.0.2.2:$up"
netprobe "the view's 127.0.0.1 is not the host's" -- sh -c \
  "socat -u TCP:127.0.0.1:$hp - 2>&1 | grep -o 'Connection refused'"
if socat TCP6-LISTEN:$hp,bind=[::1],reuseaddr,fork SYSTEM:'echo host6 says hi' 2>/dev/null & h6=$!; sleep 0.3; kill -0 $h6 2>/dev/null; then
  # (retried: the ns view's fd00::100 is "tentative" for a moment after start-up)
  netprobe "TCP to the host's ::1 via fd00::2" --net slirp:allow-host-loopback -- sh -c \
    "for i in 1 2 3 4 5 6; do out=\$(socat -u TCP6:[fd00::2]:$hp - 2>/dev/null) && [ -n \"\$out\" ] && break; sleep 0.5; done; echo \"\$out\""

  kill $h6 2>/dev/null
else
  skipped "TCP to the host's ::1 via fd00::2" "no IPv6 loopback on this host"
fi
wait $h6 2>/dev/null
kill $hsrv $usrv 2>/dev/null; wait $hsrv $usrv 2>/dev/null

# --- pvm only -----------------------------------------------------------------------------------
# Two views bind the same port: no clash (each has its own loopback).
$T "$VU" run --backend=pvm -- socat TCP-LISTEN:7100,reuseaddr SYSTEM:'echo one' & v1=$!
sleep 0.5
out=$($T "$VU" run --backend=pvm -- sh -c 'socat TCP-LISTEN:7100,reuseaddr SYSTEM:"echo two" & sleep 0.5; socat -u TCP:127.0.0.1:7100 -; wait')
[ "$out" = two ] && ok "two views bind the same port, each reaches its own" || bad "two views, same port" "got: $out"
kill $v1 2>/dev/null; wait $v1 2>/dev/null

netprobe "-p: the view reaches its own forwarded port on its 127.0.0.1" -p "$(port):8080" -- sh -c \
  'socat TCP-LISTEN:8080,reuseaddr SYSTEM:"echo self peer \$SOCAT_PEERADDR" & sleep 0.5; socat -u TCP:127.0.0.1:8080 -; wait'

# Never block the monitor: connects to a full backlog wait (on the monitor's workers, as their
# callers would) while the view's other calls, rtnetlink included, are answered.
out=$($T "$VU" run --backend=pvm -- sh -c '
  socat TCP-LISTEN:7200,bind=127.0.0.1,backlog=0 EXEC:"sleep 8" & s=$!; sleep 0.5
  pids=
  for i in 1 2 3 4; do timeout 6 socat -u TCP:127.0.0.1:7200 - 2>/dev/null & pids="$pids $!"; done
  sleep 1
  n=$(ip -o link | wc -l); pending=0
  for j in $pids; do kill -0 $j 2>/dev/null && pending=$((pending + 1)); done
  echo "$n $pending"
  kill $pids $s 2>/dev/null; wait')
set -- $out
[ "${1:-0}" = 2 ] && [ "${2:-0}" -ge 1 ] && ok "connects to a full backlog wait; ip is answered meanwhile ($2 waiting)" ||
  bad "a waiting connect holds up the view" "got: $out"

# -p TCP and UDP: the view's server is reached from the host's 127.0.0.1; it sees the caller as
# 10.0.2.2 and itself as 10.0.2.100, as with slirp (compared with ns where ns works).
fwd_tcp() {  # BACKEND: what the host's client gets from the view's server
  local hp out i v
  hp=$(port)
  $T "$VU" run --backend=$1 -p $hp:8080 -- socat TCP-LISTEN:8080,reuseaddr SYSTEM:'echo peer $SOCAT_PEERADDR local $SOCAT_SOCKADDR' 2>"$work/p.err" & v=$!
  out=
  for i in $(seq 50); do out=$(socat -u TCP:127.0.0.1:$hp - 2>/dev/null) && [ -n "$out" ] && break; sleep 0.1; done
  wait $v
  echo "$out"
}
fwd_udp() {  # BACKEND
  local hp out i v
  hp=$(port)
  $T "$VU" run --backend=$1 -p $hp:5353/udp -- socat -T3 UDP-RECVFROM:5353 SYSTEM:'read l; echo "view got $l from $SOCAT_PEERADDR"' 2>"$work/p.err" & v=$!
  out=
  for i in $(seq 30); do out=$(echo hi | socat -T1 - UDP-SENDTO:127.0.0.1:$hp 2>/dev/null) && [ -n "$out" ] && break; sleep 0.1; done
  kill $v 2>/dev/null; wait $v 2>/dev/null
  echo "$out"
}
want_tcp="peer 10.0.2.2 local 10.0.2.100" want_udp="view got hi from 10.0.2.2"
if [ $have_ns = 1 ]; then want_tcp=$(fwd_tcp ns) want_udp=$(fwd_udp ns); fi
out=$(fwd_tcp pvm)
[ -n "$out" ] && [ "$out" = "$want_tcp" ] && ok "-p HOST:8080 reaches the view's server, as on ns" ||
  bad "-p TCP" "pvm: $out" "ns:  $want_tcp" "stderr: $(cat "$work/p.err")"
out=$(fwd_udp pvm)
[ -n "$out" ] && [ "$out" = "$want_udp" ] && ok "-p HOST:5353/udp reaches the view's server and back, as on ns" ||
  bad "-p UDP" "pvm: $out" "ns:  $want_udp" "stderr: $(cat "$work/p.err")"

# 64 MiB each way through -p, checked byte for byte.
head -c 64M /dev/urandom > "$work/blob"
want=$(sha256sum < "$work/blob" | cut -d' ' -f1)
hp=$(port)
$T "$VU" run --backend=pvm -p $hp:9000 -- sh -c 'socat -u TCP-LISTEN:9000 - | sha256sum | cut -d" " -f1' > "$work/in.sum" & v=$!
for i in $(seq 50); do socat -u "$work/blob" TCP:127.0.0.1:$hp 2>/dev/null && break; sleep 0.1; done
wait $v
[ "$(cat "$work/in.sum")" = "$want" ] && ok "64 MiB host -> view, byte for byte" || bad "64 MiB host -> view" "sum $(cat "$work/in.sum")"
hp=$(port)
socat -u TCP-LISTEN:$hp,bind=127.0.0.1,reuseaddr - > "$work/out.bin" & s=$!
sleep 0.3
$T "$VU" run --backend=pvm --net slirp:allow-host-loopback -- socat -u "$work/blob" TCP:10.0.2.2:$hp
wait $s
[ "$(sha256sum < "$work/out.bin" | cut -d' ' -f1)" = "$want" ] && ok "64 MiB view -> host, byte for byte" ||
  bad "64 MiB view -> host" "size $(stat -c %s "$work/out.bin")"

# A peer that resets: the view's reader gets the error, as natively.
hp=$(port)
socat TCP-LISTEN:$hp,bind=127.0.0.1,reuseaddr,linger=0 SYSTEM:'head -c 1000 /dev/zero; exit 0' & s=$!
sleep 0.3
out=$($T "$VU" run --backend=pvm --net slirp:allow-host-loopback -- sh -c "socat -u TCP:10.0.2.2:$hp - | wc -c")
[ "$out" -ge 0 ] 2>/dev/null && ok "a peer that resets: the view's client ends ($out bytes)" || bad "peer reset" "got: $out"
kill $s 2>/dev/null; wait $s 2>/dev/null

# A view killed mid-transfer: its host port is free again and nothing of it is left (vu itself
# is killed; its view dies with it: PTRACE_O_EXITKILL).
hp=$(port)
"$VU" run --backend=pvm -p $hp:9001 -- timeout 60 sh -c 'socat -u TCP-LISTEN:9001 - > /dev/null' & v=$!
for i in $(seq 50); do ss -ltn 2>/dev/null | grep -q "127.0.0.1:$hp " && break; sleep 0.1; done
timeout 20 socat -u /dev/zero TCP:127.0.0.1:$hp 2>/dev/null & c=$!
sleep 0.5
kill -9 $v 2>/dev/null; wait $v 2>/dev/null
wait $c 2>/dev/null
for i in $(seq 20); do pgrep -u "$(id -u)" -f "TCP-LISTEN:9001" >/dev/null || break; sleep 0.1; done
left=$(pgrep -u "$(id -u)" -f "TCP-LISTEN:9001" | tr '\n' ' ')
[ -z "$left" ] && ok "a view killed mid-transfer: nothing of it left running" || bad "killed view left processes" "$left"
timeout 5 socat -u /dev/null TCP-LISTEN:$hp,bind=127.0.0.1 2>"$work/l.err" & l=$!
sleep 0.3
if kill -0 $l 2>/dev/null; then ok "a view killed mid-transfer: its host port is free again"; kill $l 2>/dev/null
else bad "killed view: host port still taken" "$(cat "$work/l.err")"; fi
wait $l 2>/dev/null

# --- bad input ----------------------------------------------------------------------------------
hp=$(port)
socat TCP-LISTEN:$hp,bind=127.0.0.1,reuseaddr /dev/null & s=$!
sleep 0.3
check_err "-p on a host port already taken: status 125, names the port (pvm)" 125 "-p $hp:80: listen on 127.0.0.1 port $hp/tcp: Address already in use" \
  $T "$VU" run --backend=pvm -p $hp:80 -- true
kill $s 2>/dev/null; wait $s 2>/dev/null
check_err "--net vde:// to a switch that does not exist on pvm: status 125, names it" 125 "vde://$work/nosw: the VDE stack helper could not plug into it" \
  $T "$VU" run --backend=pvm --net "vde://$work/nosw" -- true
# (Several --net and --net-stats on slirp work on pvm in stack mode: conformance.net_pvm_stack.)
check_err "more than one --net on pvm, one a switch that does not exist: status 125, names it" 125 \
  "open VDE network vde://$work/nosw: No such file or directory" \
  $T "$VU" run --backend=pvm --net slirp --net "vde://$work/nosw" -- true
check_err "--net-stats on pvm's default network: counted (stack mode)" 0 'vu: net: vde0 \(slirp\): to view' \
  $T "$VU" run --backend=pvm --net-stats -- true
check_err "--gw outside --ip's network: status 125, as on ns" 125 "add default route via 10.0.9.1: Network is unreachable" \
  $T "$VU" run --backend=pvm --ip 10.0.3.7/24 --gw 10.0.9.1 -- true
summary
