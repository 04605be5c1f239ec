/* cado/cado_common.h — what cado and scado share: paths, reading small root-owned files,
 * the sanitized environment, SHA-256 digests of executables. */
#ifndef VU_CADO_COMMON_H
#define VU_CADO_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#ifndef CADO_CONF
#define CADO_CONF "/etc/cado.conf"
#endif
#ifndef CADO_SPOOL
#define CADO_SPOOL "/var/spool/cado"
#endif
/* PATH in a reset environment (sudo's secure_path on Debian). */
#define CADO_SAFE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* The user condition commands run as, and the group of the scado spool. */
#define CADO_USER "_cado"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads at most size bytes of path (O_NOFOLLOW). Returns the length, or -1 (errno set; E2BIG
 * when the file is larger than the buffer). */
ssize_t cado_read_file(const char *path, char *buf, size_t size);

/* The caller's environment without the variables glibc ignores for setuid programs (LD_*,
 * GCONV_PATH, GETCONF_DIR, HOSTALIASES, LOCALDOMAIN, LOCPATH, MALLOC_*, NIS_PATH, NLSPATH,
 * RESOLV_HOST_CONF, RES_OPTIONS, TMPDIR, TZDIR). The array is static. */
char **cado_clean_environ(void);

/* A reset environment (sudo's env_reset): PATH=CADO_SAFE_PATH, then HOME, SHELL, USER and
 * LOGNAME from the caller's passwd entry; with CADO_ENV_KEEP also the caller's variables
 * cado_env_keep accepts (TERM, COLORTERM, DISPLAY, XAUTHORITY, WAYLAND_DISPLAY, LANG,
 * LANGUAGE, LC_*, TZ). CADO_ENV_MINIMAL is for condition commands, CADO_ENV_KEEP for cado -S. */
enum cado_env_kind { CADO_ENV_MINIMAL, CADO_ENV_KEEP };
struct cado_env {
  char *vars[64];
  char home[4096 + 8], shell[4096 + 8], user[256 + 8], logname[256 + 8];
};
/* Fills *env (vars is NULL-terminated, pointing into env and environ). Returns 0, or -1 when a
 * passwd field does not fit. */
int cado_reset_environ(struct cado_env *env, const char *user, const char *home, const char *shell,
                       enum cado_env_kind kind);

/* A copy of the regular file at path in a sealed memfd (not close-on-exec: a #! script run from it is
 * read by its interpreter through /dev/fd/N). Returns the fd or -1. */
int cado_copy_to_memfd(const char *path);

/* PAM service "cado": asks `user` for their password (stdin, as misc_conv does) up to `tries`
 * times. Returns 0 when authenticated, -1 otherwise. */
int cado_authenticate(const char *user, int tries);

/* The SHA-256 of everything readable from fd (from offset 0) as 64 lowercase hex digits. */
int cado_fd_digest(int fd, char out[65]);

#ifdef __cplusplus
}
#endif

#endif
