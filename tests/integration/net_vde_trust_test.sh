#!/usr/bin/env bash
# net_vde_trust_test.sh VU DENY_USERNS VTRUST_PROBE [VSTACK_ASAN] — what a program sees of a
# TCP reset, SO_LINGER {1, 0}, a refused non-blocking connect and a 60000-byte UDP datagram in
# a pvm view on a VDE network (vu-vstack, pvm/vstack.h) against an ns view on the same
# vde_switch: the same transcript (helpers/vtrust_probe.c prints it). Then connections cut
# mid-transfer in a loop (bounded), with vu-vstack built with AddressSanitizer when given: no
# use after free, no leak of sockets, the stack still answers.
# Traffic only inside the switch this test made. Run as an unprivileged user.
set -u
VU=$1
DENY=$2
PROBE=$3
ASAN=${4:-}
here=$(dirname "$0")
. "$here/harness.sh" || exit 1

if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
command -v vde_switch >/dev/null || { echo "SKIP: vde_switch is missing"; exit 77; }
[ -x "$(dirname "$VU")/vu-vstack" ] || { echo "SKIP: vu-vstack is not built"; exit 77; }

start_vde_switch
VNL="vde://$sw"
T="timeout -k 5 30"
PVM="$VU run --backend=pvm"
NS="$VU run --backend=ns"
have_ns=1
$T $NS --net "$VNL" --ip 10.0.1.9/24 -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here; pvm is compared with Linux's transcript"

