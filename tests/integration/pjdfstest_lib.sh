# pjdfstest_lib.sh — the one pjdfstest runner of the three pjdfstest suites, sourced after
# harness.sh by pjdfstest_test.sh (integration.pjdfstest), pjdfstest_pvm_test.sh
# (integration.pjdfstest_pvm) and pfs_pjdfstest_image_test.sh (integration.pjdfstest_image):
#
#   suite=$work/pjdfstest/tests pjd_dirs="chmod mkdir" pjd_streams=3   # "" = every directory
#   pjd_run NAME DIR CMD… --   runs the suite in DIR inside the view CMD… starts (its last
#                              word, --, is where `sh -c RUNNER` goes), results in $work/res-NAME
#   pjd_table NAME…            passed/failed subtests per directory of the suite, and in total
#   pjd_same REF NAME [KNOWN]  ok when NAME passes and fails exactly what REF does, but for the
#                              subtests whose "FILE N" line matches KNOWN (grep -E)
#   pjd_complete NAME          ok when every .t file ran its whole plan in NAME
#
# In the view the .t files run in $pjd_streams parallel streams (the suite mostly sleeps: a second
# per ctime check), each .t in a directory of its own one level below DIR (t.STREAM.N, mode 0755:
# the suite runs some calls as other ids), so what a failed one leaves (a mode, a name) never
# decides the next ones. A result line is "FILE N ok" or "FILE N fail" per subtest (# TODO ones left out),
# and "FILE * incomplete (ran N of M)" for a file that did not run its plan.
pjd_dirs=${pjd_dirs:-}
pjd_streams=${pjd_streams:-3}
pjd_timeout=${pjd_timeout:-1500}  # seconds for one view
pjd_runner='
stream() {
  i=0
  for t in $(cd "$2" && if [ -n "$5" ]; then for d in $5; do [ -d "$d" ] && find "./$d" -name "*.t"; done; else find . -name "*.t"; fi | sort); do
    i=$((i + 1))
    [ $((i % $4)) = "$3" ] || continue
    w="$1/t.$3.$i"
    mkdir -m 755 "$w" && cd "$w" || exit 1
    out=$(sh "$2/$t" 2>&1)
    cd "$1" || exit 1
    # One awk a file (in a pvm view every process is a traced exec); fflush: a line is one
    # write (the streams share the result file).
    printf "%s\n" "$out" | awk -v t="$t" "
      /^1\.\.[0-9]+\$/ && plan == \"\" { plan = substr(\$0, 4) }
      /^(not )?ok [0-9]+/ { n++; if (\$0 ~ /# TODO/) next
        if (\$1 == \"not\") print t, \$3, \"fail\"; else print t, \$2, \"ok\"; fflush() }
      END { if (plan == \"\" || n != plan + 0) print t, \"* incomplete (ran \" n + 0 \" of \" (plan == \"\" ? \"?\" : plan) \")\" }"
  done
}
k=0
while [ $k -lt "$3" ]; do stream "$1" "$2" $k "$3" "$4" & k=$((k + 1)); done
wait
'

pjd_run() {  # NAME DIR CMD… --
  local name=$1 dir=$2; shift 2
  local start=$SECONDS
  timeout -k 10 "$pjd_timeout" "$@" sh -c "$pjd_runner" pjdfstest "$dir" "$suite" "$pjd_streams" "$pjd_dirs" \
    >"$work/res-$name" 2>"$work/err-$name"
  local rc=$?
  echo "pjdfstest $name: $(grep -c ' ok$' "$work/res-$name") passed, $(grep -c ' fail$' "$work/res-$name") failed," \
    "$(grep -c ' \* incomplete' "$work/res-$name") files incomplete (vu status $rc, $((SECONDS - start)) s)"
}

pjd_table() {  # NAME…
  local d v dirs=$pjd_dirs
  [ -n "$dirs" ] || dirs=$(cd "$suite" && ls -d */ | tr -d /)
  printf '%-12s' "directory"; for v in "$@"; do printf '%20s' "$v pass/fail"; done; echo
  for d in $dirs; do
    grep -q "^\./$d/" "$work"/res-* || continue
    printf '%-12s' "$d"
    for v in "$@"; do
      if grep -q "^\./$d/" "$work/res-$v"; then printf '%20s' "$(grep -c "^\./$d/.* ok$" "$work/res-$v")/$(grep -c "^\./$d/.* fail$" "$work/res-$v")"
      else printf '%20s' -; fi  # not run in that view
    done
    echo
  done
  printf '%-12s' total; for v in "$@"; do printf '%20s' "$(grep -c ' ok$' "$work/res-$v")/$(grep -c ' fail$' "$work/res-$v")"; done; echo
}

pjd_same() {  # REF NAME [KNOWN]
  local ref=$1 v=$2 known=${3:-'^$'} diffs all
  all=$(diff <(sort "$work/res-$ref") <(sort "$work/res-$v") | grep -c '^>')
  diffs=$(diff <(sort "$work/res-$ref" | grep -Ev "$known") <(sort "$work/res-$v" | grep -Ev "$known") | grep '^[<>]')
  local what="pjdfstest: $v passes and fails exactly what $ref does"
  [ "${3:-}" ] && what="$what, but the known ($all lines differ)"
  if [ -z "$diffs" ]; then ok "$what"
  else bad "$what" "$(echo "$diffs" | grep -c .) differences, e.g.:" "$(echo "$diffs" | head -30 | tr '\n' ' ')" \
    "$(head -c 600 "$work/err-$v")"; fi
}

pjd_complete() {  # NAME
  if grep -q ' \* incomplete' "$work/res-$1"; then bad "pjdfstest: every file ran its plan in the $1 view" "$(grep ' \* incomplete' "$work/res-$1" | head)"
  else ok "pjdfstest: every file ran its plan in the $1 view"; fi
}
