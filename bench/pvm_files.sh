#!/usr/bin/env bash
# bench/pvm_files.sh [VU] — a file-heavy job (a C project's configure, make and make check,
# then tar, find and grep over a header tree) natively, under the ns backend and under the pvm
# backend with and without mounts, side by side in one run; ratios to native.
#
# Runs as an unprivileged user (as root it re-runs itself as $VU_TEST_USER). The job needs
# nothing from the network: the project is generated here (autoconf makes its configure once,
# outside the timing), its sources are bound at /mnt and it builds in /scratch:
#   mkdir /scratch/b; cd /scratch/b; /mnt/configure (40 header and function checks, each a
#   compile and often a link: thousands of execve, each compiler looking up hundreds of
#   absolute paths); make (30 files); make check (a test that makes, stats, renames and removes
#   2000 files); tar of /usr/include/linux and c++ into /scratch and out again; find; grep -r;
#   rm -r.
# Set-ups, round-robin (each round runs every set-up once, so a slow spell of this shared
# machine spreads over all of them), RUNS rounds (default 3), medians of wall and CPU time:
#   native                       the job on $tmp/src and $tmp/scratch (in /dev/shm)
#   vu ns --bind --tmpfs         the job on /mnt and /scratch (a mount namespace)
#   vu pvm                       the job on $tmp/src and $tmp/scratch (no mounts: no path map)
#   vu pvm --bind --tmpfs        the job on /mnt and /scratch (the path map; issue 13's target:
#                                <= 1.15x native)
#   vu pvm --bind --tmpfs, no fast path  (VU_PVM_ACCEL_LIB=)
# BENCH_OLD_VU=DIR adds "old" rows: DIR holds another build's vu and libvu-pvm-accel.so (a copy
# of build/bin before a change), measured in the same rounds.
# VU_PVM_STATS=1 on one more run of the pvm set-up prints the monitor's counters (what trapped,
# how often, and how long the monitor worked on it).
# Needs: gcc, make, autoconf, tar, findutils, grep (scripts/setup.sh --bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vu=$(readlink -f "${1:-$here/../build/bin/vu}")
runs=${RUNS:-3}

. "$here/common.sh"
reexec_unprivileged "$0" "$vu"
require_tools gcc make autoconf tar find grep

# In RAM (/dev/shm) when there is one, like the views' --tmpfs (ns: a tmpfs; pvm: a directory in
# /dev/shm): a disk's own moods would otherwise weigh on the set-ups without a tmpfs only.
base=$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp)
tmp=$(mktemp -d "$base/vu-bench-files.XXXXXX"); trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
src=$tmp/src
mkdir -p "$src" "$tmp/scratch"

# ---- the project ----------------------------------------------------------------------------
headers="stdio.h stdlib.h string.h strings.h unistd.h fcntl.h errno.h limits.h stdint.h inttypes.h
  sys/stat.h sys/types.h sys/time.h sys/wait.h sys/socket.h sys/mman.h sys/ioctl.h sys/uio.h
  netinet/in.h arpa/inet.h netdb.h pthread.h dirent.h dlfcn.h math.h time.h locale.h wchar.h
  signal.h poll.h"
