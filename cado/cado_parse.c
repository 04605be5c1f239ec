/* cado/cado_parse.c — see cado_parse.h. No allocation: every token is a (pointer, length) pair
 * into the caller's buffer; names are copied into fixed buffers only to call libcap. */
#include "cado_parse.h"

#include <ctype.h>
#include <string.h>
#include <sys/capability.h>

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void trim(const char **s, size_t *len) {
  while (*len && is_blank(**s)) ++*s, --*len;
  while (*len && is_blank((*s)[*len - 1])) --*len;
}

/* The next item of [*s, *s+*len) up to one of `seps`; advances past the separator. */
static int next_item(const char **s, size_t *len, const char *seps, const char **item, size_t *ilen) {
  if (*len == 0) return 0;
  size_t i = 0;
  while (i < *len && !strchr(seps, (*s)[i])) ++i;
  *item = *s;
  *ilen = i;
  if (i < *len) ++i; /* the separator */
  *s += i;
  *len -= i;
  return 1;
}

static int parse_hex(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || len > 16) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; ++i) {
    int c = (unsigned char)s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = (v << 4) | (uint64_t)d;
  }
  *out = v;
  return 0;
}

int cado_capset_parse(const char *s, size_t len, uint64_t *caps) {
  uint64_t set = 0;
  const char *item;
  size_t ilen;
  trim(&s, &len);
  if (len == 0) return -1;
  while (next_item(&s, &len, ",", &item, &ilen)) {
    trim(&item, &ilen);
    if (ilen == 0) return -1;
    uint64_t mask;
    if (parse_hex(item, ilen, &mask) == 0) {
      set |= mask;
      continue;
    }
    char name[64];
    size_t off = 0;
    if (ilen < 4 || strncasecmp(item, "cap_", 4) != 0) {
      memcpy(name, "cap_", 4);
      off = 4;
    }
    if (ilen + off >= sizeof name) return -1;
    for (size_t i = 0; i < ilen; ++i) name[off + i] = (char)tolower((unsigned char)item[i]);
    name[off + ilen] = 0;
    cap_value_t c;
    if (cap_from_name(name, &c) < 0 || c < 0 || c > 63) return -1;
    set |= UINT64_C(1) << c;
  }
  *caps = set;
  return 0;
}

static int who_matches(const char *list, size_t len, const struct cado_who *who) {
  const char *item;
  size_t ilen;
  while (next_item(&list, &len, ", \t\n", &item, &ilen)) {
    if (ilen == 0) continue;
    if (item[0] == '@') {
      for (const char *const *g = who->groups; g && *g; ++g)
        if (strlen(*g) == ilen - 1 && memcmp(*g, item + 1, ilen - 1) == 0) return 1;
    } else if (strlen(who->user) == ilen && memcmp(who->user, item, ilen) == 0) {
      return 1;
    }
  }
  return 0;
}

uint64_t cado_conf_allowed(const char *text, size_t len, const struct cado_who *who, uint64_t wanted,
                           cado_cond_fn cond, void *ctx, int *bad_lines) {
  uint64_t ok = 0;
  const char *line;
  size_t llen;
  if (bad_lines) *bad_lines = 0;
  while ((who == NULL || (wanted & ~ok)) && next_item(&text, &len, "\n", &line, &llen)) {
    trim(&line, &llen);
    if (llen == 0 || line[0] == '#') continue;
    const char *caps_s, *users_s, *cond_s = NULL;
    size_t caps_l, users_l = 0, cond_l = 0;
    next_item(&line, &llen, ":", &caps_s, &caps_l);
    if (!next_item(&line, &llen, ":", &users_s, &users_l)) users_l = 0;
    if (llen) {
      cond_s = line;
      cond_l = llen;
      /* a fourth ':' field is not part of the format: the original stops at it */
      const char *colon = memchr(cond_s, ':', cond_l);
      if (colon) cond_l = (size_t)(colon - cond_s);
    }
    uint64_t caps;
    if (cado_capset_parse(caps_s, caps_l, &caps) < 0) {
      if (bad_lines) ++*bad_lines;
      continue;
    }
    if (who == NULL) {
      ok |= caps;
      continue;
    }
    if (!who_matches(users_s, users_l, who)) continue;
    if (cond_s && cond) {
      const char *cmd;
      size_t cmd_l;
      int holds = 1;
      while (holds && next_item(&cond_s, &cond_l, ";", &cmd, &cmd_l)) {
        trim(&cmd, &cmd_l);
        if (cmd_l && cond(cmd, cmd_l, ctx) != 0) holds = 0;
      }
      if (!holds) continue;
    }
    ok |= caps;
  }
  return ok;
}

