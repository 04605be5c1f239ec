#!/usr/bin/env bash
# rootfs_run.sh VU DENY_USERNS CACHE [SUITE [ARG…]] — runs SUITE (rootfs_test.sh; rootfs_pvm_test.sh)
# as the test user (run_as_user.sh)
# with a Debian root tree: a tarball made once by mmdebstrap (--variant=apt, the machine's own
# apt sources and release: the Debian mirror is all it needs) and kept in CACHE (the build
# folder), so later runs take seconds. When it cannot be made (no mmdebstrap, not root, no
# mirror) the suite still runs and its Debian part prints SKIP with the reason.
set -u
vu=$1 deny=$2 cache=$3 suite=${4:-rootfs_test.sh}
shift $(( $# < 4 ? $# : 4 ))
here=$(cd "$(dirname "$0")" && pwd)
codename=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")
tar=$cache/debian-$codename-apt.tar
debian=""
if [ -f "$tar" ] && [ -s "$tar" ]; then
  debian=$tar
elif ! command -v mmdebstrap >/dev/null; then
  debian="skip:mmdebstrap is missing (scripts/setup.sh installs it)"
elif [ "$(id -u)" != 0 ]; then
  debian="skip:the Debian tree is made as root (mmdebstrap --mode=root); run once as root or put one at $tar"
else
  sources=""
  for s in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$s" ] && { sources=$s; break; }
  done
  mkdir -p "$cache" && rm -rf "$tar.tmp" "$tar"
  echo "making a Debian $codename tree (mmdebstrap --variant=apt${sources:+, sources from $sources}), once: $tar"
  if timeout 900 mmdebstrap --quiet --variant=apt --mode=root --format=tar "$codename" "$tar.tmp" $sources \
       > "$cache/mmdebstrap.log" 2>&1 && mv "$tar.tmp" "$tar"; then
    debian=$tar
  else
    debian="skip:mmdebstrap could not make the tree: $(grep -E '^E:' "$cache/mmdebstrap.log" | tail -1) (log: $cache/mmdebstrap.log)"
    rm -rf "$tar.tmp"
  fi
fi
if [ "${debian#skip:}" = "$debian" ]; then
  # Where the test user can read it (the build folder may not be).
  tmp=$(mktemp -d /tmp/vu-rootfs-debian.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  cp "$debian" "$tmp/debian.tar" && chmod 755 "$tmp" && chmod 644 "$tmp/debian.tar" || exit 1
  debian=$tmp/debian.tar
fi
"$here/run_as_user.sh" "$here/$suite" "$vu" "$deny" "$debian" "$@"
