# harness.sh — sourced by the integration and conformance scripts: the counters, ok/bad/skipped
# lines, a work directory (the current directory) removed on exit, and the closing summary.
pass=0 fail=0 skip=0
work=$(mktemp -d "${TMPDIR:-/tmp}/vu-test.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; shift; printf '    %s\n' "$@"; }
skipped() { skip=$((skip + 1)); echo "SKIP - $1: $2"; }

# The last line every script prints; its status is the script's.
summary() {
  echo "$pass passed, $fail failed, $skip skipped"
  [ $fail = 0 ]
}
