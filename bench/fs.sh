#!/usr/bin/env bash
# bench/fs.sh [VU] — writing and reading 256 MiB through a copy-on-write layer, side by side
# with direct access and the peers, in one run; fractions of direct access (1.00 = as fast).
#
# Runs as an unprivileged user (as root it re-runs itself as $VU_TEST_USER). Each figure is
# dd's own time (view start-up excluded), the median of RUNS runs (default 3):
#   write  dd if=/dev/zero of=DIR/f bs=1M count=256 (then close; no fsync: the page cache is
#          the point — what the layer adds, not what the disk costs)
#   read   dd if=DIR/f of=/dev/null bs=1M, in a fresh view (the FUSE page cache is cold; the
#          host's is warm, as for direct access)
#   tar x  tar xf of 5000 small files (0.5-4 KiB, 50 directories) into DIR, timed in the view
#          (metadata: lookups, creates, small writes)
# Set-ups: direct (the host directory); vu --cow :kernel (overlayfs in the user namespace);
# vu --cow :fuse (vu-cowfs) and its variants: with the writeback cache, without splice,
# with splice for requests too, multithreaded; vu --backend=pvm --cow (the monitor's own
# copy-on-write, pvm/cow.h: data never traps, path calls do), also without the in-process fast
# path (pvm/accel.c: it makes tar x's opens and futimens in a directory only the layer has);
# fuse-overlayfs started by vu --fuse; fuse2fs on an ext4 image (vu --mount image:), also on the
# pvm backend (--backend=pvm: environment B, the setuid fusermount3, issue 16), whose ratio to
# ns's closes the table. Then pvm environment A rows (see the end; FS_BENCH_ONLY=pvm-A for
# only those). Needs squashfuse too.
# FS_BENCH_ONLY=REGEX measures only the set-ups whose name matches (direct always).
# COWFS_OLD=FILE adds "vu-cowfs (old)": that vu-cowfs binary (VU_COWFS), e.g. the one before a
# change, in the same run.
# Needs: fuse-overlayfs, fuse2fs, mkfs.ext4 (scripts/setup.sh --bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-3}

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
export PATH=$PATH:/usr/sbin:/sbin
require_tools fuse-overlayfs fuse2fs mkfs.ext4

# On tmpfs (/dev/shm) when there is one: a disk's own moods (here the first write after a
# sync often took 10x longer) would drown what the layers cost; FS_BENCH_DIR overrides.
base=${FS_BENCH_DIR:-$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp)}
tmp=$(mktemp -d "$base/vu-bench-fs.XXXXXX"); trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/low/sub" "$tmp/mnt"
echo x > "$tmp/low/sub/seed"

