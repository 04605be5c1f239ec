#!/usr/bin/env bash
# scripts/install-cado.sh — install vu's cado suite with its privileges (as root).
#
#   scripts/install-cado.sh [--prefix DIR] [--build DIR] [--pam-dir DIR]
#
# As rd235/cado's install: a system user and group _cado; cado owned by _cado, setuid
# (mode 4755), then `cado -s` gives it file capabilities (permitted only) for every capability
# /etc/cado.conf names plus CAP_DAC_READ_SEARCH — run `cado -s` again after editing cado.conf;
# scado setgid _cado (2755); the spool /var/spool/cado root:_cado 0770; caprint and cadrop
# plain. /etc/pam.d/cado is created (auth from common-auth) unless it exists. With --pam-dir,
# pam_newnet.so, pam_usernet.so and pam_groupnet.so go there too (Debian:
# /lib/x86_64-linux-gnu/security). Defaults: --prefix /usr/local, --build build.
set -euo pipefail
prefix=/usr/local build=build pamdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --pam-dir) pamdir=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install-cado.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install-cado.sh: run as root" >&2; exit 1; }
for b in cado scado caprint cadrop; do
  [ -x "$build/bin/$b" ] || { echo "install-cado.sh: $build/bin/$b missing: build first (scripts/setup.sh)" >&2; exit 1; }
done
getent group _cado >/dev/null || groupadd --system _cado
getent passwd _cado >/dev/null || useradd --system -g _cado -s /usr/sbin/nologin -d /nonexistent -M _cado
install -d -o root -g _cado -m 0770 /var/spool/cado
install -d "$prefix/bin"
install -o _cado -g root -m 4755 "$build/bin/cado" "$prefix/bin/cado"
install -o root -g _cado -m 2755 "$build/bin/scado" "$prefix/bin/scado"
install -o root -g root -m 0755 "$build/bin/caprint" "$build/bin/cadrop" "$prefix/bin/"
[ -e /etc/cado.conf ] || install -o root -g root -m 0600 /dev/null /etc/cado.conf
[ -e /etc/pam.d/cado ] || printf '# PAM for cado and scado (vu): the caller proves who they are.\n@include common-auth\n' > /etc/pam.d/cado
"$prefix/bin/cado" -s
if [ -n "$pamdir" ]; then
  install -d "$pamdir"
  install -o root -g root -m 0644 "$build"/lib/security/pam_{newnet,usernet,groupnet}.so "$pamdir/"
fi
echo "cado installed in $prefix/bin (capabilities: $(getcap "$prefix/bin/cado" 2>/dev/null | cut -d' ' -f2-))"
