// rootfs_pvm_probe — a dynamically linked program whose loader (PT_INTERP) is /vu-lib/ld.so, a
// path no host has: it runs only where the view's own tree provides that loader
// (tests/integration/rootfs_pvm_test.sh puts a copy of the host's ld.so and libc there). Prints
// its argv and what /proc/self/exe names; with --preload first, only whether pvm's fast path
// (libvu-pvm-accel.so, a glibc library) is mapped: it must stay out of a tree whose libc is not
// glibc.
// Also built with musl-gcc (tests/CMakeLists.txt: musl-probe, PT_INTERP /lib/ld-musl-x86_64.so.1)
// for the musl tree of tests/conformance/rootfs_probes.sh.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--preload") == 0) {
    FILE* maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int accel = 0;
    while (maps && fgets(line, sizeof line, maps)) accel |= strstr(line, "vu-pvm-accel") != NULL;
    printf("fast path %s\n", !maps ? "unknown (no /proc/self/maps)" : accel ? "mapped" : "not mapped");
    return 0;
  }
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  printf("argc=%d", argc);
  for (int i = 0; i < argc; ++i) printf(" [%s]", argv[i]);
  printf(" exe=%s\n", exe);
  return 0;
}
