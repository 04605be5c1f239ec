/* cado — Capability Ambient DO: run a command with the ambient capabilities /etc/cado.conf
 * allows the caller, after PAM authentication (service "cado").
 *
 *   cado [-v] [-f] [-S] CAPS [--] [CMD [ARGS…]]   (CMD defaults to $SHELL)
 *   cado -v                                       the capabilities cado.conf allows you
 *   cado -s [-v]                                  (root) give cado the file capabilities it needs
 *
 * Compatible with rd235/cado 0.9.x: same options, exit statuses, output, cado.conf and scado
 * spool. Differences, each a fix:
 *   - options end at CAPS (or "--"): `cado net_raw capsh --print` passes --print to capsh
 *     (the original's getopt permuted it away and ran capsh without it);
 *   - the command's environment is sanitized (LD_*, GCONV_PATH, … removed: the list glibc
 *     drops for setuid programs); cado -S, which asks no password, resets it as sudo's
 *     env_reset does (cado_reset_environ: PATH fixed, HOME SHELL USER LOGNAME from passwd,
 *     TERM COLORTERM DISPLAY XAUTHORITY WAYLAND_DISPLAY LANG LANGUAGE LC_* TZ kept if safe),
 *     so BASH_ENV, ENV, PYTHONPATH, PERL5OPT… cannot run the caller's code in the program;
 *   - condition commands run as _cado (as the original) but with no capabilities, a fixed
 *     environment (PATH, the caller's USER and LOGNAME, _cado's HOME and SHELL — so no
 *     start-up file of the caller's home is read; $NAME expands from it, not from the
 *     caller's), stdin /dev/null, cwd /: the caller can neither trace them nor feed them code
 *     or arguments;
 *   - cado -S reads the program with the caller's ids, not _cado's;
 *   - every grant and refusal is logged (syslog, LOG_AUTHPRIV);
 *   - cado -S executes the very bytes it hashed: the binary is copied into a sealed memfd,
 *     hashed there and executed from there (no temporary file, no watchdog; #! scripts work).
 *
 * Installed setuid to the system user _cado with file capabilities (permitted) for every
 * capability cado.conf names plus CAP_DAC_READ_SEARCH (scripts/install-cado.sh, `cado -s`).
 * Sequence: cado.conf is read (CAP_DAC_READ_SEARCH effective around the read) and its
 * conditions run (as _cado); back to the caller's ids, keeping the permitted set; with -S the
 * spool is read (CAP_DAC_READ_SEARCH) and the program (as the caller); a refusal is decided
 * before any password; PAM (not with -S); inheritable and ambient set; exec.
 * Security: this file is linear and small on purpose. Every call's result is checked. Nothing
 * the caller controls reaches a privileged operation except the parsed capability set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "cado_common.h"
#include "cado_parse.h"

extern char **environ;

#define EXIT_USAGE 1
#define EXIT_DENIED 2

static void usage(void) {
  fprintf(stderr,
          "cado - execute a command in a different capability ambient\n\n"
          "usage: cado OPTIONS capability_list [--] [command [args]]\n\n"
          "Options:\n"
          "  -h, --help         display help message and exit\n"
          "  -f, --force        do not display warnings, do what is allowed\n"
          "  -v, --verbose      generate extra output\n"
          "  -S, --scado        check scado pre-authorization for scripts\n"
          "  -s, --setcap       set the minimum caps for cado (root access)\n"
          "\ncapability_list: names (net_admin or cap_net_admin) or a hex mask, comma-separated.\n"
          "Options end at capability_list; the command's own options are never cado's.\n"
          "With -S the environment is reset (as sudo's env_reset):\n"
          "PATH=" CADO_SAFE_PATH ",\n"
          "HOME, SHELL, USER, LOGNAME from your passwd entry; kept: TERM, COLORTERM, DISPLAY,\n"
          "XAUTHORITY, WAYLAND_DISPLAY, and LANG, LANGUAGE, LC_*, TZ when they name no file.\n"
          "Without -S it is yours minus LD_*, GCONV_PATH, MALLOC_*... (glibc's setuid list).\n"
          "Condition commands of cado.conf run as " CADO_USER " with PATH, USER, LOGNAME (yours),\n"
          "HOME and SHELL (" CADO_USER "'s).\n"
          "Exit status: 1 usage, 2 refused (not allowed, authentication failure); else the command's.\n");
  exit(EXIT_USAGE);
}

/* "Requested ambient capabilities:" blocks: "  %2d %016x name" per capability. */
static void print_capset(uint64_t set) {
  int count = 0;
  for (int c = 0; c < 64; ++c) {
    if (!(set & (UINT64_C(1) << c))) continue;
    char *name = cap_to_name((cap_value_t)c);
    printf("  %2d %016" PRIx64 " %s\n", c, UINT64_C(1) << c, name ? name : "?");
    cap_free(name);
    ++count;
  }
  if (count > 1) printf("     %016" PRIx64 "\n", set);
  if (count == 0) printf("     %016" PRIx64 " NONE\n", UINT64_C(0));
}

