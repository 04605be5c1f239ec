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

# The last line every script prints; its status is the script's.
summary() {
  echo "$pass passed, $fail failed, $skip skipped"
  [ $fail = 0 ]
}
