// rootfs_pvm_probe — a dynamically linked program whose loader (PT_INTERP) is /vu-lib/ld.so, a
// path no host has: it runs only where the view's own tree provides that loader
// (tests/integration/rootfs_pvm_test.sh puts a copy of the host's ld.so and libc there). Prints
// its argv and what /proc/self/exe names.
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  printf("argc=%d", argc);
  for (int i = 0; i < argc; ++i) printf(" [%s]", argv[i]);
  printf(" exe=%s\n", exe);
  return 0;
}
