#!/usr/bin/env bash
# bench/net_throughput.sh [VU] — TCP throughput through a view's network, side by side with
# vdens, in one run (iperf3, SECS seconds, default 5, each bounded by timeout):
#   view -> host loopback through slirp   (vu --net slirp:allow-host-loopback vs vdens slirp://)
#   view -> view over one vde_switch       (vu --net vde://SW vs vdens vde://SW)
#   view -> host loopback, pasta's tap path (pasta --config-net, in a namespace made here whose
#                                           only route is an unattached tap: the gateway it maps
#                                           to loopback is 10.77.0.1, nothing can leave)
#   host loopback -> view, port forwards   (vu -p vs slirp4netns add_hostfwd vs pasta -t)
# Traffic goes only to 127.0.0.1 (through slirp) and between namespaces made here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
secs=${SECS:-5}
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools iperf3 vdens vde_switch slirp4netns unshare socat
have_pasta=1; command -v pasta >/dev/null || have_pasta=0
d=$(mktemp -d /tmp/vu-tput.XXXXXX)
start_switch "$d"
port=$((30000 + RANDOM % 20000))
T="timeout $((secs + 20))"

# view -> host loopback through slirp
slirp_client() { echo "ip addr add 10.0.2.15/24 dev vde0; ip link set vde0 up; ip route add default via 10.0.2.2; iperf3 -c 10.0.2.2 -p $port -t $secs"; }
$T iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null & sleep 0.3
vdens_slirp=$($T vdens slirp:// sh -c "$(slirp_client)" 2>&1 | mbits)
$T iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null & sleep 0.3
vu_slirp=$($T "$vu" run --net slirp:allow-host-loopback -- iperf3 -c 10.0.2.2 -p $port -t "$secs" 2>&1 | mbits)

# slirp4netns (its 10.0.2.2 is the host's loopback too), MTU 65520 as vu's, both ways
read -r s4_slirp s4_fwd <<< "$(slirp4netns_iperf3 "$d" $((port + 10)) "$secs")" || true

# pasta, view -> "host" through its tap path, all inside a namespace of ours (see above)
pasta_out=""
if [ $have_pasta = 1 ]; then
  pasta_out=$($T unshare -Urn sh -c "
    ip tuntap add t0 mode tap && ip addr add 10.77.0.2/24 dev t0 && ip link set t0 up && ip link set lo up &&
    ip route add default via 10.77.0.1 || exit 1
    iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null & sleep 0.3
    pasta --config-net --mtu 65520 -- iperf3 -c 10.77.0.1 -p $port -t $secs" 2>&1 | mbits) || true
fi

# host loopback -> view: port forwards (iperf3 server in the view, client on the host's 127.0.0.1)
hp=$((port + 1))
$T "$vu" run -p "127.0.0.1:$hp:5201" -- iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sleep 0.5
vu_fwd=$($T iperf3 -c 127.0.0.1 -p $hp -t "$secs" 2>&1 | mbits)
wait
pasta_fwd=""
if [ $have_pasta = 1 ]; then
  $T pasta --config-net -t "127.0.0.1/$((hp + 2)):5201" -- iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sleep 0.8
  pasta_fwd=$($T iperf3 -c 127.0.0.1 -p $((hp + 2)) -t "$secs" 2>&1 | mbits)
  wait
fi

# view -> view over vde_switch
server() { echo "ip addr add 10.9.0.1/24 dev vde0; ip link set vde0 up; exec iperf3 -s -1 -p 5201"; }
client() { echo "ip addr add 10.9.0.2/24 dev vde0; ip link set vde0 up; sleep 0.5; iperf3 -c 10.9.0.1 -p 5201 -t $secs"; }
$T vdens "vde://$SW" sh -c "$(server)" >/dev/null 2>&1 & sleep 0.5
vdens_vde=$($T vdens "vde://$SW" sh -c "$(client)" 2>&1 | mbits)
wait
$T "$vu" run --net "vde://$SW" --ip 10.9.0.1/24 -- iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sleep 0.5
vu_vde=$($T "$vu" run --net "vde://$SW" --ip 10.9.0.2/24 -- sh -c "sleep 0.5; iperf3 -c 10.9.0.1 -p 5201 -t $secs" 2>&1 | mbits)
wait

# view -> view over libvdeplug's switch:// (the server's view is the switch); vu also at MTU 9198,
# VDE's largest (jumbo frames: both ends are vu here; Debian's vde_switch drops frames over ~1514 B)
$T vdens "switch://$d/ns1" sh -c "$(server)" >/dev/null 2>&1 & sleep 0.5
vdens_sw=$($T vdens "vde://$d/ns1" sh -c "$(client)" 2>&1 | mbits)
wait
for m in 1500 9198; do
  $T "$vu" run --net "switch://$d/ns$m" --mtu $m --ip 10.9.0.1/24 -- iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sleep 0.5
  eval "vu_sw$m=\$($T \"\$vu\" run --net \"vde://$d/ns$m\" --mtu $m --ip 10.9.0.2/24 -- sh -c \"sleep 0.5; iperf3 -c 10.9.0.1 -p 5201 -t $secs\" 2>&1 | mbits)"
  wait
done

echo "TCP throughput, iperf3 ${secs} s, $(nproc) cores, kernel $(uname -r) (receiver Mbit/s)"
printf '%-44s %10s %8s\n' "path" "Mbit/s" "vs vdens"
printf '%-44s %10s %8s\n' "vdens slirp:// (view -> host loopback)" "${vdens_slirp:-fail}" "1.00"
printf '%-44s %10s %8s\n' "slirp4netns --mtu=65520 (view -> host lo)" "${s4_slirp:-fail}" "$(ratio "$s4_slirp" "$vdens_slirp")"
printf '%-44s %10s %8s\n' "vu --net slirp (view -> host loopback)" "${vu_slirp:-fail}" "$(ratio "$vu_slirp" "$vdens_slirp")"
printf '%-44s %10s %8s\n' "pasta --config-net (view -> host lo, tap)" "${pasta_out:-n/a}" "$(ratio "$pasta_out" "$vdens_slirp")"
echo "host loopback -> view (port forward)                    Mbit/s  vs slirp4netns"
printf '%-44s %10s %8s\n' "slirp4netns add_hostfwd (mtu 65520)" "${s4_fwd:-fail}" "1.00"
printf '%-44s %10s %8s\n' "vu -p 127.0.0.1:HP:5201 (slirp)" "${vu_fwd:-fail}" "$(ratio "$vu_fwd" "$s4_fwd")"
printf '%-44s %10s %8s\n' "pasta -t (splice between loopbacks)" "${pasta_fwd:-n/a}" "$(ratio "$pasta_fwd" "$s4_fwd")"
printf '%-44s %10s %8s\n' "vdens vde:// (view -> view, vde_switch)" "${vdens_vde:-fail}" "1.00"
printf '%-44s %10s %8s\n' "vu --net vde:// (view -> view, vde_switch)" "${vu_vde:-fail}" "$(ratio "$vu_vde" "$vdens_vde")"
printf '%-44s %10s %8s\n' "vdens switch:// (view -> view)" "${vdens_sw:-fail}" "1.00"
printf '%-44s %10s %8s\n' "vu --net switch:// (view -> view)" "${vu_sw1500:-fail}" "$(ratio "$vu_sw1500" "$vdens_sw")"
printf '%-44s %10s %8s\n' "vu --net switch:// --mtu 9198" "${vu_sw9198:-fail}" "$(ratio "$vu_sw9198" "$vdens_sw")"
