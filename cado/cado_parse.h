/* cado/cado_parse.h — the parsers of the cado suite: capability lists, /etc/cado.conf and scado
 * spool files. Pure functions over a buffer (no files, no privileges), so the fuzzers in
 * tests/fuzz drive exactly the code the setuid cado runs.
 *
 * Formats (compatible with rd235/cado 0.9.x):
 *   capability list   "net_admin,cap_net_raw" or a hexadecimal mask "3000" (hex is tried first)
 *   cado.conf line    CAPS : USERS_AND_@GROUPS [: CMD ARGS ; CMD ARGS …]      (# comments)
 *   scado line        /ABS/PATH : CAPS [: SHA256-HEX]                           (# comments)
 */
#ifndef VU_CADO_PARSE_H
#define VU_CADO_PARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses a capability list into *caps. Returns 0, or -1 on a syntax error (unknown name, empty
 * item, bad hex). */
int cado_capset_parse(const char *s, size_t len, uint64_t *caps);

/* The caller as cado.conf sees it: user name and group names (NULL-terminated). */
struct cado_who {
  const char *user;
  const char *const *groups;
};

/* Runs a condition command line (one ';'-separated item of the third field); returns its exit
 * status (0: the condition holds). */
typedef int (*cado_cond_fn)(const char *cmd, size_t len, void *ctx);

/* The capabilities cado.conf allows `who` (who == NULL: every capability any line names, for
 * `cado -s`). Scanning stops once every bit of `wanted` is allowed. Lines whose capability list
 * does not parse are skipped (as the original); *bad_lines counts them. */
uint64_t cado_conf_allowed(const char *text, size_t len, const struct cado_who *who, uint64_t wanted,
                           cado_cond_fn cond, void *ctx, int *bad_lines);

/* One scado line, parsed. */
struct cado_scado_line {
  char path[4096];   /* unescaped */
  uint64_t caps;
  int fields;        /* ':'-separated fields: 2, or 3 when a digest field is there (maybe empty) */
  size_t digest_at;  /* offset in the line just after the second ':' (the line's length if none) */
  char digest[65];   /* 64 hex digits, or "" */
};

/* Parses one line of a scado file. Returns 0 (filled), 1 (blank or comment), or -1 with *err
 * set to the original's message ("pathname is not absolute", "missing capability set", …). */
int cado_scado_parse_line(const char *line, size_t len, struct cado_scado_line *out, const char **err);

/* scado: finds the (well-formed) line for `path`. Returns 1 and fills *caps and digest (65 bytes: 64 hex
 * characters and NUL, or "" when the line has none), 0 when there is no such line. */
int cado_scado_find(const char *text, size_t len, const char *path, uint64_t *caps, char digest[65]);

/* scado: checks one line's syntax. Returns NULL when it is fine (or blank/comment), else the
 * message of cado_scado_parse_line. */
const char *cado_scado_check_line(const char *line, size_t len);

/* cado -S: whether the caller's NAME=VALUE entry survives the environment reset. Kept: TERM,
 * COLORTERM, LANG, LANGUAGE and LC_* when the value holds no '/' and no '%' (sudo's env_check
 * rule: they name files a library loads); TZ when it is a zone name, not a path (no '%', no
 * "..", neither '/' nor ":/" first); DISPLAY, XAUTHORITY and WAYLAND_DISPLAY (the caller's own
 * display, as sudo keeps them). Everything else is dropped. */
int cado_env_keep(const char *entry);

/* S as a log may carry it: printable ASCII kept, a backslash and every other byte as \xHH (a
 * user-chosen path must not start a forged line or hide in escape sequences), cut at 200 bytes
 * of input with "..." after. Returns out. */
#define CADO_LOG_TEXT_SIZE (200 * 4 + 4)
const char *cado_log_text(const char *s, char out[CADO_LOG_TEXT_SIZE]);

#ifdef __cplusplus
}
#endif

#endif
