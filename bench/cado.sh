#!/usr/bin/env bash
# bench/cado.sh — vu's cado side by side with Debian's cado 0.9.5 (as root; runs the commands
# as $VU_TEST_USER). Both read the same /etc/cado.conf and the same scado spool file (the
# formats are the same), and each must print the same thing before it is timed:
#   caprint                                    the command alone
#   cado -S net_raw /usr/bin/caprint           Debian's (copies the binary to /tmp, forks a
#                                              watchdog, hashes it)
#   vu's cado -S net_raw /usr/bin/caprint      (a sealed memfd, hashed and executed)
# hyperfine -N, RUNS runs (default 50). Everything it writes is restored or removed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
runs=${RUNS:-50}
[ "$(id -u)" = 0 ] || { echo "bench/cado.sh: run as root (it installs cado)" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "bench/cado.sh: hyperfine missing (scripts/setup.sh --bench)" >&2; exit 2; }
[ -x /usr/bin/cado ] || { echo "bench/cado.sh: Debian's cado missing (scripts/setup.sh --bench)" >&2; exit 2; }
user=${VU_TEST_USER:-vu-tester}
"$here/../scripts/setup.sh" --test-env
tmp=$(mktemp -d /tmp/vu-bench-cado.XXXXXX)
inst=$(mktemp -d /usr/local/lib/vu-cado-bench.XXXXXX)
chmod 755 "$inst"
spool=/var/spool/cado/$user
for f in /etc/cado.conf "$spool"; do [ -e "$f" ] && cp -a "$f" "$tmp/$(basename "$f").orig"; done
cleanup() {
  for f in /etc/cado.conf "$spool"; do
    if [ -e "$tmp/$(basename "$f").orig" ]; then cp -a "$tmp/$(basename "$f").orig" "$f"; else rm -f "$f"; fi
  done
  /usr/bin/cado -s 2>/dev/null || true
  rm -rf "$tmp" "$inst"
}
trap cleanup EXIT
printf 'net_raw : %s\n' "$user" > /etc/cado.conf
chmod 600 /etc/cado.conf
/usr/bin/cado -s
"$here/../scripts/install-cado.sh" --prefix "$inst" --build "$build" >/dev/null
printf '/usr/bin/caprint : net_raw : %s\n' "$(sha256sum /usr/bin/caprint | cut -d' ' -f1)" > "$spool"
chown "$user" "$spool"; chmod 600 "$spool"
as() { runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME=/tmp "$@"; }
a=$(as /usr/bin/cado -S net_raw /usr/bin/caprint </dev/null)
b=$(as "$inst/bin/cado" -S net_raw /usr/bin/caprint </dev/null)
[ "$a" = cap_net_raw ] && [ "$b" = "$a" ] || { echo "outputs differ: Debian '$a', vu '$b'" >&2; exit 1; }
chmod 777 "$tmp"
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME=/tmp hyperfine -N --warmup 3 --runs "$runs" --export-json "$tmp/h.json" \
  -n caprint "/usr/bin/caprint" \
  -n "Debian cado -S" "/usr/bin/cado -S net_raw /usr/bin/caprint" \
  -n "vu cado -S" "$inst/bin/cado -S net_raw /usr/bin/caprint" >/dev/null
python3 - "$tmp/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["Debian cado -S"]["mean"]
print("cado -S net_raw /usr/bin/caprint (hyperfine -N, mean ± sd)")
for name in ("caprint", "Debian cado -S", "vu cado -S"):
    x = r[name]
    print(f"  {name:16s} {x['mean']*1000:7.2f} ± {x['stddev']*1000:5.2f} ms   {x['mean']/base:5.2f}x Debian's")
PY