/* ---- the caller ---- */

#define MAX_GROUPS 256
static char user_name[LOGIN_NAME_MAX + 1];
static char user_home[PATH_MAX], user_shell[PATH_MAX];
static char group_buf[MAX_GROUPS][64];
static const char *group_names[MAX_GROUPS + 1];

static int load_caller(void) {
  struct passwd *pw = getpwuid(getuid());
  if (!pw || strlen(pw->pw_name) >= sizeof user_name || strlen(pw->pw_dir) >= sizeof user_home ||
      strlen(pw->pw_shell) >= sizeof user_shell)
    return -1;
  strcpy(user_name, pw->pw_name);
  strcpy(user_home, pw->pw_dir);
  strcpy(user_shell, pw->pw_shell);
  gid_t gids[MAX_GROUPS];
  int n = MAX_GROUPS;
  if (getgrouplist(user_name, pw->pw_gid, gids, &n) < 0) n = MAX_GROUPS; /* truncated: first ones */
  int k = 0;
  for (int i = 0; i < n && k < MAX_GROUPS; ++i) {
    struct group *gr = getgrgid(gids[i]);
    if (!gr || strlen(gr->gr_name) >= sizeof group_buf[0]) continue;
    strcpy(group_buf[k], gr->gr_name);
    group_names[k] = group_buf[k];
    ++k;
  }
  group_names[k] = NULL;
  return 0;
}

/* ---- capabilities of this process ---- */

/* CAP_DAC_READ_SEARCH effective while reading root-only files (cado.conf, the scado spool).
 * Not raised: the read fails. Not lowered: cado stops here. */
static void dac_read_search(int on) {
  cap_t c = cap_get_proc();
  cap_value_t v = CAP_DAC_READ_SEARCH;
  int rc = c && cap_set_flag(c, CAP_EFFECTIVE, 1, &v, on ? CAP_SET : CAP_CLEAR) == 0 ? cap_set_proc(c) : -1;
  if (c) cap_free(c);
  if (rc < 0 && !on) {
    fprintf(stderr, "cado: cannot lower CAP_DAC_READ_SEARCH: %s\n", strerror(errno));
    exit(EXIT_DENIED);
  }
}

