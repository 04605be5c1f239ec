#!/usr/bin/env bash
# net_join_pvm_test.sh VU DENY_USERNS — `--net join:NAME` on the pvm backend (issue 15): the view
# is in the network namespace NAME as on ns (its interfaces, routes, a TCP server in it), under
# --backend=pvm and under the filter that denies user namespaces (auto picks pvm), and holds none
# of the capabilities vu was given. Run as root: the test makes the namespace (ip netns add,
# removed on every exit path) and gives the test user CAP_SYS_ADMIN the way cado does (ambient,
# here with setpriv); the views run as that user. Traffic only inside that namespace.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (it makes a network namespace)"; exit 77; fi
for t in setpriv socat ip; do command -v $t >/dev/null || { echo "SKIP: $t is missing"; exit 77; }; done
user=${VU_TEST_USER:-vu-tester}
"$here/../../scripts/setup.sh" --test-env || { echo "SKIP: cannot prepare $user"; exit 77; }
chown "$user" "$work"
bin=$work/bin
mkdir "$bin"
dir=$(dirname "$1")
cp "$1" "$dir/vu-net" "$dir/libvu-pvm-accel.so" "$2" "$bin/" || exit 1
chmod 755 "$bin" "$bin"/*
VU=$bin/vu DENY=$bin/$(basename "$2")

NS=vu-join-pvm-$$
srv=
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null
  ip netns delete "$NS" 2>/dev/null
}
trap 'cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
ip netns add "$NS" 2>"$work/err" || { echo "SKIP: ip netns add: $(cat "$work/err")"; exit 77; }
ip -n "$NS" link set lo up
ip -n "$NS" addr add 10.77.0.1/24 dev lo
ip -n "$NS" -6 addr add fd77::1/64 dev lo 2>/dev/null
T="timeout -k 5 30"
as_user() { runuser -u "$user" -- env -i HOME="$work" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"; }
# The user with CAP_SYS_ADMIN in its ambient set, as `cado sys_admin -- …` leaves it.
as_cap() {
  setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=+sys_admin --ambient-caps=+sys_admin -- \
    env -i HOME="$work" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"
}
if ! as_cap $T "$VU" run --backend=pvm --net join:"$NS" -- true 2>"$work/err"; then
  echo "FAIL - pvm does not start in a joined namespace: $(cat "$work/err")"; echo "0 passed, 1 failed, 0 skipped"; exit 1
fi
have_ns=1
as_cap $T "$VU" run --backend=ns --net join:"$NS" -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here; pvm is checked against the namespace itself"

# joinprobe NAME COMMAND… — ns, pvm and auto under deny-userns print the same in the namespace
# (without ns: what root's `ip netns exec` prints there).
joinprobe() {
  local name=$1; shift
  local want want_rc got rc how
  if [ $have_ns = 1 ]; then
    want=$(as_cap $T "$VU" run --backend=ns --net join:"$NS" -- "$@" 2>&1); want_rc=$?
  else
    want=$(ip netns exec "$NS" "$@" 2>&1); want_rc=$?
  fi
  for how in pvm deny-userns; do
    if [ $how = pvm ]; then got=$(as_cap $T "$VU" run --backend=pvm --net join:"$NS" -- "$@" 2>&1); rc=$?
    else got=$(as_cap $T "$DENY" "$VU" run --net join:"$NS" -- "$@" 2>&1 | grep -v '^vu: '); rc=${PIPESTATUS[0]}; fi
    if [ "$got" = "$want" ] && [ $rc = $want_rc ]; then ok "$how: $name"
    else bad "$how: $name" "status $rc (want $want_rc)" "got:  $(printf '%s' "$got" | head -c 600)" \
      "want: $(printf '%s' "$want" | head -c 600)"; fi
  done
}

want_ns=$(ip netns exec "$NS" readlink /proc/self/ns/net)
out=$(as_cap $T "$VU" run --backend=pvm --net join:"$NS" -- readlink /proc/self/ns/net 2>&1)
[ "$out" = "$want_ns" ] && ok "pvm: the view is in the namespace ($out)" || bad "pvm: the view's namespace" "got: $out" "want: $want_ns"
joinprobe "ip -o addr (the namespace's interfaces)" ip -o addr
joinprobe "ip -o link" sh -c 'ip -o link | sed -E "s#link/[a-z]+ [0-9a-f:]+ brd [0-9a-f:]+##"'
joinprobe "ip route show table all" ip route show table all
joinprobe "hostname -I (getifaddrs)" hostname -I
joinprobe "the view holds none of vu's capabilities" sh -c 'grep -E "^Cap(Prm|Eff|Amb)" /proc/self/status'
# The view's FUSE programs hold none of them either: the ones the view starts (default) and the
# ones vu serves itself (VU_PVM_FUSE=monitor, started by vu outside the view). The program here
# prints its sets and exits without mounting.
mkdir "$work/mnt" && chown "$user" "$work/mnt"
for fuse in default monitor; do
  out=$(as_cap env VU_PVM_FUSE=$fuse $T "$VU" run --backend=pvm --net join:"$NS" \
    --fuse 'sh -c "grep -E ^Cap\(Prm\|Eff\|Inh\|Amb\) /proc/self/status >&2; exit 1"' "$work/mnt" -- true 2>&1)
  if [ "$(printf '%s\n' "$out" | grep -cE 'Cap(Prm|Eff|Inh|Amb):[[:space:]]+0+$')" = 4 ]; then
    ok "pvm: a FUSE program ($fuse) holds none of vu's capabilities"
  else bad "pvm: a FUSE program ($fuse) holds none of vu's capabilities" "got: $(printf '%s' "$out" | head -c 600)"; fi
done
joinprobe "the view's loopback is the namespace's" sh -c \
  'socat TCP-LISTEN:7301,bind=127.0.0.1,reuseaddr SYSTEM:"echo peer \$SOCAT_PEERADDR" & sleep 0.5; socat -u TCP:127.0.0.1:7301 -; wait'

# A TCP server in the namespace (root's), reached from the view at the namespace's address.
ip netns exec "$NS" timeout 60 socat TCP-LISTEN:7300,bind=10.77.0.1,reuseaddr,fork SYSTEM:'echo in the namespace to $SOCAT_PEERADDR' &
srv=$!
for _ in $(seq 30); do ip netns exec "$NS" ss -ltn 2>/dev/null | grep -q '10.77.0.1:7300 ' && break; sleep 0.1; done
joinprobe "a TCP server in the namespace" socat -u TCP:10.77.0.1:7300 -
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=

# The default network of a view started inside the namespace, whose ping_group_range (the
# namespace's own sysctl, not the host's) lets users have ICMP datagram sockets: libslirp then
# pings outside addresses with one (ns), and so does the monitor for the stand-in (pvm).
if ip netns exec "$NS" sysctl -qw net.ipv4.ping_group_range="0 2147483647" 2>/dev/null; then
  in_ns() { nsenter --net=/run/netns/"$NS" runuser -u "$user" -- env -i HOME="$work" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"; }
  P="| sed -E 's/time=[0-9.]+ ms/time=T/; s/, time [0-9]+ms//; /^rtt /d'"
  cmd="set -o pipefail; ping -c2 -i0.2 -W2 10.77.0.1 $P"
  want=$(in_ns $T "$VU" run --backend=ns -- bash -c "$cmd" 2>&1); want_rc=$?
  [ $have_ns = 1 ] || want=$(printf 'PING 10.77.0.1 (10.77.0.1) 56(84) bytes of data.\n64 bytes from 10.77.0.1: icmp_seq=1 ttl=255 time=T\n64 bytes from 10.77.0.1: icmp_seq=2 ttl=255 time=T\n\n--- 10.77.0.1 ping statistics ---\n2 packets transmitted, 2 received, 0% packet loss') want_rc=0
  got=$(in_ns $T "$VU" run --backend=pvm -- bash -c "$cmd" 2>&1); rc=$?
  if [ "$got" = "$want" ] && [ $rc = $want_rc ]; then ok "pvm: ping an outside address through the host's ICMP socket, as libslirp"
  else bad "pvm: ping outside through the host's ICMP socket" "status $rc (want $want_rc)" "got:  $got" "want: $want"; fi
else
  skipped "ping outside through the host's ICMP socket" "cannot set the namespace's ping_group_range"
fi

# Without the capability: refused before anything runs, naming cado (as on ns).
check_err "pvm: --net join: without CAP_SYS_ADMIN: status 125, naming cado" 125 'cado sys_admin' \
  as_user $T "$VU" run --backend=pvm --net join:"$NS" -- true
check_err "deny-userns: --net join: without CAP_SYS_ADMIN: status 125, naming cado" 125 'cado sys_admin' \
  as_user $T "$DENY" "$VU" run --net join:"$NS" -- true
check_err "pvm: --net join: a namespace that does not exist: status 2" 2 'no network namespace there' \
  as_cap $T "$VU" run --backend=pvm --net join:"$NS-none" -- true
# (vu-net and the watchdog of an ns view end just after vu; their parent reaps them)
for _ in $(seq 30); do left=$(pgrep -u "$user" -a || true); [ -z "$left" ] && break; sleep 0.1; done
[ -z "$left" ] && ok "nothing of the views left running" || bad "processes left" "$left"
summary
