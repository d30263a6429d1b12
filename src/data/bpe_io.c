/* Tokenizer files: our own format (docs/tokenizer.md) and tiktoken rank
 * files, either possibly zstd compressed; atomic saving. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "data/bpe_internal.h"
#include "tyr/fileio.h"

size_t tyr__bpe_max_file = (size_t)256 << 20;

/* ---- base64 ---------------------------------------------------------------- */
static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t bpe_b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_chars[v >> 18];
    out[o++] = b64_chars[(v >> 12) & 63];
    out[o++] = b64_chars[(v >> 6) & 63];
    out[o++] = b64_chars[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = b64_chars[v >> 18];
    out[o++] = b64_chars[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int64_t bpe_b64_decode(const char *in, size_t n, uint8_t *out) {
  if (n == 0 || n % 4) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = in[i + k];
      if (c == '=') {
        if (i + 4 != n || k < 2) return -1;
        pad++;
        v[k] = 0;
      } else {
        if (pad) return -1; /* data after padding */
        v[k] = b64_value(c);
        if (v[k] < 0) return -1;
      }
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    /* the bits that padding leaves over must be zero (one encoding per string) */
    if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff))) return -1;
    out[o++] = (uint8_t)(x >> 16);
    if (pad < 2) out[o++] = (uint8_t)(x >> 8);
    if (pad < 1) out[o++] = (uint8_t)x;
  }
  return (int64_t)o;
}

/* ---- reading ----------------------------------------------------------------- */
/* Decompresses a zstd buffer into *out; raises on failure. */
static int zstd_inflate(tyr_site s, const char *op, const char *name, const uint8_t *in, size_t n,
                        uint8_t **out, size_t *out_n) {
  ZSTD_DStream *ds = ZSTD_createDStream();
  if (!ds) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
  ZSTD_initDStream(ds);
  size_t cap = n * 4 + 4096, used = 0;
  if (cap > tyr__bpe_max_file + 1) cap = tyr__bpe_max_file + 1;
  uint8_t *buf = malloc(cap);
  int rc = 0;
  if (!buf) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
    goto done;
  }
  ZSTD_inBuffer ib = {in, n, 0};
  for (;;) {
    if (used == cap) {
      if (cap > tyr__bpe_max_file) {
        rc = tyr_raise(TYR_ERR_FORMAT, s, op, "%s: decompresses to more than %zu bytes", name,
                       tyr__bpe_max_file);
        goto done;
      }
      size_t ncap = cap * 2;
      if (ncap > tyr__bpe_max_file + 1) ncap = tyr__bpe_max_file + 1;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        rc = tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
        goto done;
      }
      buf = nb;
      cap = ncap;
    }
    ZSTD_outBuffer ob = {buf, cap, used};
    size_t in_before = ib.pos;
    size_t ret = ZSTD_decompressStream(ds, &ob, &ib);
    if (ZSTD_isError(ret)) {
      rc = tyr_raise(TYR_ERR_FORMAT, s, op, "%s: bad zstd data: %s", name, ZSTD_getErrorName(ret));
      goto done;
    }
    bool progress = ob.pos > used || ib.pos > in_before;
    used = ob.pos;
    if (ret == 0 && ib.pos == ib.size) break; /* the last frame is complete */
    if (used < cap && (ib.pos == ib.size || !progress)) {
      rc = tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated zstd data", name);
      goto done;
    }
  }
done:
  ZSTD_freeDStream(ds);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_n = used;
  return 0;
}

static bool is_zstd(const uint8_t *p, size_t n) {
  return n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd;
}

static int read_file(tyr_site s, const char *op, const char *path, uint8_t **out, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return tyr_raise(TYR_ERR_IO, s, op, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, used = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", path);
  }
  for (;;) {
    if (used == cap) {
      if (cap > tyr__bpe_max_file) {
        free(buf);
        fclose(f);
        return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: larger than %zu bytes", path,
                         tyr__bpe_max_file);
      }
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", path);
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + used, 1, cap - used, f);
    used += got;
    if (got == 0) break;
  }
  bool bad = ferror(f);
  int err = errno;
  fclose(f);
  if (bad) {
    free(buf);
    return tyr_raise(TYR_ERR_IO, s, op, "%s: read error: %s", path, strerror(err));
  }
  *out = buf;
  *n = used;
  return 0;
}