/* Inheritable = grant, effective cleared, ambient = exactly grant. */
static int set_ambient(uint64_t grant) {
  cap_t c = cap_get_proc();
  if (!c) return -1;
  if (cap_clear_flag(c, CAP_EFFECTIVE) < 0 || cap_clear_flag(c, CAP_INHERITABLE) < 0) {
    cap_free(c);
    return -1;
  }
  for (int i = 0; i < 64; ++i) {
    cap_value_t v = i;
    if ((grant & (UINT64_C(1) << i)) && cap_set_flag(c, CAP_INHERITABLE, 1, &v, CAP_SET) < 0) {
      cap_free(c);
      return -1;
    }
  }
  int rc = cap_set_proc(c);
  cap_free(c);
  if (rc < 0) return -1;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return -1;
  for (int i = 0; i < 64; ++i)
    if ((grant & (UINT64_C(1) << i)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0) return -1;
  return 0;
}

/* ---- cado.conf ---- */

/* The value of NAME in env ("" when unset). */
static const char *env_value(char *const *env, const char *name) {
  size_t n = strlen(name);
  for (; *env; ++env)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
  return "";
}

/* Condition commands (ctx: their environment, CADO_ENV_MINIMAL with _cado's HOME and SHELL):
 * run as the user _cado, not as the caller, who could ptrace them; no capabilities; the fixed
 * environment only; stdin
 * /dev/null, cwd /, default signal dispositions and mask, no fd but 0-2. No shell: words
 * split on blanks, $NAME replaced from that environment (not the caller's). */
static int run_condition(const char *cmd, size_t len, void *ctx) {
  char **env = ctx;
  char buf[4096];
  if (len >= sizeof buf) return -1;
  memcpy(buf, cmd, len);
  buf[len] = 0;
  char *argv[64];
  int argc = 0;
  for (char *save = NULL, *w = strtok_r(buf, " \t", &save); w && argc < 63; w = strtok_r(NULL, " \t", &save))
    argv[argc++] = w[0] == '$' && w[1] ? (char *)env_value(env, w + 1) : w;
  argv[argc] = NULL;
  if (argc == 0) return 0;
  struct passwd *pw = getpwnam(CADO_USER);
  if (!pw || pw->pw_uid == 0) {
    fprintf(stderr, "cado: no user %s to run condition commands as\n", CADO_USER);
    return -1;
  }
  uid_t uid = pw->pw_uid;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL); /* fails for KILL and STOP only */
    int null = open("/dev/null", O_RDONLY);
    cap_t no_caps = cap_init();
    if (null < 0 || dup2(null, 0) < 0 || close_range(3, ~0U, 0) < 0 || sigprocmask(SIG_SETMASK, &none, NULL) < 0 ||
        chdir("/") < 0 || setresuid(uid, uid, uid) < 0 || !no_caps || cap_set_proc(no_caps) < 0 ||
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
      _exit(127);
    umask(022);
    environ = env;
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static uint64_t allowed_caps(const struct cado_who *who, uint64_t wanted) {
  static char text[1 << 16];
  static struct cado_env cond_env;
  dac_read_search(1);
  ssize_t n = cado_read_file(CADO_CONF, text, sizeof text);
  dac_read_search(0);
  if (n < 0) return 0; /* no file, or unreadable: nothing is allowed */
  /* HOME and SHELL are _cado's, not the caller's: interpreters read start-up code from HOME
   * (python's user site-packages *.pth, ~/.curlrc, ~/.gitconfig…), and code run as _cado, the
   * owner of this setuid file, can rewrite it through a shared mapping, keeping its bits. */
  struct passwd *cado_pw = who ? getpwnam(CADO_USER) : NULL;
  if (who && (!cado_pw || cado_reset_environ(&cond_env, user_name, cado_pw->pw_dir, cado_pw->pw_shell, CADO_ENV_MINIMAL) < 0))
    return 0;
  int bad;
  return cado_conf_allowed(text, (size_t)n, who, wanted, run_condition, cond_env.vars, &bad);
}

/* ---- scado (cado -S) ---- */

/* The caps the caller's scado file gives `path`; *exec_fd: a sealed memfd holding the binary
 * whose digest matched (-1 when the line has no digest). Returns 0 when there is no usable line.
 * Called with the caller's ids: the program is read as the caller, the spool with
 * CAP_DAC_READ_SEARCH. */
static uint64_t scado_caps(const char *path, int *exec_fd) {
  static char text[1 << 16];
  char spool[PATH_MAX];
  uint64_t caps = 0;
  char want[65];
  *exec_fd = -1;
  if (path[0] != '/') {
    fprintf(stderr, "cado: -S needs an absolute command path\n");
    return 0;
  }
  if (snprintf(spool, sizeof spool, "%s/%s", CADO_SPOOL, user_name) >= (int)sizeof spool) return 0;
  dac_read_search(1);
  ssize_t n = cado_read_file(spool, text, sizeof text);
  dac_read_search(0);
  if (n < 0 || !cado_scado_find(text, (size_t)n, path, &caps, want)) return 0;
  if (want[0] == 0) return caps;
  int fd = cado_copy_to_memfd(path);
  char got[65];
  if (fd < 0 || cado_fd_digest(fd, got) < 0) {
    fprintf(stderr, "cado: cannot read %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return 0;
  }
  if (strcmp(got, want) != 0) {
    fprintf(stderr,
            "\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@      WARNING: EXECUTABLE DIGEST HAS CHANGED!            @\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "%s is not the program scado authorized: no capabilities are granted.\n"
            "If you changed it on purpose, run scado -u %s.\n\n",
            path, path);
    char logged[CADO_LOG_TEXT_SIZE];
    syslog(LOG_WARNING, "user %s: digest mismatch for %s", user_name, cado_log_text(path, logged));
    close(fd);
    return 0;
  }
  *exec_fd = fd;
  return caps;
}

/* ---- cado -s ---- */

static int setcap_self(int verbose) {
  if (setuid(0) < 0 || geteuid() != 0) {
    fprintf(stderr, "setcap requires root access\n");
    return EXIT_DENIED;
  }
  uint64_t caps = allowed_caps(NULL, ~UINT64_C(0)) | (UINT64_C(1) << CAP_DAC_READ_SEARCH);
  if (verbose) {
    printf("Capability needed by cado:\n");
    print_capset(caps);
  }
  cap_t c = cap_init();
  if (!c) return EXIT_DENIED;
  for (int i = 0; i < 64; ++i) {
    cap_value_t v = i;
    if ((caps & (UINT64_C(1) << i)) && cap_set_flag(c, CAP_PERMITTED, 1, &v, CAP_SET) < 0) {
      cap_free(c);
      return EXIT_DENIED;
    }
  }
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  int rc = fd >= 0 ? cap_set_fd(fd, c) : -1;
  int err = errno;
  if (fd >= 0) close(fd);
  cap_free(c);
  if (rc < 0) {
    fprintf(stderr, "Cannot set cado capabilities: %s\n", strerror(err));
    return EXIT_DENIED;
  }
  return 0;
}

/* ---- main ---- */

int main(int argc, char **argv) {
  int verbose = 0, force = 0, setcap = 0, scado = 0;
  int i = 1;
  openlog("cado", LOG_PID, LOG_AUTHPRIV);
  /* Options end at the first word that is not one, or after "--". */
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      ++i;
      break;
    }
    if (a[1] == '-') {
      if (strcmp(a, "--verbose") == 0) verbose = 1;
      else if (strcmp(a, "--force") == 0) force = 1;
      else if (strcmp(a, "--setcap") == 0) setcap = 1;
      else if (strcmp(a, "--scado") == 0) scado = 1;
      else usage();
      continue;
    }
    for (const char *p = a + 1; *p; ++p) {
      if (*p == 'v') verbose = 1;
      else if (*p == 'f') force = 1;
      else if (*p == 's') setcap = 1;
      else if (*p == 'S') scado = 1;
      else usage();
    }
  }
  if (setcap) return setcap_self(verbose);

  if (load_caller() < 0) {
    fprintf(stderr, "No passwd entry for user '%d'\n", (int)getuid());
    return EXIT_DENIED;
  }
  struct cado_who who = {user_name, group_names};

  if (i >= argc) {
    if (!verbose) usage();
    printf("Allowed ambient capabilities:\n");
    print_capset(allowed_caps(&who, ~UINT64_C(0)));
    return 0;
  }

  uint64_t requested;
  if (cado_capset_parse(argv[i], strlen(argv[i]), &requested) < 0) {
    fprintf(stderr, "List of capabilities: syntax error\n");
    return EXIT_DENIED;
  }
  ++i;
  if (i < argc && strcmp(argv[i], "--") == 0) ++i;
  if (verbose) {
    printf("Requested ambient capabilities:\n");
    print_capset(requested);
  }
  uint64_t ok = allowed_caps(&who, requested);

  char *shell_argv[2] = {getenv("SHELL"), NULL};
  char **cmd = i < argc ? argv + i : shell_argv;
  if (!cmd[0] || !cmd[0][0]) {
    fprintf(stderr, "Error: $SHELL env variable not set.\n");
    return EXIT_USAGE;
  }

  /* Back to the caller's ids (keeping the permitted set, whatever the installation); the
   * conditions, which run as _cado, are done. */
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresgid(getgid(), getgid(), getgid()) < 0 ||
      setresuid(getuid(), getuid(), getuid()) < 0) {
    fprintf(stderr, "cado: cannot drop the _cado identity: %s\n", strerror(errno));
    return EXIT_DENIED;
  }

  int exec_fd = -1;
  int need_pam = 1;
  if (scado) {
    uint64_t pre = scado_caps(cmd[0], &exec_fd);
    if (verbose) {
      printf("Scado permitted capabilities for %s:\n", cmd[0]);
      print_capset(pre);
    }
    ok &= pre;
    need_pam = 0;
  }

  if (requested & ~ok) {
    if (verbose) {
      printf("Unavailable ambient capabilities:\n");
      print_capset(requested & ~ok);
    }
    if (!force) {
      char logged[CADO_LOG_TEXT_SIZE];
      syslog(LOG_NOTICE, "user %s: refused %016" PRIx64 " for %s (not allowed)", user_name, requested & ~ok,
             cado_log_text(cmd[0], logged));
      fprintf(stderr, "cado: Permission denied\n");
      return EXIT_DENIED;
    }
  }
  uint64_t grant = requested & ok;

  if (need_pam) {
    if (cado_authenticate(user_name, 1) < 0) {
      char logged[CADO_LOG_TEXT_SIZE];
      syslog(LOG_NOTICE, "user %s: authentication failure for %s", user_name, cado_log_text(cmd[0], logged));
      fprintf(stderr, "cado: Authentication failure\n");
      return EXIT_DENIED;
    }
  }

  if (set_ambient(grant) < 0) {
    fprintf(stderr, "cado: cannot set the ambient capabilities: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  if (verbose && (requested & ~ok)) {
    printf("Granted ambient capabilities:\n");
    print_capset(grant);
  }
  char logged[CADO_LOG_TEXT_SIZE];
  syslog(LOG_INFO, "user %s: granted %016" PRIx64 " to %s", user_name, grant, cado_log_text(cmd[0], logged));
  fflush(stdout);

  static struct cado_env reset;
  if (scado && cado_reset_environ(&reset, user_name, user_home, user_shell, CADO_ENV_KEEP) < 0) {
    fprintf(stderr, "cado: cannot make the environment of %s\n", cmd[0]);
    return EXIT_DENIED;
  }
  char **envp = scado ? reset.vars : cado_clean_environ();
  if (exec_fd >= 0) {
    syscall(SYS_execveat, exec_fd, "", cmd, envp, AT_EMPTY_PATH);
  } else {
    execvpe(cmd[0], cmd, envp);
  }
  fprintf(stderr, "cado: %s: %s\n", cmd[0], strerror(errno));
  return EXIT_DENIED;
}
