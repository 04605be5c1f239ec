/* scado — manage your pre-authorizations for `cado -S`, as rd235/cado's:
 *   scado -l | --list            print your scado file
 *   scado -e | --edit            edit it ($VISUAL, $EDITOR, vi); empty digest fields are filled
 *   scado -u | --update CMD      recompute the digest of CMD's line
 *   scado -U | --update-all      recompute every digest
 *   scado -D | --delete          delete your scado file
 * Line syntax: /abs/path : caps [: sha256]. Changing the file asks for your password (PAM
 * service "cado"). Exit: 0; 255 usage or error; 254 authentication failure.
 *
 * Installed setgid _cado: the spool directory (/var/spool/cado, root:_cado 0770) is reachable
 * only through this program and cado. The _cado group is effective only while the spool is read
 * or written; everything else (hashing the programs, the editor) runs with your own ids, so
 * scado reads nothing you could not. A new spool file is written to a fresh O_EXCL temporary
 * (USER:XXXXXX — ':' is in no user name) and renamed; the temporaries of yours a killed scado
 * left (older than a minute) are removed then.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cado_common.h"
#include "cado_parse.h"

#define EXIT_ERR 255
#define EXIT_AUTH 254
#define MAX_TEXT (1 << 16)

static char user[LOGIN_NAME_MAX + 1];
static char spool[PATH_MAX];
static gid_t spool_gid; /* _cado, the saved gid: effective only around the spool's accesses */

static void usage(void) {
  fprintf(stderr,
          "scado - manage the pre-authorizations of cado -S\n\n"
          "usage: scado OPTION\n\n"
          "Options (exactly one):\n"
          "  -l, --list            list your scado file\n"
          "  -e, --edit            edit it\n"
          "  -u, --update CMD      update the digest of CMD\n"
          "  -U, --update-all      update every digest\n"
          "  -D, --delete          delete your scado file\n"
          "  -h, --help            display help message and exit\n");
  exit(EXIT_ERR);
}

static int authenticate(void) {
  if (cado_authenticate(user, 3) == 0) return 0;
  fprintf(stderr, "scado: Authorization failure.\n");
  return -1;
}

/* Rewrites the text with every line's digest filled in (all: recompute them all; else only
 * empty ones and those of `only`); lines without a digest field stay as they are. Returns the
 * new length, or -1 with a message printed. *changed: some digest differs from the old one. */
static int fill_digests(const char *in, size_t len, char *out, size_t outsz, int all, const char *only, int *changed) {
  size_t o = 0;
  int lineno = 0;
  *changed = 0;
  while (len) {
    const char *nl = memchr(in, '\n', len);
    size_t l = nl ? (size_t)(nl - in) : len;
    ++lineno;
    struct cado_scado_line sl;
    const char *err;
    int rc = cado_scado_parse_line(in, l, &sl, &err);
    if (rc < 0) {
      fprintf(stderr, "scado: line %d: %s\n", lineno, err);
      return -1;
    }
    int wants = rc == 0 && sl.fields >= 3 && (all || sl.digest[0] == 0 || (only && strcmp(only, sl.path) == 0));
    size_t keep = wants ? sl.digest_at : l;
    if (o + keep + 70 >= outsz) return -1;
    memcpy(out + o, in, keep);
    o += keep;
    if (wants) {
      char d[65];
      /* O_NONBLOCK and a regular file only, as cado -S reads it: a FIFO or a tty named in the
       * file must not hang scado (which holds the _cado group, saved) */
      int fd = open(sl.path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      struct stat st;
      if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
        errno = EACCES;
      }
      if (fd < 0 || cado_fd_digest(fd, d) < 0) {
        fprintf(stderr, "scado: %s: %s\n", sl.path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
      }
      close(fd);
      o += (size_t)snprintf(out + o, outsz - o, " %s", d);
      if (strcmp(d, sl.digest) != 0) *changed = 1;
    }
    if (nl) out[o++] = '\n';
    in += l + (nl ? 1 : 0);
    len -= l + (nl ? 1 : 0);
  }
  out[o] = 0;
  return (int)o;
}

/* With the spool's gid: removes USER:XXXXXX temporaries older than a minute (a running scado
 * renames its own within the write and fsync that follow its creation). Only this user's names,
 * only regular files, never following a link. */
static void sweep_own_temporaries(void) {
  DIR *d = opendir(CADO_SPOOL);
  if (!d) return;
  const size_t ul = strlen(user);
  const time_t now = time(NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, user, ul) != 0 || e->d_name[ul] != ':' || strlen(e->d_name + ul + 1) != 6) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > 60)
      (void)unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