/* Lines of a buffer: without the "\n" and a "\r" before it. */
typedef struct line_reader {
  const char *p;
  size_t n, pos, lineno;
  bool open; /* the last line read had no "\n" */
} line_reader;

static bool next_line(line_reader *r, const char **line, size_t *len) {
  if (r->pos >= r->n) return false;
  const char *b = r->p + r->pos;
  const char *nl = memchr(b, '\n', r->n - r->pos);
  size_t l = nl ? (size_t)(nl - b) : r->n - r->pos;
  r->pos += l + (nl ? 1 : 0);
  r->open = !nl;
  if (l && b[l - 1] == '\r') l--;
  *line = b;
  *len = l;
  r->lineno++;
  return true;
}

/* Parses a decimal number of at most 9 digits (no sign); false otherwise. */
static bool parse_uint(const char *p, size_t n, uint32_t *v) {
  if (n == 0 || n > 9) return false;
  uint32_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    x = x * 10 + (uint32_t)(p[i] - '0');
  }
  *v = x;
  return true;
}

/* Ranked tokens as they are read. */
typedef struct rank_list {
  uint8_t *bytes;
  size_t nbytes, bcap;
  size_t *off;
  uint32_t *len, *rank;
  size_t *line;
  size_t n, cap;
} rank_list;

static void rank_list_free(rank_list *l) {
  free(l->bytes);
  free(l->off);
  free(l->len);
  free(l->rank);
  free(l->line);
}

/* Parses "base64 rank"; returns 0 or raises. */
static int rank_line(tyr_site s, const char *op, const char *name, size_t lineno, const char *line,
                     size_t len, rank_list *l) {
  const char *sp = memchr(line, ' ', len);
  if (!sp)
    return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: expected 'base64token rank'", name,
                     lineno);
  size_t tl = (size_t)(sp - line);
  uint32_t rank;
  if (!parse_uint(sp + 1, len - tl - 1, &rank))
    return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: bad rank '%.*s'", name, lineno,
                     (int)(len - tl - 1 > 32 ? 32 : len - tl - 1), sp + 1);
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 1024;
    size_t *off = realloc(l->off, nc * sizeof *off);
    if (off) l->off = off;
    uint32_t *ln = realloc(l->len, nc * sizeof *ln);
    if (ln) l->len = ln;
    uint32_t *rk = realloc(l->rank, nc * sizeof *rk);
    if (rk) l->rank = rk;
    size_t *li = realloc(l->line, nc * sizeof *li);
    if (li) l->line = li;
    if (!off || !ln || !rk || !li)
      return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
    l->cap = nc;
  }
  if (tl == 0 || tl % 4)
    return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: bad base64 '%.*s'", name, lineno,
                     (int)(tl > 32 ? 32 : tl), line);
  if (l->nbytes + tl > l->bcap) {
    size_t nc = l->bcap ? l->bcap * 2 : 65536;
    while (nc < l->nbytes + tl) nc *= 2;
    uint8_t *nb = realloc(l->bytes, nc);
    if (!nb) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
    l->bytes = nb;
    l->bcap = nc;
  }
  int64_t got = bpe_b64_decode(line, tl, l->bytes + l->nbytes);
  if (got <= 0)
    return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: bad base64 '%.*s'", name, lineno,
                     (int)(tl > 32 ? 32 : tl), line);
  l->off[l->n] = l->nbytes;
  l->len[l->n] = (uint32_t)got;
  l->rank[l->n] = rank;
  l->line[l->n] = lineno;
  l->nbytes += (size_t)got;
  l->n++;
  return 0;
}

static tyr_tokenizer *build_from_list(tyr_site s, const char *op, const char *name,
                                      const char *pattern, rank_list *l,
                                      const char *const *specials, const uint32_t *special_lens,
                                      const uint32_t *special_ids, int n_specials) {
  const uint8_t **tok = malloc((l->n + 1) * sizeof *tok);
  if (!tok) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
    return NULL;
  }
  for (size_t i = 0; i < l->n; i++) tok[i] = l->bytes + l->off[i];
  tyr_tokenizer *t = bpe_build_lines(s, op, name, pattern, tok, l->len, l->rank, l->line, l->n,
                                     specials, special_lens, special_ids, n_specials);
  free(tok);
  return t;
}

static bool line_is(const char *line, size_t len, const char *word) {
  size_t w = strlen(word);
  return len >= w && memcmp(line, word, w) == 0;
}