funcs="strdup strndup memmem strlcpy getline fork vfork mmap munmap poll ppoll select pipe2 dup3
  openat fstatat mkdirat unlinkat renameat renameat2 readlinkat faccessat utimensat posix_spawn
  clock_gettime nanosleep getrandom memfd_create"
{
  echo 'AC_INIT([vubench], [1.0])'
  echo 'AC_CONFIG_SRCDIR([main.c])'
  echo 'AC_CONFIG_HEADERS([config.h])'
  echo 'AC_PROG_CC'
  echo "AC_CHECK_HEADERS([$(echo $headers)])"
  echo "AC_CHECK_FUNCS([$(echo $funcs)])"
  echo 'AC_CHECK_SIZEOF([long])'
  echo 'AC_CHECK_SIZEOF([off_t])'
  echo 'AC_CONFIG_FILES([Makefile])'
  echo 'AC_OUTPUT'
} > "$src/configure.ac"
echo '#undef HAVE_STDIO_H' > "$src/config.h.in"
for h in $headers; do echo "#undef HAVE_$(echo "$h" | tr 'a-z/.' 'A-Z__')"; done >> "$src/config.h.in"
for f in $funcs; do echo "#undef HAVE_$(echo "$f" | tr 'a-z' 'A-Z')"; done >> "$src/config.h.in"
printf '#undef SIZEOF_LONG\n#undef SIZEOF_OFF_T\n#undef PACKAGE_NAME\n#undef PACKAGE_STRING\n#undef PACKAGE_TARNAME\n#undef PACKAGE_VERSION\n#undef PACKAGE_BUGREPORT\n#undef PACKAGE_URL\n#undef STDC_HEADERS\n' >> "$src/config.h.in"
objs=""
for i in $(seq 30); do
  {
    echo '#include "config.h"'
    for h in stdio.h stdlib.h string.h unistd.h fcntl.h errno.h sys/stat.h sys/types.h dirent.h time.h; do
      echo "#include <$h>"
    done
    echo "int part$i(const char* dir) { char p[512]; struct stat st; int n = 0;"
    echo "  for (int k = 0; k < 20; ++k) { snprintf(p, sizeof p, \"%s/p$i.%d\", dir, k);"
    echo "    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644); if (fd < 0) return -1;"
    echo "    if (write(fd, p, strlen(p)) < 0) n = -1; close(fd);"
    echo "    if (stat(p, &st) == 0 && st.st_size > 0) ++n; }"
    echo "  return n; }"
  } > "$src/part$i.c"
  objs="$objs part$i.o"
done
{
  echo '#include "config.h"'
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo '#include <string.h>'
  echo '#include <unistd.h>'
  echo '#include <fcntl.h>'
  echo '#include <sys/stat.h>'
  echo '#include <dirent.h>'
  for i in $(seq 30); do echo "int part$i(const char*);"; done
  cat <<'C'
/* make check: 2000 files made, stat'ed, listed, renamed and removed in DIR/t, and the parts. */
int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  char d[512], p[600], q[600];
  struct stat st;
  snprintf(d, sizeof d, "%s/t", dir);
  if (mkdir(d, 0755) < 0) { perror(d); return 1; }
  for (int i = 0; i < 2000; ++i) {
    snprintf(p, sizeof p, "%s/f%d", d, i);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, p, strlen(p)) < 0) { perror(p); return 1; }
    close(fd);
  }
  for (int i = 0; i < 2000; ++i) {
    snprintf(p, sizeof p, "%s/f%d", d, i);
    snprintf(q, sizeof q, "%s/g%d", d, i);
    if (stat(p, &st) < 0 || access(p, R_OK) < 0 || rename(p, q) < 0) { perror(p); return 1; }
  }
  int n = 0;
  DIR* dd = opendir(d);
  while (dd && readdir(dd)) ++n;
  if (dd) closedir(dd);
  for (int i = 0; i < 2000; ++i) {
    snprintf(q, sizeof q, "%s/g%d", d, i);
    if (unlink(q) < 0) { perror(q); return 1; }
  }
  if (rmdir(d) < 0 || n != 2002) { fprintf(stderr, "listed %d\n", n); return 1; }
C
  for i in $(seq 30); do echo "  if (part$i(dir) != 20) { fprintf(stderr, \"part$i\\n\"); return 1; }"; done
  echo '  puts("check: ok"); return 0; }'
} > "$src/main.c"
{
  echo 'srcdir = @srcdir@'
  echo 'VPATH = @srcdir@'
  echo 'CC = @CC@'
  echo 'CFLAGS = @CFLAGS@ -I. -I$(srcdir)'
  echo "OBJS = main.o$objs"
  echo 'all: prog'
  echo 'prog: $(OBJS)'
  printf '\t$(CC) $(CFLAGS) -o $@ $(OBJS)\n'
  echo '%.o: %.c config.h'
  printf '\t$(CC) $(CFLAGS) -c -o $@ $<\n'
  echo 'check: prog'
  printf '\tmkdir -p chk && ./prog chk && sh $(srcdir)/check.sh chk\n'
  echo '.PHONY: all check'
} > "$src/Makefile.in"
cat > "$src/check.sh" <<'SH'
# The second half of make check: the files the first half left, seen by the tools.
set -e
[ "$(ls "$1" | wc -l)" = 600 ]
[ "$(find "$1" -type f -name 'p*' | wc -l)" = 600 ]
grep -lr part "$1" | wc -l > /dev/null
for f in "$1"/p1.*; do test -f "$f" && test -s "$f"; done
rm -r "$1"
SH
(cd "$src" && autoconf 2>/dev/null && rm -rf autom4te.cache)