static int save(const char *text, size_t len) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s:XXXXXX", spool) >= (int)sizeof tmp || setegid(spool_gid) < 0) return -1;
  sweep_own_temporaries();
  int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
  if (fd < 0) {
    fprintf(stderr, "scado: %s: %s\n", tmp, strerror(errno));
    return -1;
  }
  int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, spool) < 0) {
    fprintf(stderr, "scado: cannot write %s: %s\n", spool, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int edit(const char *current, size_t len) {
  char path[] = "/tmp/cado-scado.XXXXXX";
  static char text[MAX_TEXT], out[MAX_TEXT + 8192];
  int fd = mkstemp(path); /* with the user's ids: the copy is theirs */
  if (fd < 0) return EXIT_ERR;
  const char *tmpl = "# This is a scado file.\n# /absolute/path : capabilities [: sha256 digest, filled in when left empty]\n";
  const char *body = len ? current : tmpl;
  size_t blen = len ? len : strlen(tmpl);
  if (write(fd, body, blen) != (ssize_t)blen) {
    close(fd);
    return EXIT_ERR;
  }
  close(fd);
  const char *editor = getenv("VISUAL");
  if (!editor || !*editor) editor = getenv("EDITOR");
  if (!editor || !*editor) editor = "/usr/bin/vi";
  pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(getgid(), getgid(), getgid()) < 0) _exit(127);
    execlp("/bin/sh", "sh", "-c", "exec $0 \"$1\"", editor, path, (char *)NULL);
    _exit(127);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "scado: the editor failed; your copy is %s\n", path);
    return EXIT_ERR;
  }
  ssize_t n = cado_read_file(path, text, sizeof text - 1);
  if (n < 0) return EXIT_ERR;
  int changed;
  int o = fill_digests(text, (size_t)n, out, sizeof out, 0, NULL, &changed);
  if (o < 0) {
    fprintf(stderr, "scado: nothing saved; your copy is %s\n", path);
    return EXIT_ERR;
  }
  if ((size_t)o != len || memcmp(out, current, len) != 0) {
    if (authenticate() < 0) {
      fprintf(stderr, "scado: your copy is %s\n", path);
      return EXIT_AUTH;
    }
    if (save(out, (size_t)o) < 0) return EXIT_ERR;
  }
  unlink(path);
  return 0;
}

int main(int argc, char **argv) {
  static char text[MAX_TEXT], out[MAX_TEXT + 8192];
  int action = 0;
  const char *cmd = NULL;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    int act = 0;
    if (!strcmp(a, "-l") || !strcmp(a, "--list")) act = 'l';
    else if (!strcmp(a, "-e") || !strcmp(a, "--edit")) act = 'e';
    else if (!strcmp(a, "-D") || !strcmp(a, "--delete")) act = 'D';
    else if (!strcmp(a, "-U") || !strcmp(a, "--update-all")) act = 'U';
    else if (!strcmp(a, "-u") || !strcmp(a, "--update")) {
      act = 'u';
      if (++i >= argc) usage();
      cmd = argv[i];
    } else usage();
    if (action) {
      fprintf(stderr, "scado: select exactly one option among: -u -U -D -l -e\n");
      return EXIT_ERR;
    }
    action = act;
  }
  if (!action) usage();
  struct passwd *pw = getpwuid(getuid());
  if (!pw || strlen(pw->pw_name) >= sizeof user) {
    fprintf(stderr, "scado: no passwd entry for uid %d\n", (int)getuid());
    return EXIT_ERR;
  }
  strcpy(user, pw->pw_name);
  if (snprintf(spool, sizeof spool, "%s/%s", CADO_SPOOL, user) >= (int)sizeof spool) return EXIT_ERR;
  spool_gid = getegid();
  ssize_t n = cado_read_file(spool, text, sizeof text - 1);
  int err = errno;
  if (setegid(getgid()) < 0) {
    fprintf(stderr, "scado: cannot drop the _cado group: %s\n", strerror(errno));
    return EXIT_ERR;
  }
  if (n < 0 && err != ENOENT) {
    fprintf(stderr, "scado: %s: %s\n", spool, strerror(err));
    return EXIT_ERR;
  }
  if (n < 0) n = 0;
  switch (action) {
    case 'l':
      fwrite(text, 1, (size_t)n, stdout);
      return 0;
    case 'D':
      if (setegid(spool_gid) < 0 || (unlink(spool) < 0 && errno != ENOENT)) {
        fprintf(stderr, "scado: %s: %s\n", spool, strerror(errno));
        return EXIT_ERR;
      }
      return 0;
    case 'e':
      return edit(text, (size_t)n);
    default: {
      if (cmd) {
        uint64_t caps;
        char d[65];
        if (!cado_scado_find(text, (size_t)n, cmd, &caps, d)) {
          fprintf(stderr, "scado: no line for %s (add one with scado -e)\n", cmd);
          return EXIT_ERR;
        }
      }
      int changed;
      int o = fill_digests(text, (size_t)n, out, sizeof out, action == 'U', cmd, &changed);
      if (o < 0) return EXIT_ERR;
      if (!changed) return 0;
      if (authenticate() < 0) return EXIT_AUTH;
      return save(out, (size_t)o) < 0 ? EXIT_ERR : 0;
    }
  }
}