# dd's "… copied, 0.123 s, …" → 0.123
dd_seconds() { sed -n 's/.* copied, \([0-9.e-]*\) s,.*/\1/p' | tail -1; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
write_cmd='dd if=/dev/zero of="$D/f" bs=1M count=256 2>&1'
read_cmd='dd if="$D/f" of=/dev/null bs=1M 2>&1'
tar_cmd='mkdir "$D/tx.$$" && s=$(date +%s.%N) && tar xf "$T" --no-same-owner -C "$D/tx.$$" && e=$(date +%s.%N) && echo "$s $e" | awk '"'"'{ printf "x copied, %.6f s, x\n", $2 - $1 }'"'"''
# The small files, made once.
mkdir -p "$tmp/src"
for d in $(seq 50); do
  mkdir -p "$tmp/src/d$d"
  for f in $(seq 100); do head -c $(( (d * 131 + f * 37) % 3584 + 512 )) /dev/urandom > "$tmp/src/d$d/f$f"; done
done
tar -C "$tmp/src" -cf "$tmp/small.tar" . && rm -rf "$tmp/src"

# The set-ups: NAME|DIR|VIEW-PREFIX (VIEW-PREFIX runs a shell command, its last argument, there).
setups=(
  "direct|$tmp/low|env"
  "vu --cow (kernel overlayfs)|$tmp/low|$vu run --net none --cow $tmp/layer:$tmp/low:kernel --"
  "~warm-up|$tmp/low|$vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu --cow (vu-cowfs)|$tmp/low|$vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu-cowfs, writeback cache|$tmp/low|env VU_COWFS_WRITEBACK=1 $vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu-cowfs, no splice|$tmp/low|env VU_COWFS_SPLICE=none $vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu-cowfs, splice requests too|$tmp/low|env VU_COWFS_SPLICE=all $vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu-cowfs, multithreaded|$tmp/low|env VU_COWFS_THREADS=1 $vu run --net none --cow $tmp/layer:$tmp/low:fuse --"
  "vu pvm --cow (the monitor's)|$tmp/low|$vu run --backend=pvm --net host --cow $tmp/layer:$tmp/low --"
  "vu pvm --cow, no fast path|$tmp/low|env VU_PVM_ACCEL_LIB= $vu run --backend=pvm --net host --cow $tmp/layer:$tmp/low --"
  "fuse-overlayfs|$tmp/mnt|$vu run --net none --fuse fuse-overlayfs\ -o\ lowerdir=$tmp/low,upperdir=$tmp/up,workdir=$tmp/work $tmp/mnt --"
  "fuse2fs (ext4 image)|/mnt|$vu run --net none --root --mount image:$tmp/disk.img:/mnt --"
  "pvm-B fuse2fs (ext4 image)|/mnt|$vu run --backend=pvm --net host --root --mount image:$tmp/disk.img:/mnt --"
)
if [ -n "${COWFS_OLD:-}" ]; then
  setups=("${setups[@]:0:4}" "vu-cowfs (old)|$tmp/low|env VU_COWFS=$COWFS_OLD $vu run --net none --cow $tmp/layer:$tmp/low:fuse --" "${setups[@]:4}")
fi
# FS_BENCH_ONLY=REGEX: only the set-ups whose name matches (direct access always runs).
if [ -n "${FS_BENCH_ONLY:-}" ]; then
  kept=()
  for s in "${setups[@]}"; do [[ "${s%%|*}" == direct || "${s%%|*}" == "~warm-up" || "${s%%|*}" =~ $FS_BENCH_ONLY ]] && kept+=("$s"); done
  setups=("${kept[@]}")
fi
truncate -s 600M "$tmp/disk.img" && mkfs.ext4 -q "$tmp/disk.img"
reset_setup() {
  chmod -R u+rwx "$tmp/layer" "$tmp/up" "$tmp/work" 2>/dev/null || true
  rm -rf "$tmp/layer" "$tmp/up" "$tmp/work" "$tmp/low/f" "$tmp/low"/tx.*
  mkdir -p "$tmp/up" "$tmp/work"
  sync  # start each write with no dirty pages of an earlier one
}
# Round-robin: each round measures every set-up once, so a slow spell of this shared machine
# spreads over all of them instead of landing on one. "~warm-up" is not reported: the first FUSE
# set-up after the in-kernel ones was up to 2x slower on writes, whichever it was.
declare -A WS RS TS W R X
for round in $(seq "$runs"); do
  for s in "${setups[@]}"; do
    IFS='|' read -r name dir prefix <<<"$s"
    reset_setup
    eval "set -- $prefix"
    WS[$name]+="$("$@" sh -c "D=$dir; $write_cmd" | dd_seconds) "
    RS[$name]+="$("$@" sh -c "D=$dir; $read_cmd" | dd_seconds) "
    rm -f "$tmp/low/f"
    TS[$name]+="$("$@" sh -c "D=$dir; T=$tmp/small.tar; $tar_cmd" | dd_seconds) "
  done
done
for s in "${setups[@]}"; do
  IFS='|' read -r name _ <<<"$s"
  [ -n "${BENCH_TRACE:-}" ] && echo "$name: write ${WS[$name]}; read ${RS[$name]}" >&2
  W[$name]=$(printf '%s\n' ${WS[$name]} | median)
  R[$name]=$(printf '%s\n' ${RS[$name]} | median)
  X[$name]=$(printf '%s\n' ${TS[$name]} | median)
done

mb() { awk -v s="$1" 'BEGIN { if (s > 0) printf "%7.0f", 256 / s; else printf "%7s", "?" }'; }
fps() { awk -v s="$1" 'BEGIN { if (s > 0) printf "%7.0f", 5000 / s; else printf "%7s", "?" }'; }
ratio() { awk -v d="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%5.2f", d / s; else printf "%5s", "?" }'; }
echo "dd 256 MiB, bs=1M, and tar x of 5000 small files; median of $runs; MiB/s or files/s, and fraction of direct access"
printf '%-32s %8s %6s %8s %6s %8s %6s\n' "set-up" "write" "" "read" "" "tar x" ""
for s in "${setups[@]}"; do
  IFS='|' read -r n _ <<<"$s"
  [ "${n#\~}" = "$n" ] || continue
  printf '%-32s %8s %6s %8s %6s %8s %6s\n' "$n" "$(mb "${W[$n]}")" "$(ratio "${W[direct]}" "${W[$n]}")" \
    "$(mb "${R[$n]}")" "$(ratio "${R[direct]}" "${R[$n]}")" "$(fps "${X[$n]}")" "$(ratio "${X[direct]}" "${X[$n]}")"
done
# pvm-B against ns, the same FUSE program (issue 16's target: >= 0.9).
for pair in "pvm-B fuse2fs (ext4 image)|fuse2fs (ext4 image)"; do
  p=${pair%%|*} q=${pair#*|}
  [ -n "${W[$p]:-}" ] && [ -n "${W[$q]:-}" ] || continue
  printf '%-32s %8s %6s %8s %6s %8s %6s\n' "$p / ns" "" "$(ratio "${W[$q]}" "${W[$p]}")" "" "$(ratio "${R[$q]}" "${R[$p]}")" "" "$(ratio "${X[$q]}" "${X[$p]}")"
done

# pvm, environment A (issue 16): no mount of any kind; the monitor serves the FUSE program
# (pvm/fuse_client.h), next to the ns backend's kernel FUSE for the same program and image.
#   write  dd … conv=fsync into an ext4 image (fuse2fs): the fsync is where pvm-A writes the
#          file back through FUSE (the shadow takes the write at native speed), so both rows
#          count the trip through fuse2fs
#   read   dd of that file in a fresh view (pvm-A: the first open reads it whole through FUSE)
#   find   find over a squashfs image of /usr/share/doc-like files (squashfuse), and cat of
#          every file (fresh views; pvm-A reads the whole tree's metadata at start-up)
# Each figure is the whole `vu run` (start-up and the end's write-back included), median of RUNS.
[ -z "${FS_BENCH_ONLY:-}" ] || [[ pvm-A =~ $FS_BENCH_ONLY ]] || exit 0
command -v squashfuse >/dev/null && command -v mksquashfs >/dev/null || { echo "(no squashfuse: pvm-A rows skipped)"; exit 0; }
mkdir -p "$tmp/sq"
tar -C "$tmp/sq" -xf "$tmp/small.tar"
mksquashfs "$tmp/sq" "$tmp/small.sqfs" -quiet -noappend >/dev/null && rm -rf "$tmp/sq"
now() { date +%s.%N; }
timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || echo "(failed: $*)" >&2; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.6f\n", e - s }'; }
declare -A PW PR PF PC
for round in $(seq "$runs"); do
  for b in ns pvm-A; do
    if [ $b = ns ]; then pre=(env "$vu" run --backend=ns --net none); else pre=(env VU_PVM_FUSE=monitor "$vu" run --backend=pvm --net host); fi
    truncate -s 600M "$tmp/a.img" && mkfs.ext4 -q -F -E root_owner=$(id -u):$(id -g) "$tmp/a.img"
    PW[$b]+="$(timed "${pre[@]}" --mount image:$tmp/a.img:/mnt -- dd if=/dev/zero of=/mnt/f bs=1M count=256 conv=fsync) "
    PR[$b]+="$(timed "${pre[@]}" --mount image:$tmp/a.img:/mnt -- dd if=/mnt/f of=/dev/null bs=1M) "
    PF[$b]+="$(timed "${pre[@]}" --mount image:$tmp/small.sqfs:/opt/s -- find /opt/s) "
    PC[$b]+="$(timed "${pre[@]}" --mount image:$tmp/small.sqfs:/opt/s -- sh -c 'find /opt/s -type f -exec cat {} + | wc -c') "
    rm -f "$tmp/a.img"
  done
done
echo
echo "pvm environment A (monitor-served FUSE) next to ns (kernel FUSE), whole vu run in seconds, median of $runs"
printf '%-8s %12s %12s %12s %12s\n' "backend" "write 256M" "read 256M" "find sqfs" "cat sqfs"
for b in ns pvm-A; do
  printf '%-8s %12s %12s %12s %12s\n' $b "$(printf '%s\n' ${PW[$b]} | median)" "$(printf '%s\n' ${PR[$b]} | median)" \
    "$(printf '%s\n' ${PF[$b]} | median)" "$(printf '%s\n' ${PC[$b]} | median)"
done