/* A line of our format: every line but 'end' must end in a newline. */
static bool next_line_checked(tyr_site s, const char *op, const char *name, line_reader *r,
                              const char **line, size_t *len, bool *failed) {
  if (!next_line(r, line, len)) return false;
  if (r->open && !(*len == 3 && memcmp(*line, "end", 3) == 0)) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated: the file ends inside line %zu", name,
              r->lineno);
    *failed = true;
    return false;
  }
  return true;
}

/* Our format, from a decompressed buffer. */
static tyr_tokenizer *parse_tyr(tyr_site s, const char *op, const char *name, const char *data,
                                size_t n) {
  line_reader r = {data, n, 0, 0, false};
  const char *line;
  size_t len;
  rank_list l = {0};
  char *pattern = NULL;
  char **snames = NULL;
  uint32_t *slens = NULL, *sids = NULL;
  int ns = 0, scap = 0;
  bool failed = false;
  tyr_tokenizer *t = NULL;
  if (!next_line(&r, &line, &len) || !line_is(line, len, "tyr-bpe ")) {
    tyr_raise(TYR_ERR_FORMAT, s, op,
              "%s: not a tyr tokenizer file (the first line must be 'tyr-bpe 1'; a tiktoken "
              "rank file loads with tyr_tokenizer_load_tiktoken)",
              name);
    goto done;
  }
  if (len != 9 || line[8] != '1' || r.open) {
    if (len == 9 && line[8] == '1') {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated: the file ends inside line 1", name);
      goto done;
    }
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: unsupported version '%.*s' (this reader knows 1)", name,
              (int)(len - 8 > 16 ? 16 : len - 8), line + 8);
    goto done;
  }
  uint32_t nranks = 0;
  bool have_ranks = false;
  while (!have_ranks) {
    if (!next_line_checked(s, op, name, &r, &line, &len, &failed)) {
      if (!failed)
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated: the header ends before 'ranks N'", name);
      goto done;
    }
    if (line_is(line, len, "pattern ")) {
      if (pattern) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: a second pattern", name, r.lineno);
        goto done;
      }
      size_t pl = len - 8;
      if (pl > BPE_MAX_PATTERN || memchr(line + 8, 0, pl)) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: pattern too long or holds a NUL byte", name,
                  r.lineno);
        goto done;
      }
      pattern = malloc(pl + 1);
      if (!pattern) goto oom;
      memcpy(pattern, line + 8, pl);
      pattern[pl] = 0;
      /* a pattern that does not compile is named with its file and line */
      char msg[256];
      size_t erroff = 0;
      pcre2_code *re = bpe_regex_try(pattern, msg, sizeof msg, &erroff);
      if (!re) {
        tyr_raise(TYR_ERR_FORMAT, s, op,
                  "%s: line %zu: the split pattern does not compile: %s at offset %zu", name,
                  r.lineno, msg, erroff);
        goto done;
      }
      pcre2_code_free(re);
    } else if (line_is(line, len, "special ")) {
      const char *a = line + 8, *end = line + len;
      const char *sp = memchr(a, ' ', (size_t)(end - a));
      uint32_t id;
      if (!sp || !parse_uint(a, (size_t)(sp - a), &id)) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: expected 'special ID NAME'", name,
                  r.lineno);
        goto done;
      }
      const char *nm = sp + 1;
      size_t nl = (size_t)(end - nm);
      const char *why = bpe_special_name_problem(nm, nl);
      if (why) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: the special token name %s", name, r.lineno,
                  why);
        goto done;
      }
      if (ns == scap) {
        if (ns >= 65536) {
          tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: more than 65536 special tokens", name,
                    r.lineno);
          goto done;
        }
        int nc = scap ? scap * 2 : 16;
        char **nn = realloc(snames, (size_t)nc * sizeof *nn);
        if (nn) snames = nn;
        uint32_t *nl2 = realloc(slens, (size_t)nc * sizeof *nl2);
        if (nl2) slens = nl2;
        uint32_t *ni = realloc(sids, (size_t)nc * sizeof *ni);
        if (ni) sids = ni;
        if (!nn || !nl2 || !ni) goto oom;
        scap = nc;
      }
      snames[ns] = malloc(nl);
      if (!snames[ns]) goto oom;
      memcpy(snames[ns], nm, nl);
      slens[ns] = (uint32_t)nl;
      sids[ns] = id;
      ns++;
    } else if (line_is(line, len, "ranks ")) {
      if (!parse_uint(line + 6, len - 6, &nranks) || nranks > TYR_TOKENIZER_MAX_ID) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: bad rank count '%.*s'", name, r.lineno,
                  (int)(len - 6 > 16 ? 16 : len - 6), line + 6);
        goto done;
      }
      have_ranks = true;
    } else {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: unknown header line '%.*s'", name, r.lineno,
                (int)(len > 32 ? 32 : len), line);
      goto done;
    }
  }
  if (!pattern) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: 'ranks' before any 'pattern' line", name,
              r.lineno);
    goto done;
  }
  for (uint32_t i = 0; i < nranks; i++) {
    if (!next_line_checked(s, op, name, &r, &line, &len, &failed)) {
      if (!failed)
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated: %u of %u rank lines", name, i, nranks);
      goto done;
    }
    if (len == 3 && memcmp(line, "end", 3) == 0) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: 'end' after %u of %u rank lines", name,
                r.lineno, i, nranks);
      goto done;
    }
    if (rank_line(s, op, name, r.lineno, line, len, &l)) goto done;
  }
  if (!next_line_checked(s, op, name, &r, &line, &len, &failed) || len != 3 ||
      memcmp(line, "end", 3) != 0) {
    if (failed) goto done;
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: truncated: no 'end' line after the %u ranks", name,
              nranks);
    goto done;
  }
  if (r.pos < n) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: line %zu: %zu bytes after the 'end' line", name,
              r.lineno + 1, n - r.pos);
    goto done;
  }
  t = build_from_list(s, op, name, pattern, &l, (const char *const *)snames, slens, sids, ns);
  goto done;
