#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build the cado parsers' libFuzzer targets with clang
# (ASan + UBSan) and run each for SECONDS (default 15) over the corpus kept in the repository
# (tests/fuzz/corpus/NAME; new inputs go to a scratch directory, not into the repo: add the
# interesting ones by hand). Exit 77 (skip) without clang's fuzzer runtime; 1 on a crash.
set -u
secs=${1:-15}
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../cado
command -v clang >/dev/null || { echo "SKIP: clang is not installed (scripts/setup.sh installs it)"; exit 77; }
out=$(mktemp -d /tmp/vu-fuzz.XXXXXX)
trap 'rm -rf "$out"' EXIT
rc=0
for t in cado_conf scado; do
  if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$src" \
      "$here/${t}_fuzz.c" "$src/cado_parse.c" -lcap -o "$out/$t" 2>"$out/$t.log"; then
    if grep -q 'libclang_rt.fuzzer\|fsanitize=fuzzer' "$out/$t.log"; then echo "SKIP: clang has no libFuzzer runtime (libclang-rt-14-dev)"; exit 77; fi
    cat "$out/$t.log"; exit 1
  fi
  corpus=${t%_conf}; [ "$t" = cado_conf ] && corpus=conf
  mkdir -p "$out/new-$t"
  echo "fuzzing $t for ${secs}s (corpus tests/fuzz/corpus/$corpus)"
  if ! "$out/$t" -max_total_time="$secs" -max_len=4096 -timeout=5 -print_final_stats=1 \
        "$out/new-$t" "$here/corpus/$corpus" >"$out/$t.run" 2>&1; then
    tail -40 "$out/$t.run"; rc=1
  else
    grep -E 'stat::number_of_executed_units|Done' "$out/$t.run" | tail -2
  fi
done
exit $rc
