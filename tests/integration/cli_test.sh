#!/usr/bin/env bash
# cli_test.sh VU DENY_USERNS — the issue's command lines, run as an unprivileged user.
# Each check asserts output and exit status; the last line is "N passed, N failed, N skipped".
set -u
VU=$1
DENY=$2
# The harness lies next to this script (copied there by run_as_user.sh) or in tests/integration.
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1

uid=$(id -u)
echo "running as uid $uid ($(id -un))"
if [ "$uid" = 0 ]; then echo "SKIP: these tests must run unprivileged"; exit 77; fi

if ! "$VU" run -- true 2>"$work/stderr"; then
  if grep -q 'user namespaces are not available' "$work/stderr"; then
    echo "SKIP: user namespaces are not available here: $(cat "$work/stderr")"; exit 77
  fi
fi

echo "nameserver 192.0.2.53" > "$work/r"
mkdir -p "$work/data" && echo hello > "$work/data/f"

# --- The issue's examples ---------------------------------------------------------------------
check "run -- id keeps the caller's ids" 0 "$(id)" "$VU" run -- id
check "--root maps the caller to 0" 0 "0" "$VU" run --root -- id -u
check "--root: gid 0 too, setgroups denied" 0 "0 deny" "$VU" run --root -- sh -c 'echo "$(id -g) $(cat /proc/self/setgroups)"'
check "--bind a file over /etc/resolv.conf" 0 "nameserver 192.0.2.53" "$VU" run --bind "$work/r:/etc/resolv.conf" -- cat /etc/resolv.conf
check_err "--bind :ro refuses writes (EROFS)" 1 "Read-only file system" "$VU" run --bind "$work/data:/mnt:ro" -- touch /mnt/x
[ -e "$work/data/x" ] && bad "ro bind wrote through to the host" || ok "ro bind left the source untouched"
check "--bind rw writes reach the source" 0 "hello" "$VU" run --bind "$work/data:/mnt" -- sh -c 'cp /mnt/f /mnt/g && cat /mnt/g'
[ -f "$work/data/g" ] && ok "rw bind wrote through" || bad "rw bind did not write through"
check "--tmpfs on a missing target, --hostname" 0 "box" "$VU" run --tmpfs /scratch --hostname box -- sh -c 'hostname; ls /scratch'
[ -e /scratch ] && bad "/scratch was created on the host" || ok "missing target not created on the host"
check "hostname unchanged outside" 0 "$(hostname)" hostname
check "exit status propagates" 7 "" "$VU" run -- sh -c 'exit 7'
check "killed by signal N gives 128+N" 143 "" "$VU" run -- sh -c 'kill -TERM $$'
check "userbindmount-compatible" 0 "nameserver 192.0.2.53" "$VU" userbindmount "$work/r" /etc/resolv.conf -- cat /etc/resolv.conf
out=$("$VU" probe); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -qE '^user namespaces +yes' && echo "$out" | grep -q '^ptrace'; then ok "vu probe reports facts, exit 0"
else bad "vu probe" "status $rc" "$out"; fi

