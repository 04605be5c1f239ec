#!/usr/bin/env bash
# net_pvm_stack_test.sh VU DENY_USERNS — pvm's stack mode (runtime/pvm_stack_net.h, issue 15):
# a pvm view with several --net (slirp and a VDE switch this test starts), or --net-stats on
# slirp, gets one interface per network as on ns: ns, pvm and pvm-by-itself under the filter
# that denies user namespaces print the same `ip -o addr`, `ip route`, `ip -6 route`,
# `ip -o link` and resolv.conf; reach a TCP server on the host's 127.0.0.1 through 10.0.2.2
# (allow-host-loopback); ping and reach a view on the switch; -p forwards TCP into the view;
# --net-stats prints lines of the same shape; the default single-slirp pvm view keeps its
# host-socket path (--explain says which mode and why); bad input as on ns, nothing left.
# Traffic only to loopback and the switch this test made. Run as an unprivileged user.
set -u
VU=$1
DENY=$2
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
for t in socat ip vde_switch ping; do command -v $t >/dev/null || { echo "SKIP: $t is missing"; exit 77; }; done
vstack="$(dirname "$VU")/vu-vstack"
[ -x "$vstack" ] || { echo "SKIP: $vstack is not built"; exit 77; }

start_vde_switch
T="timeout -k 5 30"
NETS="--net slirp:allow-host-loopback --net vde://$sw --ip 10.0.2.100/24 --ip 10.0.0.5/24"

have_ns=1
$T "$VU" run --backend=ns $NETS -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here; pvm is compared with itself under deny-userns"

# What differs between two views by design: MACs, the link-local addresses made from them, and
# the kernel's duplicate address detection still running on ns.
norm() { sed -E 's#link/ether [0-9a-f:]{17}#link/ether MAC#; s/fe80::[0-9a-f:]+/fe80::LL/; s/ tentative / /'; }

# --explain: stack mode for what needs it, the host-socket path for the default view.
e=$($T "$VU" run --backend=pvm $NETS --explain 2>&1)
case $e in *"pvm stack mode, for 2 networks"*) ok "--explain: two networks → stack mode, and why";;
  *) bad "--explain: two networks → stack mode, and why" "$e";; esac
e=$($T "$VU" run --backend=pvm --net-stats --explain 2>&1)
case $e in *"pvm stack mode, for --net-stats on slirp"*) ok "--explain: --net-stats on slirp → stack mode";;
  *) bad "--explain: --net-stats on slirp → stack mode" "$e";; esac
e=$($T "$VU" run --backend=pvm --explain 2>&1)
case $e in *"pvm: host sockets"*) ok "--explain: the default pvm network keeps host sockets";;
  *) bad "--explain: the default pvm network keeps host sockets" "$e";; esac

# Interfaces, routes, resolv.conf: ns = pvm = deny-userns.
for probe in "ip -o addr" "ip route" "ip -6 route" "ip -o link" "cat /etc/resolv.conf" "ip -o -4 addr show dev vde1"; do
  p=$($T "$VU" run --backend=pvm $NETS -- $probe 2>&1 | norm)
  d=$($T "$DENY" "$VU" run $NETS -- $probe 2>&1 | grep -v '^vu: ' | norm)
  if [ $have_ns = 1 ]; then n=$($T "$VU" run --backend=ns $NETS -- $probe 2>&1 | norm); else n=$p; fi
  if [ "$n" = "$p" ] && [ "$p" = "$d" ] && printf '%s' "$p" | grep -q .; then ok "$probe: ns = pvm = deny-userns"
  else bad "$probe: ns = pvm = deny-userns" "ns:   $n" "pvm:  $p" "deny: $d"; fi
done
p=$($T "$VU" run --backend=pvm $NETS -- ip -o addr 2>&1)
case $p in *"vde1    inet 10.0.0.5/24 brd 10.0.0.255 scope global vde1"*"vde0"*|*"vde0"*"vde1    inet 10.0.0.5/24"*)
  ok "vde0 and vde1 both there, vde1 with its --ip";; *) bad "vde0 and vde1 both there, vde1 with its --ip" "$p";; esac

# The host's 127.0.0.1 through slirp's 10.0.2.2 (allow-host-loopback).
port=$((20000 + RANDOM % 20000))
socat TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo host answers' 2>/dev/null &
views+=($!)
sleep 0.3
for b in "--backend=pvm" "DENY" "--backend=ns"; do
  [ "$b" = "--backend=ns" ] && [ $have_ns = 0 ] && continue
  if [ "$b" = DENY ]; then got=$($T "$DENY" "$VU" run $NETS -- socat -T 3 - TCP:10.0.2.2:$port </dev/null 2>&1 | grep -v '^vu: ')
  else got=$($T "$VU" run "$b" $NETS -- socat -T 3 - TCP:10.0.2.2:$port </dev/null 2>&1); fi
  check "TCP to the host's 127.0.0.1 via 10.0.2.2 ($b)" 0 "host answers" echo "$got"
done

# A view on the switch: ping and TCP from the two-network view.
$T "$VU" run --backend=pvm --net "vde://$sw" --ip 10.0.0.9/24 -- sh -c \
  "socat TCP-LISTEN:7402,fork SYSTEM:'echo switch view answers' & sleep 0.3; echo up > $work/up; wait" >/dev/null 2>&1 &
