#!/usr/bin/env bash
# bench/net_forward.sh [VU] — many clients at once through a -p TCP forward: per-connection
# latency (connect, 64-byte request, reply, close; p50/p99/max) and the host's ListenOverflows
# (TcpExtListenOverflows, host-wide, counted over the run) for CLIENTS (20 50) concurrent clients,
# CONNS (40) connections each. The view runs a threaded echo server on port 8080; everything is
# on the host's loopback. Issue 12 (item 9): libslirp's listen backlog of 1 overflowed at 20.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools python3
port=$((30000 + RANDOM % 20000))
server='import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4096)
def serve(c):
    with c:
        d = c.recv(64)
        if d: c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()'
client='import socket, sys, threading, time
port, clients, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lat, errors, lock = [], [0], threading.Lock()
def run():
    for _ in range(conns):
        t = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
                c.sendall(b"x" * 64)
                if len(c.recv(64)) == 0: raise OSError("eof")
            with lock: lat.append(time.perf_counter() - t)
        except OSError:
            with lock: errors[0] += 1
ts = [threading.Thread(target=run) for _ in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
print(f"{clients:3d} clients x {conns}: p50 {q(0.5):7.1f} ms  p99 {q(0.99):7.1f} ms  max {q(1.0):7.1f} ms  errors {errors[0]}")'
overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' /proc/net/netstat; }
timeout 300 "$vu" run -p "$port:8080" -- python3 -c "$server" & v=$!
# slirp accepts on the host port before the view listens: wait until a request is answered.
for _ in $(seq 100); do
  python3 -c 'import socket, sys; c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1); c.sendall(b"x"); sys.exit(0 if c.recv(1) else 1)' "$port" 2>/dev/null && break
  sleep 0.1
done
echo "-p forward, $(nproc) cores, kernel $(uname -r), backlog $(ss -Hltn "sport = :$port" | awk '{print $3}')"
for n in ${CLIENTS:-20 50}; do
  before=$(overflows)
  python3 -c "$client" "$port" "$n" "${CONNS:-40}" | tr -d '\n'
  echo "  ListenOverflows +$(($(overflows) - before))"
done
kill $v 2>/dev/null; wait $v 2>/dev/null || true