oom:
  tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
done:
  rank_list_free(&l);
  free(pattern);
  for (int i = 0; i < ns; i++) free(snames[i]);
  free(snames);
  free(slens);
  free(sids);
  return t;
}

static tyr_tokenizer *load_mem(tyr_site s, const char *op, const uint8_t *data, size_t n,
                               const char *name, bool tiktoken, const char *pattern,
                               const char *const *specials, const uint32_t *special_ids,
                               int n_specials) {
  uint8_t *plain = NULL;
  if (!name) name = "(memory)";
  if (!data && n) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s: NULL data", name);
    return NULL;
  }
  if (is_zstd(data, n)) {
    if (zstd_inflate(s, op, name, data, n, &plain, &n)) return NULL;
    data = plain;
  } else if (n > tyr__bpe_max_file) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: larger than %zu bytes", name, tyr__bpe_max_file);
    return NULL;
  }
  tyr_tokenizer *t = NULL;
  if (!tiktoken) {
    t = parse_tyr(s, op, name, (const char *)data, n);
  } else {
    if (n_specials < 0 || (n_specials > 0 && !specials)) {
      tyr_raise(TYR_ERR_ARG, s, op, "%s: bad special tokens (%d)", name, n_specials);
      goto done;
    }
    rank_list l = {0};
    line_reader r = {(const char *)data, n, 0, 0, false};
    const char *line;
    size_t len;
    bool ok = true;
    while (ok && next_line(&r, &line, &len))
      if (len) ok = rank_line(s, op, name, r.lineno, line, len, &l) == 0;
    uint32_t *ids = NULL;
    if (ok && n_specials > 0 && !special_ids) {
      ids = malloc((size_t)n_specials * sizeof *ids);
      if (!ids) {
        tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
        ok = false;
      } else {
        uint32_t next = 0;
        for (size_t i = 0; i < l.n; i++)
          if (l.rank[i] + 1 > next) next = l.rank[i] + 1;
        for (int k = 0; k < n_specials; k++) ids[k] = next + (uint32_t)k;
      }
    }
    if (ok)
      t = build_from_list(s, op, name, pattern, &l, specials, NULL, special_ids ? special_ids : ids,
                          n_specials);
    free(ids);
    rank_list_free(&l);
  }
done:
  free(plain);
  return t;
}

tyr_tokenizer *tyr_tokenizer_load_mem_at(tyr_site s, const void *data, size_t n, const char *name) {
  return load_mem(s, "tyr_tokenizer_load", data, n, name, false, NULL, NULL, NULL, 0);
}