static int is_digest(const char *s, size_t len) {
  if (len != 64) return 0;
  for (size_t i = 0; i < len; ++i)
    if (!isxdigit((unsigned char)s[i])) return 0;
  return 1;
}

/* A scado path may contain ':' and blanks when escaped with '\'. Copies the unescaped path of
 * [s, s+len) into out (size outsz); returns its length, or -1 if too long. */
static long unescape_path(const char *s, size_t len, char *out, size_t outsz) {
  size_t o = 0;
  for (size_t i = 0; i < len; ++i) {
    if (s[i] == '\\' && i + 1 < len) ++i;
    if (o + 1 >= outsz) return -1;
    out[o++] = s[i];
  }
  out[o] = 0;
  return (long)o;
}

/* Splits a scado line at unescaped ':' into up to 4 fields (trimmed); end[i] is the offset of
 * the ':' that ends field i (len for the last). Returns the number of fields. */
static int scado_fields(const char *s, size_t len, const char *f[4], size_t fl[4], size_t end[4]) {
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len && n < 4; ++i) {
    if (i < len && s[i] == '\\') {
      if (i + 1 < len) ++i; /* the escaped character is part of the field */
      continue;
    }
    if (i == len || s[i] == ':') {
      f[n] = s + start;
      fl[n] = i - start;
      end[n] = i;
      trim(&f[n], &fl[n]);
      ++n;
      start = i + 1;
    }
  }
  return n;
}

int cado_scado_parse_line(const char *line, size_t len, struct cado_scado_line *out, const char **err) {
  const char *s = line;
  size_t l = len;
  trim(&s, &l);
  if (l == 0 || s[0] == '#') return 1;
  const char *f[4];
  size_t fl[4], end[4];
  int n = scado_fields(s, l, f, fl, end);
  *err = NULL;
  if (fl[0] == 0 || f[0][0] != '/') *err = "pathname is not absolute";
  else if (unescape_path(f[0], fl[0], out->path, sizeof out->path) < 0) *err = "pathname too long";
  else if (n < 2 || fl[1] == 0) *err = "missing capability set";
  else if (cado_capset_parse(f[1], fl[1], &out->caps) < 0) *err = "wrong capability syntax";
  else if (n >= 3 && fl[2] && !is_digest(f[2], fl[2])) *err = "wrong digest syntax";
  else if (n >= 4) *err = "extra trailing chars";
  if (*err) return -1;
  out->fields = n;
  out->digest_at = n >= 3 ? (size_t)(s - line) + end[1] + 1 : len;
  out->digest[0] = 0;
  if (n >= 3 && fl[2]) {
    memcpy(out->digest, f[2], 64);
    out->digest[64] = 0;
  }
  return 0;
}

int cado_scado_find(const char *text, size_t len, const char *path, uint64_t *caps, char digest[65]) {
  const char *line, *err;
  size_t llen;
  struct cado_scado_line sl;
  while (next_item(&text, &len, "\n", &line, &llen)) {
    if (cado_scado_parse_line(line, llen, &sl, &err) != 0 || strcmp(sl.path, path) != 0) continue;
    *caps = sl.caps;
    memcpy(digest, sl.digest, 65);
    return 1;
  }
  return 0;
}

const char *cado_scado_check_line(const char *line, size_t len) {
  struct cado_scado_line sl;
  const char *err;
  return cado_scado_parse_line(line, len, &sl, &err) < 0 ? err : NULL;
}

int cado_env_keep(const char *entry) {
  static const char *const kChecked[] = {"TERM", "COLORTERM", "LANG", "LANGUAGE", NULL};
  static const char *const kAsIs[] = {"DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", NULL};
  const char *eq = strchr(entry, '=');
  if (!eq) return 0;
  size_t n = (size_t)(eq - entry);
  const char *v = eq + 1;
  for (const char *const *k = kAsIs; *k; ++k)
    if (strlen(*k) == n && memcmp(entry, *k, n) == 0) return 1;
  if (strchr(v, '%')) return 0;
  if (n == 2 && memcmp(entry, "TZ", 2) == 0)
    return v[0] != '/' && !(v[0] == ':' && v[1] == '/') && !strstr(v, "..");
  int checked = n > 3 && memcmp(entry, "LC_", 3) == 0;
  for (const char *const *k = kChecked; *k && !checked; ++k) checked = strlen(*k) == n && memcmp(entry, *k, n) == 0;
  return checked && !strchr(v, '/');
}

const char *cado_log_text(const char *s, char out[CADO_LOG_TEXT_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, i = 0;
  for (; s && s[i] && i < 200; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out[o++] = (char)c;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  if (s && s[i]) out[o++] = '.', out[o++] = '.', out[o++] = '.';
  out[o] = 0;
  return out;
}