wait_line() {  # FILE WORD: a bounded wait for a server view to print WORD
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# one NAME SERVER-VU SERVER-IP CLIENT-VU CLIENT-IP PORT MODE CLIENT-ARG: the client's transcript
one() {
  local srv=$2 sip=$3 cli=$4 cip=$5 port=$6 mode=$7 arg=$8
  $T $srv --net "$VNL" --ip "$sip/24" -- "$PROBE" serve "$port" "$mode" >"$work/s.$port" 2>&1 &
  views+=($!)
  wait_line "$work/s.$port" listening || { echo "server did not start: $(cat "$work/s.$port")"; return; }
  $T $cli --net "$VNL" --ip "$cip/24" -- "$PROBE" client "$sip" "$port" $arg 2>&1 | grep -v '^vu: '
  wait "${views[-1]}" 2>/dev/null
  grep SO_LINGER "$work/s.$port"
}

# What Linux gives (the ns view's, when ns works here).
rst_want="poll: ready ERR HUP
read: ECONNRESET
read: EOF
write: EPIPE"
port=7300
n=0
# pair NAME SERVER CLIENT — one reset transcript ($mode, $arg) between a SERVER view and a CLIENT
# view on fresh addresses and a fresh port, compared with $want.
pair() {
  local got
  port=$((port + 1)) n=$((n + 1))
  got=$(one "" "$2" 10.0.1.$((10 + n)) "$3" 10.0.1.$((50 + n)) $port $mode "$arg")
  if [ "$got" = "$want" ]; then ok "$1"; else bad "$1" "got:  $got" "want: $want"; fi
}
for mode in linger0 unread; do
  arg=; [ $mode = unread ] && arg=unread
  want=$rst_want
  [ $mode = linger0 ] && want="$want
SO_LINGER 1 0"
  if [ $have_ns = 1 ]; then
    pair "$mode: ns → ns (Linux's transcript)" "$NS" "$NS"
    pair "$mode: ns server, pvm client reads ECONNRESET" "$NS" "$PVM"
    pair "$mode: pvm server resets, ns client reads ECONNRESET" "$PVM" "$NS"
  fi
  pair "$mode: pvm → pvm" "$PVM" "$PVM"
done

# SO_ERROR asked after poll, before any read: the reset once, then end-of-file.
want="poll: ready ERR HUP
SO_ERROR: ECONNRESET
read: EOF
read: EOF
write: EPIPE
SO_LINGER 1 0"
port=$((port + 1)) n=$((n + 1))
srv=$PVM; [ $have_ns = 1 ] && srv=$NS
got=$(one "" "$srv" 10.0.1.$((10 + n)) "$PVM" 10.0.1.$((50 + n)) $port linger0 soerror)
if [ "$got" = "$want" ]; then ok "reset: SO_ERROR in a pvm view as on Linux"
else bad "reset: SO_ERROR in a pvm view as on Linux" "got:  $got" "want: $want"; fi

# A non-blocking connect refused: SO_ERROR once.
want="connect: EINPROGRESS
SO_ERROR: ECONNREFUSED
SO_ERROR again: 0"
want=${want/EINPROGRESS/Operation now in progress}
for b in ns pvm; do
  [ $b = ns ] && [ $have_ns = 0 ] && continue
  got=$($T $VU run --backend=$b --net "$VNL" --ip 10.0.1.90/24 -- "$PROBE" nbrefused 10.0.1.90 7398 2>&1 | grep -v '^vu: ')
  if [ "$got" = "$want" ]; then ok "non-blocking connect refused: SO_ERROR on $b"
  else bad "non-blocking connect refused: SO_ERROR on $b" "got:  $got" "want: $want"; fi
done

# A 60000-byte UDP datagram (41 IPv4 fragments) into a pvm view, and out of it.
udp() {  # NAME SERVER-VU SERVER-IP CLIENT-VU CLIENT-IP PORT SIZE
  $T $2 --net "$VNL" --ip "$3/24" -- "$PROBE" udprecv "$6" >"$work/u.$6" 2>&1 &
  views+=($!)
  wait_line "$work/u.$6" listening
  $T $4 --net "$VNL" --ip "$5/24" -- "$PROBE" udpsend "$3" "$6" "$7" >/dev/null 2>&1
  wait "${views[-1]}" 2>/dev/null
  local got
  got=$(grep -v '^vu: ' "$work/u.$6" | grep -v listening)
  if [ "$got" = "datagram: $7 bytes, intact" ]; then ok "$1"; else bad "$1" "server: $(cat "$work/u.$6")"; fi
}
if [ $have_ns = 1 ]; then
  udp "UDP 60000 bytes ns → ns" "$NS" 10.0.1.101 "$NS" 10.0.1.102 7401 60000
  udp "UDP 60000 bytes ns → pvm" "$PVM" 10.0.1.103 "$NS" 10.0.1.104 7402 60000
  udp "UDP 60000 bytes pvm → ns" "$NS" 10.0.1.105 "$PVM" 10.0.1.106 7403 60000
fi
udp "UDP 60000 bytes pvm → pvm" "$PVM" 10.0.1.107 "$PVM" 10.0.1.108 7404 60000
udp "UDP 65507 bytes (the IPv4 maximum) pvm → pvm" "$PVM" 10.0.1.109 "$PVM" 10.0.1.110 7405 65507

# Connections cut mid-transfer, both views on vu-vstack (with ASan when built): 60 connections,
# a third reset by SO_LINGER {1, 0}, a third closed with data unread (a reset too), a third
# half-closed, each while both sides still send. Then the stack still answers.
vstack_env=()
if [ -n "$ASAN" ] && [ -x "$ASAN" ]; then
  vstack_env=(env "VU_VSTACK=$ASAN" "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99")
  echo "note: vu-vstack built with AddressSanitizer ($ASAN)"
fi
$T "${vstack_env[@]}" $PVM --net "$VNL" --ip 10.0.1.121/24 -- "$PROBE" sink 7500 60 >"$work/sink" 2>&1 &
views+=($!)
wait_line "$work/sink" listening
got=$(timeout -k 5 60 "${vstack_env[@]}" $PVM --net "$VNL" --ip 10.0.1.122/24 -- sh -c \
  "\"$PROBE\" churn 10.0.1.121 7500 60; \"$PROBE\" nbrefused 10.0.1.121 7502 | grep 'SO_ERROR:'" 2>&1)
wait "${views[-1]}" 2>/dev/null
if printf '%s' "$got" | grep -q "^churned 60" && printf '%s' "$got" | grep -q "^SO_ERROR: ECONNREFUSED" &&
  ! grep -Eqi 'AddressSanitizer|tcache|corrupt|assertion|vu-vstack \(pid' "$work/sink" &&
  ! printf '%s' "$got" | grep -Eqi 'AddressSanitizer|tcache|corrupt|assertion|vu-vstack \(pid'
then ok "60 connections cut mid-transfer: no memory error, the stack still answers"
else bad "60 connections cut mid-transfer: no memory error, the stack still answers" "client: $(printf '%s' "$got" | head -c 1500)" "server: $(head -c 1500 "$work/sink")"; fi

summary
