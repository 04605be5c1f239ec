#!/usr/bin/env bash
# run_as_user.sh SCRIPT VU DENY_USERNS [HELPER…] — run an integration script as an unprivileged
# user; the script gets VU, DENY_USERNS and the helpers as arguments.
#
# As root (CI): prepare the test user and Debian's device modes (scripts/setup.sh --test-env),
# copy the binaries where that user can reach them, run SCRIPT as that user, and afterwards fail
# if the user has processes left or anything of vu's is still mounted. As any other user: run
# SCRIPT directly, as that user.
set -u
script=$1 vu=$2 deny=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
  exec bash "$script" "$vu" "$deny" "$@"
fi

user=${VU_TEST_USER:-vu-tester}
"$here/../../scripts/setup.sh" --test-env || { echo "SKIP: cannot prepare test user $user"; exit 77; }
bin=$(mktemp -d /tmp/vu-test-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
cp "$vu" "$bin/vu" && cp "$(dirname "$vu")/vu-net" "$bin/vu-net" && cp "$(dirname "$vu")/libvu-pvm-accel.so" "$(dirname "$vu")/vu-cowfs" "$bin/" && cp "$deny" "$bin/deny-userns" &&
  cp "$script" "$bin/test.sh" && cp "$here/harness.sh" "$here/cow_suite.sh" "$bin/" || exit 1
helpers=()
for h in "$@"; do
  # "skip:REASON" stands for a helper that could not be made; the script prints the SKIP line.
  case $h in skip:*) helpers+=("$h"); continue ;; esac
  cp "$h" "$bin/" || exit 1
  helpers+=("$bin/$(basename "$h")")
done
cp "$(dirname "$vu")/vu-unpack" "$bin/" 2>/dev/null  # --rootfs ARCHIVE only (the rootfs test says if it is missing)
cp "$(dirname "$vu")/vu-vstack" "$bin/" 2>/dev/null  # pvm views on VDE networks (net_vde_pvm says if it is missing)
ln -s vu "$bin/userbindmount"
ln -s vu "$bin/vdens"
chmod 755 "$bin" "$bin"/*

home=$(getent passwd "$user" | cut -d: -f6)
runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
  PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
  bash "$bin/test.sh" "$bin/vu" "$bin/deny-userns" "${helpers[@]}"
rc=$?

# A view must leave nothing behind. vu-net finishes closing its taps (~30 ms of kernel work)
# after vu has returned, and init reaps it: allow a bounded grace period.
left=""
for _ in $(seq 20); do
  left=$(pgrep -u "$user" -a || true)
  [ -z "$left" ] && break
  sleep 0.1
done
if [ -n "$left" ]; then
  echo "FAIL - processes of $user left behind:"; echo "$left"
  pkill -KILL -u "$user" || true
  [ $rc = 0 ] && rc=1
fi
stray=$(find /tmp /dev/shm -maxdepth 1 -user "$user" -name 'vu-resolv.*' 2>/dev/null || true)
if [ -n "$stray" ]; then
  echo "FAIL - files of vu left behind:"; echo "$stray"
  [ $rc = 0 ] && rc=1
fi
# vu's mounts left in the host's namespace: the test user's FUSE mounts (user_id=UID) or any
# other mount of vu's names — not another user's FUSE mounts (another run on the machine).
mounts=$(awk -v uid="$(id -u "$user")" '/vu-(test|probe|cow)|userbindmount|fuse/ && !/ - fusectl / &&
  (!/user_id=/ || $0 ~ ("user_id=" uid "(,|$)"))' /proc/self/mountinfo)
if [ -n "$mounts" ]; then
  echo "FAIL - mounts left behind in the host's mount namespace:"; echo "$mounts"
  [ $rc = 0 ] && rc=1
fi
exit $rc
