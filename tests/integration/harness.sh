# harness.sh — sourced by the integration and conformance scripts: the counters, ok/bad/skipped
# lines, expect/check/check_err, a work directory (the current directory) removed on exit, and the closing summary.
pass=0 fail=0 skip=0
work=$(mktemp -d "${TMPDIR:-/tmp}/vu-test.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; shift; printf '    %s\n' "$@"; }
skipped() { skip=$((skip + 1)); echo "SKIP - $1: $2"; }

# expect NAME WANT_RC GOT_RC [DETAIL…] — a status already collected.
expect() {
  local name=$1 want=$2 got=$3; shift 3
  if [ "$want" = "$got" ]; then ok "$name"; else bad "$name" "status $got (want $want)" "$@"; fi
}
# check NAME EXPECTED_STATUS EXPECTED_STDOUT CMD... — stdout compared exactly.
check() {
  local name=$1 want_rc=$2 want_out=$3; shift 3
  local out rc
  out=$("$@" 2>"$work/stderr"); rc=$?
  if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ]; then ok "$name"
  else bad "$name" "status $rc (want $want_rc)" "stdout: $out" "want:   $want_out" "stderr: $(head -c 600 "$work/stderr")"; fi
}
# check_err NAME WANT_RC REGEX CMD… — runs CMD; its status and a match of REGEX (grep -E) in its
# stderr are asserted. stdout and stderr stay in $work/stdout and $work/stderr.
check_err() {
  local name=$1 want_rc=$2 re=$3; shift 3
  local rc
  "$@" >"$work/stdout" 2>"$work/stderr"; rc=$?
  if [ "$rc" = "$want_rc" ] && grep -qE -- "$re" "$work/stderr"; then ok "$name"
  else bad "$name" "status $rc (want $want_rc)" "stderr: $(head -c 600 "$work/stderr")" "want match: $re"; fi
}

# start_vde_switch — a vde_switch of this test's own in $work/sw (SKIP, 77, when it cannot
# start); sets sw and swpid. At the script's exit (its EXIT trap, set here) the pids in views[]
# and the switch are killed and $work removed.
start_vde_switch() {
  sw="$work/sw"
  vde_switch -s "$sw" -p "$work/sw.pid" -d >/dev/null 2>&1 </dev/null
  for _ in $(seq 50); do [ -S "$sw/ctl" ] && [ -s "$work/sw.pid" ] && break; sleep 0.1; done
  [ -S "$sw/ctl" ] || { echo "SKIP: vde_switch did not start"; exit 77; }
  swpid=$(cat "$work/sw.pid")
  views=()
  trap stop_vde_switch EXIT
}
stop_vde_switch() {
  local p
  for p in "${views[@]}"; do kill "$p" 2>/dev/null; done
  kill "$swpid" 2>/dev/null
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}

# The last line every script prints; its status is the script's.
summary() {
  echo "$pass passed, $fail failed, $skip skipped"
  [ $fail = 0 ]
}

# need_static_busybox — SKIP (77) unless busybox is installed and static (busybox-static: the
# rootfs suites copy it into the trees they make); sets bb to its path.
need_static_busybox() {
  bb=$(command -v busybox || true)
  if [ -z "$bb" ] || ! ldd "$bb" 2>&1 | grep -q 'not a dynamic'; then
    echo "SKIP: no static busybox (apt-get install busybox-static)"; exit 77
  fi
}

# ---- root-run suites (the hosts' filters are installed as root; every view runs as the test user)
harness_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# root_run_setup WHY PROGRAMS VU HELPER… — a root-run suite's preamble: SKIP (77) unless root
# (WHY: what root is needed for), unless the test user ($VU_TEST_USER, vu-tester) can be
# prepared (scripts/setup.sh --test-env) and unless each of PROGRAMS (one word, space-separated)
# is installed; then $work is the user's, and VU, its companions found beside it (vu-net, the
# libraries, vu-cowfs) and each HELPER are copied into $work/bin, where the test user can reach
# them (a clone may live in a private directory). Sets user, uid, bin, VU, VIEW_ENV (the
# environment every view gets: append to it before use, e.g. XDG_RUNTIME_DIR).
root_run_setup() {
  local why=$1 progs=$2 p
  shift 2
  if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root ($why)"; exit 77; fi
  user=${VU_TEST_USER:-vu-tester}
  "$harness_dir/../../scripts/setup.sh" --test-env || { echo "SKIP: cannot prepare $user"; exit 77; }
  for p in $progs; do
    command -v "$p" >/dev/null || { echo "SKIP: $p missing (scripts/setup.sh installs it)"; exit 77; }
  done
  uid=$(id -u "$user")
  chown "$user" "$work"
  bin=$work/bin
  mkdir "$bin"
  cp "$@" "$bin/" || exit 1
  for p in vu-net libvu-pvm-accel.so libvu-fuse-shim.so vu-cowfs vu-vstack; do
    [ -e "$(dirname "$1")/$p" ] && { cp "$(dirname "$1")/$p" "$bin/" || exit 1; }
  done
  chmod 755 "$bin" "$bin"/*
  VU=$bin/vu
  VIEW_ENV=(env -i HOME="$work" PATH=/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 TZ=UTC)
}
# as_user CMD… — CMD as the test user, in VIEW_ENV.
as_user() { runuser -u "$user" -- "${VIEW_ENV[@]}" "$@"; }
# pvmB VU-RUN-ARGS… — `vu run --net host …` in environment B: user namespaces denied by a filter
# applied without no_new_privs (deny-userns-host, installed as root, then the test user's ids),
# the setuid fusermount3 works. pvmA: in a container (deny-container: every mount denied to
# everyone, setuid helpers too); the monitor serves FUSE itself.
pvmB() { "$bin/deny-userns-host" "$user" "${VIEW_ENV[@]}" "$VU" run --net host "$@"; }
pvmA() { "$bin/deny-container" "$user" "${VIEW_ENV[@]}" "$VU" run --net host "$@"; }
# fuse_left — how many FUSE mounts the test user has (compared with the count at the start;
# another user's, e.g. another suite's run on the machine, are not this run's).
fuse_left() { grep -E ' - fuse' /proc/self/mountinfo | grep -c "user_id=$uid,"; }