# The job: $1 holds the project, $2 is the scratch directory.
cat > "$tmp/job.sh" <<'SH'
set -e
src=$1 scratch=$2
b=$scratch/b.$$
mkdir "$b" && cd "$b"
"$src/configure" -q CFLAGS=-O0
make -s
make -s check >/dev/null
mkdir inc
tar cf - -C /usr/include linux c++ | tar xf - -C inc
[ "$(find inc -name '*.h' | wc -l)" -gt 100 ]
grep -rl 'struct stat' inc | wc -l > /dev/null
cd / && rm -rf "$b"
SH

pvm="$vu run --backend=pvm --net host"
ns="$vu run --backend=ns --net host"
mounts="--bind $src:/mnt --tmpfs /scratch"
setups=(
  "native|env|$src $tmp/scratch"
  "vu ns --bind --tmpfs|$ns $mounts --|/mnt /scratch"
  "vu pvm (no mounts)|$pvm --|$src $tmp/scratch"
  "vu pvm --bind --tmpfs|$pvm $mounts --|/mnt /scratch"
  "vu pvm --bind --tmpfs, no fast path|env VU_PVM_ACCEL_LIB= $pvm $mounts --|/mnt /scratch"
)
if [ -n "${BENCH_OLD_VU:-}" ]; then
  old="$BENCH_OLD_VU/vu run --backend=pvm --net host"
  setups+=("old: vu pvm (no mounts)|$old --|$src $tmp/scratch"
           "old: vu pvm --bind --tmpfs|$old $mounts --|/mnt /scratch")
fi

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# One run: "wall user+sys" in seconds (user+sys of everything the run started: vu, its threads
# and the view's processes, which vu reaps; from the running shell's cutime+cstime).
one_run() {
  local prefix=$1 args=$2 t0 t1 c0 c1 me=$BASHPID  # this shell: its reaped children's times
  c0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$me/stat)
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  $prefix sh "$tmp/job.sh" $args >/dev/null
  t1=$(date +%s.%N)
  c1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$me/stat)
  awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f %.2f\n", b - a, (d - c) / hz }'
}
declare -A WALL CPU
for s in "${setups[@]}"; do  # a warm-up of each (and a check that the job works there)
  IFS='|' read -r name prefix args <<<"$s"
  one_run "$prefix" "$args" >/dev/null || { echo "pvm_files: the job failed under: $name" >&2; exit 1; }
done
for round in $(seq "$runs"); do
  for s in "${setups[@]}"; do
    IFS='|' read -r name prefix args <<<"$s"
    read -r w c < <(one_run "$prefix" "$args")
    WALL[$name]+="$w " CPU[$name]+="$c "
  done
done

echo "pvm_files: configure+make+make check+tar/find/grep, $(nproc) cores, kernel $(uname -r), median of $runs rounds"
ref=$(echo "${WALL[native]}" | tr ' ' '\n' | grep . | median)
printf '%-40s %9s %7s %9s\n' "set-up" "wall s" "ratio" "cpu s"
for s in "${setups[@]}"; do
  IFS='|' read -r name _ _ <<<"$s"
  w=$(echo "${WALL[$name]}" | tr ' ' '\n' | grep . | median)
  c=$(echo "${CPU[$name]}" | tr ' ' '\n' | grep . | median)
  printf '%-40s %9.2f %7.2f %9.2f\n' "$name" "$w" "$(awk -v a="$w" -v b="$ref" 'BEGIN { print a / b }')" "$c"
done
echo "(ratio: wall time to native's; cpu: user+sys of vu and the job; target: pvm --bind --tmpfs <= 1.15)"
echo
echo "the monitor's counters for one run of vu pvm --bind --tmpfs (VU_PVM_STATS=1):"
# shellcheck disable=SC2086
VU_PVM_STATS=1 $pvm $mounts -- sh "$tmp/job.sh" /mnt /scratch 2>&1 >/dev/null | grep -E '^vu: pvm' || true