for dev in "/dev/fuse:FUSE in a user namespace" "/dev/net/tun:tun/tap in a user namespace"; do
  node=${dev%%:*} fact=${dev#*:}
  if [ ! -c "$node" ]; then skipped "probe: $fact" "$node does not exist on this machine"; continue; fi
  if [ ! -r "$node" ] || [ ! -w "$node" ]; then skipped "probe: $fact" "$node is not 0666 here"; continue; fi
  echo "$out" | grep -qE "^$fact +yes" && ok "probe: $fact" || bad "probe: $fact" "$(echo "$out" | grep "^$fact")"
done

# --- Mount plans --------------------------------------------------------------------------------
check "missing file target is created (file bind)" 0 "nameserver 192.0.2.53" "$VU" run --bind "$work/r:/opt/vu-new/deep/conf" -- cat /opt/vu-new/deep/conf
check "mirrored parent keeps its entries" 0 "yes" "$VU" run --tmpfs /vu-scratch -- sh -c 'test -d /usr/bin && test -e /etc/passwd && echo yes'
check_err "mirrored / is read-only" 1 "Read-only file system" "$VU" run --tmpfs /vu-scratch -- touch /vu-newfile
check "nested tmpfs in a created tmpfs" 0 "c" "$VU" run --tmpfs /vu-a --tmpfs /vu-a/b/c -- ls /vu-a/b
check "mounts stack in command-line order" 0 "hello" "$VU" run --tmpfs /mnt --bind "$work/data:/mnt/d" -- cat /mnt/d/f
check "relative source, after a mirrored /" 0 "hello" "$VU" run --tmpfs /vu-x --bind data:/mnt -- cat /mnt/f
check "cwd is kept" 0 "$work" "$VU" run -- pwd
check "--chdir" 0 "/usr" "$VU" run --chdir /usr -- pwd
check "--setenv/--unsetenv" 0 "1:" "$VU" run --setenv A=1 --unsetenv HOME -- sh -c 'echo "$A:${HOME-}"'
check "--net none: only lo, up" 0 "lo UP" "$VU" run --net none -- sh -c 'for i in /sys/class/net/*; do n=${i##*/}; s=$(cat $i/operstate); f=$(cat $i/flags); [ $((f & 1)) = 1 ] && s=UP; echo "$n $s"; done'
cat > "$work/view.toml" <<TOML
# a view file: keys are vu run's long options
command = ["sh", "-c", "echo \$(id -u) \$(hostname) \$(cat /etc/resolv.conf)"]
root = true
hostname = "fromfile"
bind = ["$work/r:/etc/resolv.conf"]
TOML
check "view file fills the same spec" 0 "0 fromfile nameserver 192.0.2.53" "$VU" run -f "$work/view.toml"
check "command line overrides the file" 0 "0 cli nameserver 192.0.2.53" "$VU" run -f "$work/view.toml" --hostname cli
check "--explain prints the plan and runs nothing" 0 "1" sh -c "'$VU' run --explain --tmpfs /x -- touch '$work/ran' | grep -c '^mounts .*tmpfs /x'"
[ -e "$work/ran" ] && bad "--explain ran the command" || ok "--explain did not run the command"

# --- Bad input: one clear message, distinct status, nothing left --------------------------------
check_err "nonexistent bind source" 2 "bind /nonexistent/src -> /mnt: source: No such file" "$VU" run --bind /nonexistent/src:/mnt -- true
check_err "relative target" 2 "target 'mnt' is not an absolute path" "$VU" run --bind "$work:mnt" -- true
check_err "unknown option" 2 "--frob" "$VU" run --frob -- true
check_err "unknown command" 2 "unknown command 'frob'" "$VU" frob
printf 'root = \n' > "$work/bad.toml"
check_err "malformed view file" 2 "bad.toml:1:.*malformed" "$VU" run -f "$work/bad.toml" -- true
printf 'bnid = ["/a:/b"]\n' > "$work/typo.toml"
check_err "unknown key in view file" 2 "typo.toml:1: unknown key 'bnid'" "$VU" run -f "$work/typo.toml" -- true
check_err "command not found" 127 "'no-such-cmd-vu': command not found" "$VU" run -- no-such-cmd-vu
check_err "command not executable" 126 "Permission denied" "$VU" run -- "$work/r"
check_err "bind type mismatch" 125 "hint: the source is a directory and the target a file" "$VU" run --bind "$work/data:/etc/passwd" -- true
check_err "missing --chdir" 125 "chdir /nonexistent" "$VU" run --chdir /nonexistent -- true
check "--backend=pvm is accepted (no_new_privs shows the filter)" 0 "1" "$VU" run --backend=pvm -- sh -c 'grep NoNewPrivs /proc/self/status | cut -f2'

# --- Network (issue 3). Traffic only to loopback and to namespaces made here. ---------------
if [ ! -r /dev/net/tun ] || [ ! -w /dev/net/tun ]; then
  skipped "network" "/dev/net/tun is not usable by $(id -un) (Debian's default mode is 0666)"
elif ! command -v socat >/dev/null || ! command -v ip >/dev/null; then
  skipped "network" "socat or ip (iproute2) is missing"
else
  T="timeout 20"
  port=$((20000 + RANDOM % 20000))
  check "default network is slirp: address, route, resolv.conf" 0 "10.0.2.100/24 via 10.0.2.2 nameserver 10.0.2.3" \
    $T "$VU" run -- sh -c 'echo "$(ip -o -4 addr show vde0 | awk "{print \$4}") via $(ip route | awk "/default/{print \$3}") $(cat /etc/resolv.conf)"'
  check "--net host: the host's interfaces" 0 "$(ls /sys/class/net | tr '\n' ' ')" $T "$VU" run --net host -- sh -c "ls /sys/class/net | tr '\n' ' '"
  check "--net none: lo only (ip link)" 0 "lo" $T "$VU" run --net none -- sh -c "ip -o link | awk -F': ' '{print \$2}'"
  # vu starts vu-net before it has read a view file; one that says net = none makes it exit
  # unused (run_as_user.sh fails the run if it lingers).
  printf 'net = ["none"]\n' > "$work/nonet.toml"
  check "view file with net = none: lo only" 0 "lo" $T "$VU" run -f "$work/nonet.toml" -- sh -c "ip -o link | awk -F': ' '{print \$2}'"
  check "--net slirp:allow-host-loopback parses before the early vu-net gets it" 0 "vde0" $T "$VU" run --net=slirp:allow-host-loopback -- sh -c "ip -o link | awk -F': ' '/vde0/{print \$2}'"
  check "two uplinks: vde0 and vde1" 0 "lo vde0 vde1" $T "$VU" run --net slirp --net "switch://$work/esw0" -- sh -c "ip -o link | awk -F': ' '{print \$2}' | tr '\n' ' ' | sed 's/ \$//'"
  # view -> host loopback, only when asked
  $T socat -u TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr OPEN:"$work/got",creat,trunc & srv=$!
  sleep 0.3
  check "slirp:allow-host-loopback reaches the host's 127.0.0.1" 0 "" $T "$VU" run --net slirp:allow-host-loopback -- bash -c "echo view-to-host > /dev/tcp/10.0.2.2/$port"
  wait $srv
  [ "$(cat "$work/got" 2>/dev/null)" = view-to-host ] && ok "host received the view's bytes" || bad "view -> host loopback" "got: $(cat "$work/got" 2>/dev/null)"
  # 16 MiB view -> host through slirp: every byte arrives, and slirp's ACKs were coalesced
  head -c 16777216 /dev/urandom > "$work/blob"
  $T socat -u TCP-LISTEN:$((port + 4)),bind=127.0.0.1,reuseaddr OPEN:"$work/blob.got",creat,trunc & srv=$!
  sleep 0.3
  $T "$VU" run --net slirp:allow-host-loopback --net-stats -- bash -c "cat '$work/blob' > /dev/tcp/10.0.2.2/$((port + 4))" 2>"$work/blob.err"
  wait $srv
  cmp -s "$work/blob" "$work/blob.got" && ok "16 MiB view -> host through slirp, byte for byte" || bad "16 MiB through slirp" "$(ls -l "$work/blob.got" 2>&1)"
  grep -Eq "; [1-9][0-9]* ACKs coalesced" "$work/blob.err" && ok "…with slirp's ACKs coalesced (--net-stats)" || bad "ACK coalescing" "$(cat "$work/blob.err")"
  rm -f "$work/blob" "$work/blob.got"
  check_err "host loopback is unreachable by default" 1 "unreachable|refused" $T "$VU" run --net slirp -- bash -c "echo x > /dev/tcp/10.0.2.2/$port"
  # host -> view port forward. slirp accepts on the host port at once, before the view's server
  # listens (early connections are reset): resend until the view has the bytes.
  $T "$VU" run --net slirp -p $((port + 1)):8080 -- socat -u TCP-LISTEN:8080 OPEN:"$work/fwd",creat,trunc & v=$!
  for _ in $(seq 100); do
    echo host-to-view | socat -u STDIN TCP:127.0.0.1:$((port + 1)) 2>/dev/null
    sleep 0.1
    [ -s "$work/fwd" ] && break
  done
  wait $v
  [ "$(cat "$work/fwd" 2>/dev/null)" = host-to-view ] && ok "-p forwards host 127.0.0.1:PORT into the view" || bad "-p forward" "got: $(cat "$work/fwd" 2>/dev/null)"
  # IPv6: fd00::100/64 with a route via fd00::2; [::1] of the host when asked; [::1] forwards
  if [ -e /proc/sys/net/ipv6 ]; then
    check "slirp IPv6: fd00::100/64, default via fd00::2" 0 "fd00::100/64 fd00::2" $T "$VU" run -- sh -c 'echo $(ip -6 -o addr show vde0 scope global | awk "{print \$4}") $(ip -6 route | awk "/^default/{print \$3}")'
    $T socat -u TCP6-LISTEN:$((port + 3)),bind=[::1],reuseaddr OPEN:"$work/got6",creat,trunc & srv=$!
    sleep 0.3
    check "view -> host [::1] through fd00::2 (allow-host-loopback)" 0 "" $T "$VU" run --net slirp:allow-host-loopback -- bash -c "echo v6-to-host > /dev/tcp/fd00::2/$((port + 3))"
    wait $srv
    [ "$(cat "$work/got6" 2>/dev/null)" = v6-to-host ] && ok "host received over IPv6" || bad "view -> host IPv6" "got: $(cat "$work/got6" 2>/dev/null)"
    $T "$VU" run -p "[::1]:$((port + 4)):8080" -- socat -u TCP6-LISTEN:8080 OPEN:"$work/fwd6",creat,trunc & v=$!
    for _ in $(seq 100); do
      echo host-to-view6 | socat -u STDIN "TCP6:[::1]:$((port + 4))" 2>/dev/null
      sleep 0.1
      [ -s "$work/fwd6" ] && break
    done
    wait $v
    [ "$(cat "$work/fwd6" 2>/dev/null)" = host-to-view6 ] && ok "-p [::1]:PORT forwards into the view over IPv6" || bad "-p IPv6 forward" "got: $(cat "$work/fwd6" 2>/dev/null)"
  else
    skipped "slirp IPv6" "this kernel has no IPv6"
  fi
  $T socat TCP-LISTEN:$((port + 2)),bind=127.0.0.1,reuseaddr /dev/null & busy=$!
  sleep 0.3
  check_err "-p on a busy host port: clear error" 125 "port $((port + 2))/tcp: Address already in use" "$VU" run --net slirp -p $((port + 2)):80 -- true
  kill $busy 2>/dev/null; wait $busy 2>/dev/null
  check_err "--net-stats prints per-interface counters" 0 "vu: net: vde0 \(slirp\): to view [0-9]+ frames" $T "$VU" run --net slirp --net-stats -- true
  check_err "unknown VNL scheme" 125 "frob://x: Protocol not supported" "$VU" run --net frob://x -- true
  check_err "no switch at the path" 125 "open VDE network vde://$work/nosw" "$VU" run --net "vde://$work/nosw" -- true
  check "--mtu reaches the interface" 0 "9000" $T "$VU" run --net "switch://$work/mtusw" --mtu 9000 -- cat /sys/class/net/vde0/mtu
  check_err "--mtu above what VDE carries" 2 "VDE networks carry at most 9198" "$VU" run --net "switch://$work/mtusw" --mtu 20000 -- true
  check_err "-p without slirp is a usage error" 2 "port forwards need a slirp network" "$VU" run --net none -p 1:2 -- true
  # malformed frames from the uplink are dropped and counted: a ptp:// peer (vde_plug, VDE
  # stream framing: 2-byte length + frame) sends a 5-byte runt, then a valid 60-byte frame.
  if command -v vde_plug >/dev/null; then
    $T "$VU" run --net "ptp://$work/ptp" --net-stats -- sleep 2 2>"$work/ptp.err" & v=$!
    sleep 0.7
    { printf '\x00\x05hello\x00\x3c'; head -c 60 /dev/zero | tr '\0' '\377'; sleep 0.5; } |
      timeout 5 vde_plug "ptp://$work/ptp" >/dev/null 2>&1
    wait $v
    grep -q 'to view 1 frames 60 B.*dropped 1 runt' "$work/ptp.err" && ok "runt from the uplink dropped and counted, valid frame delivered" ||
      bad "runt handling" "$(cat "$work/ptp.err")"
  else
    skipped "runt frames" "vde_plug (vdeplug) is not installed"
  fi
  # two views on one network: libvdeplug's embedded switch, then Debian's vde_switch
  $T "$VU" run --net "switch://$work/sw1" --ip 10.0.1.1/24 -- socat -u TCP-LISTEN:9000 OPEN:"$work/sw1.out",creat,trunc & a=$!
  sleep 0.5
  check "view to view over switch://" 0 "" $T "$VU" run --net "vde://$work/sw1" --ip 10.0.1.2/24 -- bash -c 'for i in 1 2 3 4 5 6 7 8 9 10; do (echo over-switch > /dev/tcp/10.0.1.1/9000) 2>/dev/null && exit 0; sleep 0.2; done; exit 1'
  wait $a
  [ "$(cat "$work/sw1.out" 2>/dev/null)" = over-switch ] && ok "bytes crossed the embedded switch" || bad "switch:// transfer" "got: $(cat "$work/sw1.out" 2>/dev/null)"
  if command -v vde_switch >/dev/null; then
    vde_switch -s "$work/sw2" -d -p "$work/sw2.pid" && sleep 0.3
    $T "$VU" run --net "vde://$work/sw2" --ip 10.0.2.1/24 -- socat -u TCP-LISTEN:9000 OPEN:"$work/sw2.out",creat,trunc & a=$!
    sleep 0.5
    check "view to view over vde_switch" 0 "" $T "$VU" run --net "vde://$work/sw2" --ip 10.0.2.9/24 -- bash -c 'for i in 1 2 3 4 5 6 7 8 9 10; do (echo over-vde > /dev/tcp/10.0.2.1/9000) 2>/dev/null && exit 0; sleep 0.2; done; exit 1'
    wait $a
    [ "$(cat "$work/sw2.out" 2>/dev/null)" = over-vde ] && ok "bytes crossed vde_switch" || bad "vde_switch transfer" "got: $(cat "$work/sw2.out" 2>/dev/null)"
    kill "$(cat "$work/sw2.pid")" 2>/dev/null
  else
    skipped "vde_switch" "vde2 is not installed"
  fi
fi

# --- vdens compatibility (shared/reference/originals.md §11, V1-V7) ----------------------------
VD="$(dirname "$VU")/vdens"
if [ -r /dev/net/tun ] && [ -w /dev/net/tun ]; then
  check "vdens V1: - true" 0 "" "$VD" - true
  check "vdens V1: - false propagates 1" 1 "" "$VD" - false
  check "vdens V3: own uid map, setgroups deny" 0 "$uid $uid 1 deny" "$VD" - sh -c 'echo $(cat /proc/self/uid_map) $(cat /proc/self/setgroups)'
  check "vdens V4: CapAmb 3c00" 0 "CapAmb:	0000000000003c00" "$VD" - grep CapAmb /proc/self/status
  check "vdens V4: -s adds sys_admin" 0 "CapAmb:	0000000000203c00" "$VD" -s - grep CapAmb /proc/self/status
  check "vdens V5: lo and vde0, both down" 0 "lo: <LOOPBACK> vde0: <BROADCAST,MULTICAST>" "$VD" "switch://$work/vsw" sh -c "ip -o link | awk '{printf \"%s %s \", \$2, \$3}' | sed 's/ \$//'"
  check "vdens -m: vde0 vde1" 0 "lo: vde0: vde1:" "$VD" -m "switch://$work/vm1" "switch://$work/vm2" -- sh -c "ip -o link | awk '{print \$2}' | tr '\n' ' ' | sed 's/ \$//'"
  check "vdens -i eth: eth0" 0 "lo: eth0:" "$VD" -i eth "switch://$work/vi" sh -c "ip -o link | awk '{print \$2}' | tr '\n' ' ' | sed 's/ \$//'"
  check "vdens V6: -R writes one nameserver per address" 0 "nameserver 192.0.2.1 nameserver 2001:db8::1" "$VD" -R 192.0.2.1,2001:db8::1 - sh -c 'echo $(cat /etc/resolv.conf)'
  check "vdens V7: -H sets the view's host name" 0 "box" "$VD" -H box - hostname
  check "vdens: exit status propagates with a network (divergence)" 3 "" "$VD" "switch://$work/vx" sh -c 'exit 3'
  check "vu vdens subcommand" 0 "$uid" "$VU" vdens - id -u
  check_err "vdens: failures exit 1, with the reason" 1 "frob://x: Protocol not supported" "$VD" frob://x true
  check_err "vdens: unknown option exits 1" 1 "unknown option" "$VD" --bogus
else
  skipped "vdens compatibility" "/dev/net/tun is not usable here"
fi
check "--cap raises ambient capabilities" 0 "CapAmb:	0000000000003000" "$VU" run --net none --cap net_admin,net_raw -- grep CapAmb /proc/self/status
check_err "--cap with an unknown name" 2 "unknown capability 'frob'" "$VU" run --cap frob -- true

# --- Identity with subordinate ids --------------------------------------------------------------
if grep -q "^$(id -un):" /etc/subuid 2>/dev/null && command -v newuidmap >/dev/null; then
  out=$("$VU" run --map-users --root -- cat /proc/self/uid_map 2>&1); rc=$?
  lines=$(echo "$out" | wc -l)
  if [ $rc = 0 ] && [ "$lines" = 2 ] && echo "$out" | head -1 | grep -qE "^ +0 +$uid +1$"; then ok "--map-users maps own uid and the subuid range"
  else bad "--map-users" "status $rc" "$out"; fi
else
  skipped "--map-users" "no /etc/subuid entry for $(id -un) or no newuidmap"
fi

# --- Supervisor ---------------------------------------------------------------------------------
"$VU" run -- sh -c 'trap "exit 42" TERM; sleep 30 & wait' & vpid=$!
sleep 0.5; kill -TERM $vpid; wait $vpid; rc=$?
[ $rc = 42 ] && ok "SIGTERM to vu is forwarded to the command" || bad "signal forwarding" "status $rc (want 42)"
"$VU" run -- sh -c 'echo $$ > '"$work/pid"'; exec sleep 30' & vpid=$!
for _ in $(seq 50); do [ -s "$work/pid" ] && break; sleep 0.1; done
kill -KILL $vpid; wait $vpid 2>/dev/null
cpid=$(cat "$work/pid" 2>/dev/null)
gone=no
for _ in $(seq 50); do kill -0 "$cpid" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
[ $gone = yes ] && ok "the view dies with the supervisor (SIGKILL to vu)" || { bad "view survived its supervisor" "pid $cpid"; kill -KILL "$cpid"; }

# --- userbindmount compatibility ----------------------------------------------------------------
check "userbindmount -v says what it does" 0 "nameserver 192.0.2.53" "$VU" userbindmount -v "$work/r" /etc/resolv.conf -- cat /etc/resolv.conf
grep -q "^mounting $work/r on /etc/resolv.conf" "$work/stderr" && grep -q '^creating a user_namespace' "$work/stderr" && ok "userbindmount -v lines" || bad "userbindmount -v lines" "$(cat "$work/stderr")"
check "userbindmount: - reads stdin" 0 "from stdin" sh -c "echo 'from stdin' | '$VU' userbindmount - /etc/hostname -- cat /etc/hostname"
check "userbindmount: quoted literal source" 0 "literal" "$VU" userbindmount '"literal"' /etc/hostname -- cat /etc/hostname
check "userbindmount via argv[0] link" 0 "nameserver 192.0.2.53" "$(dirname "$VU")/userbindmount" "$work/r" /etc/resolv.conf -- cat /etc/resolv.conf
check "userbindmount -s gives CAP_SYS_ADMIN ambient" 0 "0000000000200000" "$VU" userbindmount -s -- sh -c 'grep CapAmb /proc/self/status | cut -f2'
check_err "userbindmount: odd paths is a usage error" 2 "no target" "$VU" userbindmount -n "$work/r" -- true
check_err "userbindmount: failed exec is not success" 127 "no-such-cmd" "$VU" userbindmount -n -- no-such-cmd
check "userbindmount: status propagates" 3 "" "$VU" userbindmount -- sh -c 'exit 3'
ls /tmp/userbindmount* >/dev/null 2>&1 && bad "userbindmount left temporary files" || ok "userbindmount left no temporary files"

# --- User namespaces denied, as Docker's seccomp profile does -----------------------------------
out=$("$DENY" "$VU" probe); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -qE '^user namespaces +no .*EPERM.*seccomp'; then ok "probe under a userns-denying seccomp filter says why"
else bad "probe under deny-userns" "status $rc" "$out"; fi
check_err "--backend=ns fails and says why" 125 "user namespaces are not available: clone\(CLONE_NEWUSER\): EPERM .*seccomp.*--backend=ns" "$DENY" "$VU" run --backend=ns -- true
check "auto falls back to the partial-VM backend" 0 "nameserver 192.0.2.53" "$DENY" "$VU" run --bind "$work/r:/etc/resolv.conf" -- cat /etc/resolv.conf
check_err "auto says why it uses pvm (-v)" 0 "user namespaces are not available.*using the partial-VM backend" "$DENY" "$VU" run -v -- true
check_err "pvm refuses what it cannot give, with both reasons" 125 "user namespaces are not available.*--map-users needs user namespaces" "$DENY" "$VU" run --map-users -- true
check_err "pvm refuses --cap" 125 "--cap needs user namespaces" "$VU" run --backend=pvm --cap net_admin -- true
check "vu probe names pvm when namespaces are denied" 0 "vu run would use                 the pvm backend (partial virtual machine: seccomp user notification and ptrace)" sh -c '"$1" "$2" probe | grep "^vu run would use"' _ "$DENY" "$VU"
check "--explain shows the pvm plan" 0 "backend   pvm" sh -c '"$1" run --backend=pvm --explain -- true | head -1 | cut -c1-13' _ "$VU"
check_err "userbindmount under the filter reports unshare" 1 "unshare .*Operation not permitted" "$DENY" "$VU" userbindmount -n -- true

summary
