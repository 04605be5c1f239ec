/* caprint — print the ambient capabilities of a process (default: itself), as rd235/cado's:
 *   caprint [-l|-c|-p] [pid]
 *   (default) one cap_name per line   -c net_admin,net_raw   -p the same plus '#' (for PS1)
 *   -l "%2d %016x cap_name" per capability, then the total when there is more than one.
 * Exit: 0, 1 usage, 2 the process's status cannot be read. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <unistd.h>

static void usage(void) {
  fprintf(stderr,
          "caprint - show the current capability ambient\n\n"
          "usage: caprint OPTIONS [pid]\n\n"
          "Options:\n"
          "  -h, --help         display help message and exit\n"
          "  -p, --prompt       single line output for the command prompt\n"
          "  -c, --compact      single line without cap_ prefix\n"
          "  -l, --long         display cap# and mask\n");
  exit(1);
}

int main(int argc, char **argv) {
  int prompt = 0, compact = 0, longlist = 0, i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { ++i; break; }
    if (strcmp(a, "--prompt") == 0) a = "-p";
    else if (strcmp(a, "--compact") == 0) a = "-c";
    else if (strcmp(a, "--long") == 0) a = "-l";
    else if (a[1] == '-') usage();
    for (const char *p = a + 1; *p; ++p) {
      if (*p == 'p') prompt = compact = 1;
      else if (*p == 'c') compact = 1;
      else if (*p == 'l') longlist = 1;
      else usage();
    }
  }
  if (argc - i > 1) usage();
  char path[64];
  long pid = i < argc ? strtol(argv[i], NULL, 10) : (long)getpid();
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "re");
  if (!f) return 2;
  char line[256];
  uint64_t amb = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "CapAmb:\t", 8) == 0) amb = strtoull(line + 8, NULL, 16);
  fclose(f);
  if (!amb) return 0;
  const char *sep = "";
  int count = 0;
  for (int c = 0; c < 64; ++c) {
    if (!(amb & (UINT64_C(1) << c))) continue;
    char *name = cap_to_name((cap_value_t)c);
    if (!name) continue;
    ++count;
    if (longlist) printf("%2d %016" PRIx64 " %s\n", c, UINT64_C(1) << c, name);
    else if (compact) printf("%s%s", sep, strncmp(name, "cap_", 4) == 0 ? name + 4 : name);
    else printf("%s\n", name);
    sep = ",";
    cap_free(name);
  }
  if (prompt) printf("#");
  if (compact) printf("\n");
  if (longlist && count > 1) printf("   %016" PRIx64 "\n", amb);
  return 0;
}
