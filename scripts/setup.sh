#!/usr/bin/env bash
# vu — install everything a build, the tests and the benchmarks need, on Debian 12.
#
#   scripts/setup.sh            install packages (as root, or through sudo), then build
#   scripts/setup.sh --deps     install packages only
#   scripts/setup.sh --bench    also install the peers measured by bench/ (bwrap, hyperfine, …)
#   scripts/setup.sh --test-env also prepare what the tests need as root: the unprivileged test
#                               user and Debian's 0666 modes on /dev/fuse and /dev/net/tun
#
# Every package the project uses is named here and nowhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS=(build-essential cmake ninja-build pkg-config
  libcli11-dev libtomlplusplus-dev libseccomp-dev libcap-dev libpam0g-dev libmd-dev nettle-dev
  libgtest-dev libgmock-dev libbenchmark-dev libvdeplug-dev liblwip-dev libslirp-dev libglib2.0-dev libfuse3-dev libarchive-dev nlohmann-json3-dev)
RUN_PKGS=(uidmap util-linux iproute2 iputils-ping procps vde2 vdeplug liblwip0 socat attr libcap2-bin pamtester strace clang libclang-rt-14-dev fuse3 fuse2fs squashfuse squashfs-tools e2fsprogs autoconf automake libtool busybox-static mmdebstrap musl-tools)
BENCH_PKGS=(hyperfine bubblewrap vdens libvdeplug-slirp iperf3 slirp4netns passt cado proot fakeroot gcc tar findutils fuse-overlayfs podman runc)

deps=1 build=1 bench=0 testenv=0
for a in "$@"; do
  case "$a" in
    --deps) build=0 ;;
    --bench) bench=1 ;;
    --test-env) testenv=1; build=0; deps=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ $deps = 1 ]; then
  pkgs=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
  [ $bench = 1 ] && pkgs+=("${BENCH_PKGS[@]}")
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ $testenv = 1 ]; then
  # The unprivileged user the integration tests run vu as, with a subordinate id range.
  user=${VU_TEST_USER:-vu-tester}
  if ! id "$user" >/dev/null 2>&1; then
    as_root useradd -m -s /bin/bash "$user"
  fi
  grep -q "^$user:" /etc/subuid 2>/dev/null || as_root usermod --add-subuids 200000-265535 "$user"
  grep -q "^$user:" /etc/subgid 2>/dev/null || as_root usermod --add-subgids 200000-265535 "$user"
  # Debian's default modes; some machines ship these 0600.
  for d in /dev/fuse /dev/net/tun; do [ -e "$d" ] && as_root chmod 0666 "$d"; done
fi

if [ $build = 1 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build
fi