tyr_tokenizer *tyr_tokenizer_load_at(tyr_site s, const char *path) {
  const char *op = "tyr_tokenizer_load";
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, op, "NULL path");
    return NULL;
  }
  uint8_t *buf;
  size_t n;
  if (read_file(s, op, path, &buf, &n)) return NULL;
  tyr_tokenizer *t = load_mem(s, op, buf, n, path, false, NULL, NULL, NULL, 0);
  free(buf);
  return t;
}

tyr_tokenizer *tyr_tokenizer_load_tiktoken_mem_at(tyr_site s, const void *data, size_t n,
                                                  const char *name, const char *pattern,
                                                  const char *const *specials,
                                                  const uint32_t *special_ids, int n_specials) {
  return load_mem(s, "tyr_tokenizer_load_tiktoken", data, n, name, true, pattern, specials,
                  special_ids, n_specials);
}

tyr_tokenizer *tyr_tokenizer_load_tiktoken_at(tyr_site s, const char *path, const char *pattern,
                                              const char *const *specials,
                                              const uint32_t *special_ids, int n_specials) {
  const char *op = "tyr_tokenizer_load_tiktoken";
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, op, "NULL path");
    return NULL;
  }
  uint8_t *buf;
  size_t n;
  if (read_file(s, op, path, &buf, &n)) return NULL;
  tyr_tokenizer *t =
      load_mem(s, op, buf, n, path, true, pattern, specials, special_ids, n_specials);
  free(buf);
  return t;
}

/* ---- writing -------------------------------------------------------------------- */
char *bpe_serialize(const tyr_tokenizer *t, size_t *len) {
  size_t cap = 64 + strlen(t->pattern);
  for (int k = 0; k < t->n_specials; k++) cap += 32 + t->special_len[k];
  for (uint32_t id = 0; id < t->n_ids; id++)
    if (t->kind[id] == BPE_RANK) cap += (t->tok[id].len + 2) / 3 * 4 + 12;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  size_t o = (size_t)snprintf(buf, cap, "tyr-bpe 1\npattern %s\n", t->pattern);
  for (int k = 0; k < t->n_specials; k++) {
    o += (size_t)snprintf(buf + o, cap - o, "special %u ", t->special_ids[k]);
    memcpy(buf + o, t->bytes + t->special_off[k], t->special_len[k]);
    o += t->special_len[k];
    buf[o++] = '\n';
  }
  o += (size_t)snprintf(buf + o, cap - o, "ranks %u\n", t->n_ranks);
  for (uint32_t id = 0; id < t->n_ids; id++) {
    if (t->kind[id] != BPE_RANK) continue;
    o += bpe_b64_encode(t->bytes + t->tok[id].off, t->tok[id].len, buf + o);
    o += (size_t)snprintf(buf + o, cap - o, " %u\n", id);
  }
  memcpy(buf + o, "end\n", 4);
  o += 4;
  *len = o;
  return buf;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int tyr_tokenizer_save_at(tyr_site s, const tyr_tokenizer *t, const char *path) {
  const char *op = "tyr_tokenizer_save";
  if (!t || !path) return tyr_raise(TYR_ERR_ARG, s, op, "NULL argument");
  if (t->merge_id)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "%s: a tokenizer loaded from tokenizer.json merges by its merge list, which "
                     "Tyr's tokenizer format does not hold",
                     path);
  if (strpbrk(t->pattern, "\r\n"))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "%s: the split pattern holds a line break (write it as \\n in the pattern)",
                     path);
  size_t n;
  char *text = bpe_serialize(t, &n);
  if (!text) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", path);
  const void *data = text;
  void *packed = NULL;
  if (ends_with(path, ".zst")) {
    size_t bound = ZSTD_compressBound(n);
    packed = malloc(bound);
    if (!packed) {
      free(text);
      return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", path);
    }
    size_t z = 0;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc) z = (size_t)-1; /* an error code */
    if (cc) ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 12);
    if (cc) ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    if (cc) z = ZSTD_compress2(cc, packed, bound, text, n);
    ZSTD_freeCCtx(cc);
    if (ZSTD_isError(z)) {
      free(text);
      free(packed);
      return tyr_raise(TYR_ERR_IO, s, op, "%s: zstd: %s", path, ZSTD_getErrorName(z));
    }
    data = packed;
    n = z;
  }
  /* temporary file, fsync, rename, directory fsync (tyr/fileio.h) */
  int rc = tyr_file_write_atomic_at(s, path, data, n);

  free(text);
  free(packed);
  return rc;
}
