#!/usr/bin/env bash
# pjdfstest_run.sh SRC VU DENY_USERNS — builds pjdfstest from SRC (a copy, in a temporary
# directory; never in the project) and runs tests/integration/pjdfstest_test.sh through
# run_as_user.sh with the build as a tarball. SKIP (77) with the reason when SRC is missing or
# does not build. $PJDFSTEST_SRC overrides SRC.
set -u
src=${PJDFSTEST_SRC:-$1}
vu=$2 deny=$3
shift 3  # the rest: more helpers for the script
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$src/pjdfstest.c" ]; then
  echo "SKIP: pjdfstest source not found at $src (see shared/third_party/README.md; PJDFSTEST_SRC overrides)"
  exit 77
fi
for tool in autoreconf make cc prove; do
  command -v $tool >/dev/null || { echo "SKIP: $tool missing, pjdfstest cannot be built (scripts/setup.sh)"; exit 77; }
done
tmp=$(mktemp -d /tmp/vu-pjdfstest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/pjdfstest" && chmod -R u+w "$tmp/pjdfstest" || exit 1
if ! (cd "$tmp/pjdfstest" && autoreconf -ifs && ./configure && make pjdfstest) >"$tmp/build.log" 2>&1; then
  echo "SKIP: pjdfstest did not build:"; tail -20 "$tmp/build.log"; exit 77
fi
# PJDFSTEST_ONLY=DIR (e.g. chmod): only that part of the suite (the views' set-up is the same).
if [ -n "${PJDFSTEST_ONLY:-}" ]; then
  tar -C "$tmp" -cf "$tmp/pjdfstest.tar" pjdfstest/pjdfstest pjdfstest/tests/conf pjdfstest/tests/misc.sh "pjdfstest/tests/$PJDFSTEST_ONLY" || exit 1
else
  tar -C "$tmp" -cf "$tmp/pjdfstest.tar" pjdfstest/pjdfstest pjdfstest/tests || exit 1
fi
chmod 755 "$tmp" && chmod 644 "$tmp/pjdfstest.tar"
# PJDFSTEST_SCRIPT: the test script (pjdfstest_pvm_test.sh: pvm --cow against ns --cow);
# PJDFSTEST_ROOT_RUN=1: the script runs as root (it installs a filter as root, then runs its
# views as the test user itself: pfs_pjdfstest_image_test.sh).
if [ -n "${PJDFSTEST_ROOT_RUN:-}" ]; then
  bash "$here/$PJDFSTEST_SCRIPT" "$vu" "$deny" "$tmp/pjdfstest.tar" "$@"
  exit
fi
# pjdfstest_lib.sh (the runner the scripts share) goes along as a helper: run_as_user.sh copies
# it next to the script.
"$here/run_as_user.sh" "$here/${PJDFSTEST_SCRIPT:-pjdfstest_test.sh}" "$vu" "$deny" "$tmp/pjdfstest.tar" "$here/pjdfstest_lib.sh" "$@"
