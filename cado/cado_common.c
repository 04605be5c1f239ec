/* cado/cado_common.c — see cado_common.h. */
#define _GNU_SOURCE
#include "cado_common.h"

#include "cado_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <security/pam_appl.h>
#include <security/pam_misc.h>
#include <sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

ssize_t cado_read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  size_t got = 0;
  for (;;) {
    if (got == size) {
      char extra;
      ssize_t k = read(fd, &extra, 1);
      close(fd);
      if (k != 0) {
        errno = E2BIG;
        return -1;
      }
      return (ssize_t)got;
    }
    ssize_t k = read(fd, buf + got, size - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (k == 0) break;
    got += (size_t)k;
  }
  close(fd);
  return (ssize_t)got;
}

static int unsafe_name(const char *var) {
  static const char *const kExact[] = {"GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN",
                                       "LOCPATH", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF",
                                       "RES_OPTIONS", "TMPDIR", "TZDIR", NULL};
  if (strncmp(var, "LD_", 3) == 0 || strncmp(var, "MALLOC_", 7) == 0) return 1;
  size_t n = strcspn(var, "=");
  for (const char *const *e = kExact; *e; ++e)
    if (strlen(*e) == n && strncmp(var, *e, n) == 0) return 1;
  return 0;
}

char **cado_clean_environ(void) {
  static char *clean[1024];
  size_t k = 0;
  for (char **e = environ; e && *e && k + 1 < sizeof clean / sizeof clean[0]; ++e)
    if (strchr(*e, '=') && !unsafe_name(*e)) clean[k++] = *e;
  clean[k] = NULL;
  return clean;
}

int cado_reset_environ(struct cado_env *env, const char *user, const char *home, const char *shell,
                       enum cado_env_kind kind) {
  static char path[] = "PATH=" CADO_SAFE_PATH;
  if (snprintf(env->home, sizeof env->home, "HOME=%s", home) >= (int)sizeof env->home ||
      snprintf(env->shell, sizeof env->shell, "SHELL=%s", shell) >= (int)sizeof env->shell ||
      snprintf(env->user, sizeof env->user, "USER=%s", user) >= (int)sizeof env->user ||
      snprintf(env->logname, sizeof env->logname, "LOGNAME=%s", user) >= (int)sizeof env->logname)
    return -1;
  const size_t cap = sizeof env->vars / sizeof env->vars[0];
  size_t k = 0;
  env->vars[k++] = path;
  env->vars[k++] = env->home;
  env->vars[k++] = env->shell;
  env->vars[k++] = env->user;
  env->vars[k++] = env->logname;
  for (char **e = environ; kind == CADO_ENV_KEEP && e && *e && k + 1 < cap; ++e)
    if (cado_env_keep(*e)) env->vars[k++] = *e;
  env->vars[k] = NULL;
  return 0;
}

int cado_copy_to_memfd(const char *path) {
  /* O_NONBLOCK: a FIFO must not hang cado; only a regular file is copied */
  int in = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (in < 0) return -1;
  struct stat st;
  if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(in);
    errno = EACCES;
    return -1;
  }
  int out = memfd_create("cado-exe", MFD_ALLOW_SEALING);
  if (out < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t k;
  int err = 0;
  while ((k = read(in, buf, sizeof buf)) != 0) {
    if (k < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    for (ssize_t off = 0; off < k;) {
      ssize_t w = write(out, buf + off, (size_t)(k - off));
      if (w < 0) {
        err = errno;
        break;
      }
      off += w;
    }
    if (err) break;
  }
  close(in);
  /* r-x for all: cado drops to the caller before executing it; only this process holds the fd */
  if (!err && (fchmod(out, 0555) < 0 ||
               fcntl(out, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0))
    err = errno;
  if (err) {
    close(out);
    errno = err;
    return -1;
  }
  return out;
}

int cado_fd_digest(int fd, char out[65]) {
  SHA2_CTX ctx;
  SHA256Init(&ctx);
  char buf[65536];
  off_t off = 0;
  for (;;) {
    ssize_t k = pread(fd, buf, sizeof buf, off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    SHA256Update(&ctx, (const uint8_t *)buf, (size_t)k);
    off += k;
  }
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256Final(d, &ctx);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = 0;
  return 0;
}

int cado_authenticate(const char *user, int tries) {
  pam_handle_t *pamh = NULL;
  struct pam_conv conv = {misc_conv, NULL};
  int rc = pam_start("cado", user, &conv, &pamh);
  for (int i = 0; rc == PAM_SUCCESS && i < tries; ++i) {
    rc = pam_authenticate(pamh, 0);
    if (rc == PAM_SUCCESS) break;
    if (i + 1 < tries) rc = PAM_SUCCESS; /* another try */
  }
  if (pamh) pam_end(pamh, rc);
  return rc == PAM_SUCCESS ? 0 : -1;
}