views+=($!)
for _ in $(seq 100); do [ -s "$work/up" ] && break; sleep 0.1; done
for b in "--backend=pvm" "DENY" "--backend=ns"; do
  [ "$b" = "--backend=ns" ] && [ $have_ns = 0 ] && continue
  pre="$VU run $b"; [ "$b" = DENY ] && pre="$DENY $VU run"
  got=$($T $pre $NETS -- sh -c 'ping -c 1 -W 3 10.0.0.9 >/dev/null && echo pong; socat -T 3 - TCP:10.0.0.9:7402 </dev/null' 2>&1 | grep -v '^vu: ')
  check "ping and TCP to a view on the switch ($b)" 0 "pong
switch view answers" echo "$got"
done

# -p forwards TCP into a stack-mode view (libslirp's forward, in vu-net).
fport=$((20000 + RANDOM % 20000))
for b in "--backend=pvm" "DENY"; do
  pre="$VU run $b"; [ "$b" = DENY ] && pre="$DENY $VU run"
  rm -f "$work/fup"
  $T $pre $NETS -p $fport:80 -- sh -c "socat TCP-LISTEN:80 SYSTEM:'echo forwarded view answers' & sleep 0.3; echo up > $work/fup; wait" >/dev/null 2>&1 &
  v=$!
  for _ in $(seq 100); do [ -s "$work/fup" ] && break; sleep 0.1; done
  got=$(for i in 1 2 3 4 5; do socat -T 3 - TCP:127.0.0.1:$fport </dev/null 2>/dev/null && break; sleep 0.3; done)
  wait $v 2>/dev/null
  check "-p $fport:80 reaches the stack-mode view ($b)" 0 "forwarded view answers" echo "$got"
  fport=$((fport + 1))
done

# --net-stats: one line per interface, in ns's words and order (the figures are the view's own).
shape() { grep '^vu: net: ' | sed -E 's/[0-9]+/N/g'; }
p=$($T "$VU" run --backend=pvm $NETS --net-stats -- ping -c 1 -W 2 10.0.2.2 2>&1 >/dev/null | shape)
if [ $have_ns = 1 ]; then n=$($T "$VU" run --backend=ns $NETS --net-stats -- ping -c 1 -W 2 10.0.2.2 2>&1 >/dev/null | shape); else n=$p; fi
if [ "$n" = "$p" ] && [ "$(printf '%s\n' "$p" | grep -c .)" = 2 ]; then ok "--net-stats with two networks: ns's lines"
else bad "--net-stats with two networks: ns's lines" "ns:  $n" "pvm: $p"; fi
p=$($T "$VU" run --backend=pvm --net-stats -- ping -c 1 -W 2 10.0.2.2 2>&1 >/dev/null | grep '^vu: net: ')
case $p in "vu: net: vde0 (slirp): to view "[1-9]*) ok "--net-stats on pvm's slirp: frames counted";;
  *) bad "--net-stats on pvm's slirp: frames counted" "$p";; esac

# Bad input: the same message and status as on ns, nothing left running.
left() {  # the test user's vu helpers still running after a bounded wait
  local l
  for _ in $(seq 50); do
    l=$(ps -u "$(id -u)" -o pid=,comm= | grep -E ' (vu|vu-net|vu-vstack|sleep)$')
    [ -z "$l" ] && return 0
    sleep 0.1
  done
  echo "$l"
}
for p in "${views[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
views=()
sleep 3.5  # (the views above end their helpers within 3.5 s)
for args in "--net slirp --net vde://$work/no-such-switch" "--net slirp --net slirp --ip 10.0.2.100/24 --ip 10.0.3.1/24 --gw 10.9.9.9"; do
  p=$($T "$VU" run --backend=pvm $args -- true 2>&1); pst=$?
  if [ $have_ns = 1 ]; then n=$($T "$VU" run --backend=ns $args -- true 2>&1); nst=$?; else n=$p; nst=$pst; fi
  l=$(left)
  if [ "$p" = "$n" ] && [ $pst = $nst ] && [ $pst = 125 ] && [ -z "$l" ]; then ok "bad input ($args): ns's message, 125, nothing left"
  else bad "bad input ($args): ns's message, 125, nothing left" "ns ($nst):  $n" "pvm ($pst): $p" "left: $l"; fi
done
# vu killed (-9) under a stack-mode view: vu-vstack and vu-net end by themselves.
"$VU" run --backend=pvm $NETS -- sleep 20 >/dev/null 2>&1 &
v=$!
sleep 1.5
kill -9 $v 2>/dev/null; wait $v 2>/dev/null
l=$(left)
[ -z "$l" ] && ok "vu killed under a stack-mode view: nothing left" || bad "vu killed under a stack-mode view: nothing left" "$l"
socat TCP-LISTEN:$((port + 1)),bind=127.0.0.1 SYSTEM:true 2>/dev/null &
views+=($!)
sleep 0.3
p=$($T "$VU" run --backend=pvm --net slirp --net vde://$sw -p $((port + 1)):80 -- true 2>&1); pst=$?
l=$(left)
case "$pst $p" in "125 vu: -p $((port + 1)):80: listen on 127.0.0.1 port $((port + 1))/tcp: Address already in use"*)
  [ -z "$l" ] && ok "a taken -p port in stack mode: 125, clear message, nothing left" || bad "a taken -p port: nothing left" "$l";;
  *) bad "a taken -p port in stack mode: 125, clear message" "$pst $p";; esac

summary
