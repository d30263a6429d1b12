/* safetensors files: a reader that checks the whole header before anything
 * is loaded (JSON parsed with jansson, tensors read with pread), and a
 * writer that produces the reference writer's bytes.  The format and the
 * checks are described in include/tyr/safetensors.h. */
#include "tyr/safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backend.h"
#include "tyr/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes little-endian data in place: it needs a little-endian host"
#endif

/* ---- dtypes --------------------------------------------------------------- */
typedef struct st_dtype {
  const char *name;
  int dtype; /* tyr_dtype, or -1 for a safetensors dtype Tyr does not have */
  int order; /* position in the reference writer's dtype order (alignment) */
} st_dtype;

/* Every dtype the reference implementation knows.  `order` follows its Dtype
 * enum, which the writer sorts by (descending) before the name. */
static const st_dtype k_dtypes[] = {
    {"BOOL", TYR_BOOL, 0},  {"F4", -1, 1},        {"F6_E2M3", -1, 2},   {"F6_E3M2", -1, 3},
    {"U8", TYR_U8, 4},      {"I8", -1, 5},        {"F8_E5M2", -1, 6},   {"F8_E4M3", -1, 7},
    {"F8_E8M0", -1, 8},     {"I16", -1, 9},       {"U16", -1, 10},      {"F16", TYR_F16, 11},
    {"BF16", TYR_BF16, 12}, {"I32", TYR_I32, 13}, {"U32", -1, 14},      {"F32", TYR_F32, 15},
    {"C64", -1, 16},        {"F64", TYR_F64, 17}, {"I64", TYR_I64, 18}, {"U64", -1, 19},
};
#define N_DTYPES (int)(sizeof k_dtypes / sizeof k_dtypes[0])

static const st_dtype *dtype_entry(tyr_dtype dt) {
  for (int i = 0; i < N_DTYPES; i++)
    if (k_dtypes[i].dtype == (int)dt) return &k_dtypes[i];
  return NULL;
}

const char *tyr_safetensors_dtype_name(tyr_dtype dt) {
  const st_dtype *d = dtype_entry(dt);
  return d ? d->name : NULL;
}

/* ---- small helpers -------------------------------------------------------- */
static uint64_t le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* Index of the first byte that is not part of valid UTF-8 (as Rust's
 * str::from_utf8 defines it: no overlong forms, no surrogates, nothing past
 * U+10FFFF), or n when all of it is valid. */
static size_t utf8_check(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
      len = 3;
    else if (c == 0xED)
      len = 3, hi = 0x9F;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;
    else
      return i;
    if (n - i < (size_t)len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (int k = 2; k < len; k++)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += (size_t)len;
  }
  return n;
}

static bool utf8_valid(const char *s) {
  size_t n = strlen(s);
  return utf8_check((const unsigned char *)s, n) == n;
}

/* A name quoted for a message: 'name' with quotes, backslashes and control
 * characters escaped, cut (at a character boundary) when long. */
#define QNAME_MAX 160
static const char *qname(const char *s, size_t n, char *buf) {
  size_t o = 0;
  buf[o++] = '\'';
  size_t i = 0;
  for (; i < n && o < QNAME_MAX - 10; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\'' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(buf + o, 5, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  if (i < n) {
    /* do not leave half a UTF-8 sequence */
    while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80) o--;
    if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0) o--;
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '\'';
  buf[o] = 0;
  return buf;
}

/* Reads exactly n bytes at off: 0, -1 with errno set, or 1 at end of file. */
static int read_full(int fd, void *dst, uint64_t n, uint64_t off) {
  char *p = dst;
  while (n > 0) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
    ssize_t r = pread(fd, p, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 1;
    p += r;
    n -= (uint64_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *src, uint64_t n) {
  const char *p = src;
  while (n > 0) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (uint64_t)w;
  }
  return 0;
}

/* ---- the open file -------------------------------------------------------- */
struct tyr_safetensors {
  char *path;
  int fd;
  uint64_t data_start; /* 8 + header size */
  uint64_t data_size;
  int n;
  tyr_safetensors_entry *entries; /* sorted by offsets */
  int *by_name;                   /* indices into entries, sorted by name */
  int nmeta;
  char **meta_keys; /* sorted */
  char **meta_values;
};

static void st_free(tyr_safetensors *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  if (f->entries)
    for (int i = 0; i < f->n; i++) free((char *)f->entries[i].name);
  free(f->entries);
  free(f->by_name);
  for (int i = 0; i < f->nmeta; i++) {
    free(f->meta_keys[i]);
    free(f->meta_values[i]);
  }
  free(f->meta_keys);
  free(f->meta_values);
  free(f->path);
  free(f);
}

void tyr_safetensors_close(tyr_safetensors *f) {
  st_free(f);
}

const char *tyr_safetensors_path(const tyr_safetensors *f) {
  return f ? f->path : NULL;
}
int tyr_safetensors_count(const tyr_safetensors *f) {
  return f ? f->n : 0;
}

const tyr_safetensors_entry *tyr_safetensors_entry_at(const tyr_safetensors *f, int i) {
  if (!f || i < 0 || i >= f->n) return NULL;
  return &f->entries[i];
}

const char *tyr_safetensors_name(const tyr_safetensors *f, int i) {
  const tyr_safetensors_entry *e = tyr_safetensors_entry_at(f, i);
  return e ? e->name : NULL;
}

const tyr_safetensors_entry *tyr_safetensors_find(const tyr_safetensors *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const tyr_safetensors_entry *e = &f->entries[f->by_name[mid]];
    int c = strcmp(name, e->name);
    if (c == 0) return e;
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *tyr_safetensors_metadata(const tyr_safetensors *f, const char *key) {
  if (!f || !key) return NULL;
  int lo = 0, hi = f->nmeta - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(key, f->meta_keys[mid]);
    if (c == 0) return f->meta_values[mid];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

int tyr_safetensors_metadata_count(const tyr_safetensors *f) {
  return f ? f->nmeta : 0;
}

const char *tyr_safetensors_metadata_key(const tyr_safetensors *f, int i) {
  if (!f || i < 0 || i >= f->nmeta) return NULL;
  return f->meta_keys[i];
}

/* ---- parsing -------------------------------------------------------------- */
typedef struct parse_ctx {
  tyr_site s;
  tyr_safetensors *f;
} parse_ctx;

/* Raises a format error naming the file; returns false. */
__attribute__((format(printf, 2, 3))) static bool fail(parse_ctx *c, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tyr_raise(TYR_ERR_FORMAT, c->s, c->f->path, "%s", msg);
  return false;
}

static bool key_is(const char *key, size_t klen, const char *lit) {
  return strlen(lit) == klen && memcmp(key, lit, klen) == 0;
}

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static bool parse_metadata(parse_ctx *c, json_t *meta) {
  char q[QNAME_MAX + 8];
  if (json_is_null(meta)) return true;
  if (!json_is_object(meta)) return fail(c, "\"__metadata__\" is not an object of strings");
  size_t n = json_object_size(meta);
  tyr_safetensors *f = c->f;
  f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
  f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
  if (!f->meta_keys || !f->meta_values) {
    tyr_raise(TYR_ERR_MEMORY, c->s, f->path, "out of host memory reading the header");
    return false;
  }
  const char *key;
  size_t klen;
  json_t *v;
  json_object_keylen_foreach(meta, key, klen, v) {
    if (memchr(key, 0, klen))
      return fail(c, "metadata key %s contains a NUL character", qname(key, klen, q));
    if (!json_is_string(v))
      return fail(c, "metadata value for key %s is not a string", qname(key, klen, q));
    size_t vlen = json_string_length(v);
    if (memchr(json_string_value(v), 0, vlen))
      return fail(c, "metadata value for key %s contains a NUL character", qname(key, klen, q));
    char *k = dup_n(key, klen), *val = dup_n(json_string_value(v), vlen);
    if (!k || !val) {
      free(k);
      free(val);
      tyr_raise(TYR_ERR_MEMORY, c->s, f->path, "out of host memory reading the header");
      return false;
    }
    f->meta_keys[f->nmeta] = k;
    f->meta_values[f->nmeta] = val;
    f->nmeta++;
  }
  /* sort keys (insertion sort on pairs: metadata is small) */
  for (int i = 1; i < f->nmeta; i++) {
    char *k = f->meta_keys[i], *val = f->meta_values[i];
    int j = i - 1;
    while (j >= 0 && strcmp(f->meta_keys[j], k) > 0) {
      f->meta_keys[j + 1] = f->meta_keys[j];
      f->meta_values[j + 1] = f->meta_values[j];
      j--;
    }
    f->meta_keys[j + 1] = k;
    f->meta_values[j + 1] = val;
  }
  return true;
}

/* A non-negative JSON integer into *out. */
static bool json_u64(json_t *v, uint64_t *out) {
  if (!json_is_integer(v)) return false;
  json_int_t x = json_integer_value(v);
  if (x < 0) return false;
  *out = (uint64_t)x;
  return true;
}

static bool parse_entry(parse_ctx *c, const char *key, size_t klen, json_t *v,
                        tyr_safetensors_entry *e) {
  char q[QNAME_MAX + 8];
  const char *qn = qname(key, klen, q);
  if (memchr(key, 0, klen)) return fail(c, "tensor %s: the name contains a NUL character", qn);
  if (!json_is_object(v)) return fail(c, "tensor %s: the entry is not an object", qn);
  static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
  json_t *fv[3];
  for (int i = 0; i < 3; i++) {
    fv[i] = json_object_get(v, fields[i]);
    if (!fv[i]) return fail(c, "tensor %s: missing field \"%s\"", qn, fields[i]);
  }
  if (json_object_size(v) != 3) {
    const char *fk;
    size_t fklen;
    json_t *x;
    char q2[QNAME_MAX + 8];
    json_object_keylen_foreach(v, fk, fklen, x) {
      (void)x;
      if (!key_is(fk, fklen, "dtype") && !key_is(fk, fklen, "shape") &&
          !key_is(fk, fklen, "data_offsets"))
        return fail(c, "tensor %s: unexpected field %s", qn, qname(fk, fklen, q2));
    }
    return fail(c, "tensor %s: unexpected fields", qn);
  }

  /* dtype */
  if (!json_is_string(fv[0])) return fail(c, "tensor %s: dtype is not a string", qn);
  const char *dn = json_string_value(fv[0]);
  size_t dlen = json_string_length(fv[0]);
  const st_dtype *dt = NULL;
  for (int i = 0; i < N_DTYPES; i++)
    if (strlen(k_dtypes[i].name) == dlen && memcmp(k_dtypes[i].name, dn, dlen) == 0)
      dt = &k_dtypes[i];
  if (!dt) {
    char q2[QNAME_MAX + 8];
    return fail(c, "tensor %s: unknown dtype %s", qn, qname(dn, dlen, q2));
  }
  if (dt->dtype < 0)
    return fail(c,
                "tensor %s: unsupported dtype %s (Tyr reads F64, F32, BF16, F16, I64, I32, U8 and "
                "BOOL)",
                qn, dt->name);
  e->dtype = (tyr_dtype)dt->dtype;

  /* shape */
  if (!json_is_array(fv[1])) return fail(c, "tensor %s: shape is not an array", qn);
  size_t rank = json_array_size(fv[1]);
  if (rank > TYR_MAX_RANK)
    return fail(c, "tensor %s: rank %zu is more than Tyr's maximum of %d", qn, rank, TYR_MAX_RANK);
  e->rank = (int)rank;
  /* The product of the non-zero dims must stay within what Tyr's tensors can
   * index (a zero-sized tensor's strides still multiply the other dims).
   * This also covers the reference reader's overflow check. */
  uint64_t nonzero = 1;
  bool too_big = false, empty = false;
  for (size_t i = 0; i < rank; i++) {
    json_t *d = json_array_get(fv[1], i);
    uint64_t x;
    if (!json_u64(d, &x)) {
      if (json_is_integer(d))
        return fail(c, "tensor %s: shape[%zu] is negative (%lld)", qn, i,
                    (long long)json_integer_value(d));
      return fail(c, "tensor %s: shape[%zu] is not an integer", qn, i);
    }
    e->shape[i] = (int64_t)x;
    if (x == 0)
      empty = true;
    else if (__builtin_mul_overflow(nonzero, x, &nonzero) || nonzero > (uint64_t)INT64_MAX / 16)
      too_big = true;
  }
  if (too_big) {
    char b[200];
    return fail(c, "tensor %s: shape %s is too large (its size overflows)", qn,
                tyr_shape_str(e->shape, e->rank, b, sizeof b));
  }
  uint64_t nbytes = empty ? 0 : nonzero * (uint64_t)tyr_dtype_size(e->dtype);

  /* data_offsets */
  if (!json_is_array(fv[2]) || json_array_size(fv[2]) != 2)
    return fail(c, "tensor %s: data_offsets is not an array of two integers", qn);
  uint64_t be[2];
  for (int i = 0; i < 2; i++) {
    json_t *d = json_array_get(fv[2], (size_t)i);
    if (!json_u64(d, &be[i])) {
      if (json_is_integer(d))
        return fail(c, "tensor %s: data_offsets[%d] is negative (%lld)", qn, i,
                    (long long)json_integer_value(d));
      return fail(c, "tensor %s: data_offsets[%d] is not an integer", qn, i);
    }
  }
  e->begin = be[0];
  e->end = be[1];
  uint64_t ds = c->f->data_size;
  if (e->end < e->begin)
    return fail(c, "tensor %s: data_offsets [%llu, %llu] end before they begin", qn,
                (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end > ds)
    return fail(c,
                "tensor %s: data_offsets [%llu, %llu] run past the end of the data buffer "
                "(%llu bytes; is the file truncated?)",
                qn, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)ds);
  if (e->end - e->begin != nbytes) {
    char b[200];
    return fail(c,
                "tensor %s: data_offsets [%llu, %llu] hold %llu bytes but dtype %s and shape %s "
                "need %llu",
                qn, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)(e->end - e->begin), dt->name,
                tyr_shape_str(e->shape, e->rank, b, sizeof b), (unsigned long long)nbytes);
  }
  e->name = dup_n(key, klen);
  if (!e->name) {
    tyr_raise(TYR_ERR_MEMORY, c->s, c->f->path, "out of host memory reading the header");
    return false;
  }
  return true;
}

static int cmp_offsets(const void *a, const void *b) {
  const tyr_safetensors_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

static _Thread_local const tyr_safetensors_entry *t_sort_entries;
static int cmp_by_name(const void *a, const void *b) {
  return strcmp(t_sort_entries[*(const int *)a].name, t_sort_entries[*(const int *)b].name);
}

static bool parse_header(parse_ctx *c, const char *hdr, size_t n) {
  tyr_safetensors *f = c->f;
  size_t bad = utf8_check((const unsigned char *)hdr, n);
  if (bad != n) return fail(c, "the header is not valid UTF-8 (byte %zu of %zu)", bad, n);
  if (n == 0 || hdr[0] != '{') return fail(c, "the header does not start with '{'");
  json_error_t je;
  json_t *root = json_loadb(hdr, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (!root)
    return fail(c, "the header is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                je.column);
  bool ok = false;
  if (!json_is_object(root)) {
    fail(c, "the header is not a JSON object");
    goto done;
  }
  size_t total = json_object_size(root);
  f->entries = calloc(total ? total : 1, sizeof *f->entries);
  f->by_name = calloc(total ? total : 1, sizeof *f->by_name);
  if (!f->entries || !f->by_name) {
    tyr_raise(TYR_ERR_MEMORY, c->s, f->path, "out of host memory reading the header");
    goto done;
  }
  json_t *meta = NULL;
  const char *key;
  size_t klen;
  json_t *v;
  json_object_keylen_foreach(root, key, klen, v) {
    if (key_is(key, klen, "__metadata__")) {
      meta = v;
      continue;
    }
    if (f->n >= INT32_MAX - 1) {
      fail(c, "too many tensors");
      goto done;
    }
    if (!parse_entry(c, key, klen, v, &f->entries[f->n])) goto done;
    f->n++;
  }
  if (meta && !parse_metadata(c, meta)) goto done;

  /* the tensors, sorted by offsets, must tile the data buffer exactly */
  qsort(f->entries, (size_t)f->n, sizeof *f->entries, cmp_offsets);
  uint64_t pos = 0;
  for (int i = 0; i < f->n; i++) {
    const tyr_safetensors_entry *e = &f->entries[i];
    char q[QNAME_MAX + 8], q2[QNAME_MAX + 8];
    if (e->begin < pos) {
      const tyr_safetensors_entry *p = &f->entries[i - 1];
      fail(c, "tensor %s: data_offsets [%llu, %llu] overlap tensor %s at [%llu, %llu]",
           qname(e->name, strlen(e->name), q), (unsigned long long)e->begin,
           (unsigned long long)e->end, qname(p->name, strlen(p->name), q2),
           (unsigned long long)p->begin, (unsigned long long)p->end);
      goto done;
    }
    if (e->begin > pos) {
      fail(c,
           "tensor %s: data_offsets [%llu, %llu] leave a gap of %llu bytes after the previous "
           "tensor (the tensors must cover the data buffer contiguously)",
           qname(e->name, strlen(e->name), q), (unsigned long long)e->begin,
           (unsigned long long)e->end, (unsigned long long)(e->begin - pos));
      goto done;
    }
    pos = e->end;
  }
  if (pos != f->data_size) {
    if (f->n == 0) {
      fail(c, "the header lists no tensors but the data buffer has %llu bytes",
           (unsigned long long)f->data_size);
    } else {
      const tyr_safetensors_entry *e = &f->entries[f->n - 1];
      char q[QNAME_MAX + 8];
      uint64_t extra = f->data_size - pos;
      fail(c,
           "%llu byte%s follow%s the last tensor %s (data buffer %llu bytes, tensors end at %llu)",
           (unsigned long long)extra, extra == 1 ? "" : "s", extra == 1 ? "s" : "",
           qname(e->name, strlen(e->name), q), (unsigned long long)f->data_size,
           (unsigned long long)pos);
    }
    goto done;
  }
  for (int i = 0; i < f->n; i++) f->by_name[i] = i;
  t_sort_entries = f->entries;
  qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_by_name);
  t_sort_entries = NULL;
  ok = true;
done:
  json_decref(root);
  return ok;
}

tyr_safetensors *tyr_safetensors_open_at(tyr_site s, const char *path) {
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_safetensors_open", "path is NULL");
    return NULL;
  }
  tyr_safetensors *f = calloc(1, sizeof *f);
  char *path_copy = strdup(path);
  if (!f || !path_copy) {
    free(f);
    free(path_copy);
    tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
    return NULL;
  }
  f->path = path_copy;
  /* O_NONBLOCK so that a FIFO is refused below instead of blocking here */
  f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f->fd < 0) {
    int err = errno;
    st_free(f);
    tyr_raise(TYR_ERR_IO, s, path, "cannot open: %s", strerror(err));
    return NULL;
  }
  parse_ctx c = {s, f};
  struct stat st;
  char *hdr = NULL;
  if (fstat(f->fd, &st) != 0) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot stat: %s", strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    tyr_raise(TYR_ERR_IO, s, path, "not a regular file");
    goto fail;
  }
  int fl = fcntl(f->fd, F_GETFL);
  if (fl >= 0) fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK);
  uint64_t fsize = (uint64_t)st.st_size;
  if (fsize < 8) {
    fail(&c, "the file is %llu bytes, too short for the 8-byte header size",
         (unsigned long long)fsize);
    goto fail;
  }
  unsigned char nb[8];
  int r = read_full(f->fd, nb, 8, 0);
  if (r != 0) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot read the header size: %s",
              r < 0 ? strerror(errno) : "unexpected end of file");
    goto fail;
  }
  uint64_t n = le64(nb);
  if (n > TYR_SAFETENSORS_MAX_HEADER) {
    fail(&c, "header size %llu is more than the limit of %llu bytes", (unsigned long long)n,
         (unsigned long long)TYR_SAFETENSORS_MAX_HEADER);
    goto fail;
  }
  if (n > fsize - 8) {
    fail(&c, "header size %llu runs past the end of the file (%llu bytes)", (unsigned long long)n,
         (unsigned long long)fsize);
    goto fail;
  }
  f->data_start = 8 + n;
  f->data_size = fsize - 8 - n;
  hdr = malloc(n ? n : 1);
  if (!hdr) {
    tyr_raise(TYR_ERR_MEMORY, s, path, "cannot allocate %llu bytes for the header",
              (unsigned long long)n);
    goto fail;
  }
  r = read_full(f->fd, hdr, n, 8);
  if (r != 0) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot read the header: %s",
              r < 0 ? strerror(errno) : "unexpected end of file");
    goto fail;
  }
  if (!parse_header(&c, hdr, (size_t)n)) goto fail;
  free(hdr);
  return f;
fail:
  free(hdr);
  st_free(f);
  return NULL;
}

/* ---- loading -------------------------------------------------------------- */
/* The entry for name, or NULL with *st set, having raised. */
static const tyr_safetensors_entry *find_or_raise(tyr_site s, const char *op, tyr_safetensors *f,
                                                  const char *name, tyr_status *st) {
  *st = TYR_ERR_ARG;
  if (!f) {
    tyr_raise(TYR_ERR_ARG, s, op, "file is NULL");
    return NULL;
  }
  if (!name) {
    tyr_raise(TYR_ERR_ARG, s, f->path, "tensor name is NULL");
    return NULL;
  }
  const tyr_safetensors_entry *e = tyr_safetensors_find(f, name);
  if (!e) {
    char q[QNAME_MAX + 8];
    tyr_raise(TYR_ERR_ARG, s, f->path, "no tensor named %s (the file has %d tensor%s)",
              qname(name, strlen(name), q), f->n, f->n == 1 ? "" : "s");
    return NULL;
  }
  *st = TYR_OK;
  return e;
}

static tyr_status read_entry(tyr_site s, tyr_safetensors *f, const tyr_safetensors_entry *e,
                             void *dst) {
  int r = read_full(f->fd, dst, e->end - e->begin, f->data_start + e->begin);
  if (r == 0) return TYR_OK;
  char q[QNAME_MAX + 8];
  return tyr_raise(TYR_ERR_IO, s, f->path, "tensor %s: cannot read %llu bytes at offset %llu: %s",
                   qname(e->name, strlen(e->name), q), (unsigned long long)(e->end - e->begin),
                   (unsigned long long)(f->data_start + e->begin),
                   r < 0 ? strerror(errno) : "unexpected end of file (did the file change?)");
}

tyr_tensor *tyr_safetensors_load_at(tyr_site s, tyr_safetensors *f, const char *name) {
  tyr_status st;
  const tyr_safetensors_entry *e = find_or_raise(s, "tyr_safetensors_load", f, name, &st);
  if (!e) return NULL;
  tyr_tensor *t = tyr_empty_at(s, e->dtype, TYR_DEVICE_CPU, e->rank, e->shape);
  if (!t) return NULL;
  if (read_entry(s, f, e, tyr_data_ptr(t)) != TYR_OK) {
    tyr_tensor_free(t);
    return NULL;
  }
  return t;
}

int tyr_safetensors_load_into_at(tyr_site s, tyr_safetensors *f, const char *name,
                                 tyr_tensor *dst) {
  tyr_status st;
  const tyr_safetensors_entry *e = find_or_raise(s, "tyr_safetensors_load_into", f, name, &st);
  if (!e) return (int)st;
  char q[QNAME_MAX + 8];
  const char *qn = qname(e->name, strlen(e->name), q);
  if (!dst) return tyr_raise(TYR_ERR_ARG, s, f->path, "tensor %s: destination is NULL", qn);
  if (dst->dtype != e->dtype)
    return tyr_raise(TYR_ERR_DTYPE, s, f->path, "tensor %s is %s but the destination is %s", qn,
                     tyr_dtype_name(e->dtype), tyr_dtype_name(dst->dtype));
  bool same = dst->rank == e->rank;
  for (int i = 0; same && i < e->rank; i++) same = dst->shape[i] == e->shape[i];
  if (!same) {
    char a[200], b[200];
    return tyr_raise(TYR_ERR_SHAPE, s, f->path, "tensor %s has shape %s but the destination is %s",
                     qn, tyr_shape_str(e->shape, e->rank, a, sizeof a),
                     tyr_shape_str(dst->shape, dst->rank, b, sizeof b));
  }
  const tyr_backend *be = tyr_backend_get(s, f->path, dst->device);
  if (!be) return (int)TYR_ERR_DEVICE;
  size_t nbytes = (size_t)(e->end - e->begin);
  if (dst->device.type == TYR_CPU && tyr_is_contiguous(dst))
    return (int)read_entry(s, f, e, tyr_data_ptr(dst));
  /* through a contiguous host tensor */
  tyr_tensor *host = tyr_empty_at(s, e->dtype, TYR_DEVICE_CPU, e->rank, e->shape);
  if (!host) return (int)TYR_ERR_MEMORY;
  tyr_status rc = read_entry(s, f, e, tyr_data_ptr(host));
  if (rc == TYR_OK) {
    if (dst->device.type == TYR_CPU) {
      be->copy(dst, host);
    } else if (tyr_is_contiguous(dst)) {
      be->from_host(tyr_data_ptr(dst), tyr_data_ptr(host), nbytes, dst->device);
    } else {
      tyr_tensor *tmp = tyr_empty_at(s, e->dtype, dst->device, e->rank, e->shape);
      if (!tmp) {
        rc = TYR_ERR_MEMORY;
      } else {
        be->from_host(tyr_data_ptr(tmp), tyr_data_ptr(host), nbytes, dst->device);
        be->copy(dst, tmp);
        tyr_tensor_free(tmp);
      }
    }
  }
  tyr_tensor_free(host);
  return (int)rc;
}

/* ---- writing -------------------------------------------------------------- */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
  sb_put(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v) {
  char t[24];
  int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
  sb_put(b, t, (size_t)k);
}

/* A JSON string escaped as serde_json does: ", \ and control characters
 * only (\b \f \n \r \t, else \u00xx with lowercase hex); UTF-8 as is. */
static void sb_json_string(sbuf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  sb_put(b, "\"", 1);
  const char *run = s;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    const char *esc = NULL;
    char u[7];
    switch (c) {
    case '"':
      esc = "\\\"";
      break;
    case '\\':
      esc = "\\\\";
      break;
    case '\b':
      esc = "\\b";
      break;
    case '\f':
      esc = "\\f";
      break;
    case '\n':
      esc = "\\n";
      break;
    case '\r':
      esc = "\\r";
      break;
    case '\t':
      esc = "\\t";
      break;
    default:
      if (c < 0x20) {
        u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[c >> 4], u[5] = hex[c & 15];
        u[6] = 0;
        esc = u;
      }
    }
    if (esc) {
      sb_put(b, run, (size_t)(p - run));
      sb_str(b, esc);
      run = p + 1;
    }
  }
  sb_put(b, run, strlen(run));
  sb_put(b, "\"", 1);
}

typedef struct save_item {
  const char *name;
  tyr_tensor *t;
  int order;
  uint64_t nbytes;
} save_item;

static int cmp_save(const void *a, const void *b) {
  const save_item *x = a, *y = b;
  if (x->order != y->order) return x->order > y->order ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct meta_item {
  const char *key, *value;
} meta_item;

static int cmp_meta(const void *a, const void *b) {
  return strcmp(((const meta_item *)a)->key, ((const meta_item *)b)->key);
}

/* Writes t's elements as contiguous host bytes. */
static tyr_status write_tensor(tyr_site s, const char *op, int fd, tyr_tensor *t, const char *qn) {
  uint64_t nbytes = (uint64_t)tyr_nbytes(t);
  if (nbytes == 0) return TYR_OK;
  const tyr_backend *be = tyr_backend_get(s, op, t->device);
  if (!be) return TYR_ERR_DEVICE;
  tyr_tensor *tmp = NULL;
  const tyr_tensor *src = t;
  if (!tyr_is_contiguous(t)) {
    tmp = tyr_empty_at(s, t->dtype, t->device, t->rank, t->shape);
    if (!tmp) return TYR_ERR_MEMORY;
    be->copy(tmp, t);
    src = tmp;
  }
  tyr_status rc = TYR_OK;
  if (src->device.type == TYR_CPU) {
    if (write_full(fd, tyr_data_ptr(src), nbytes) != 0)
      rc = tyr_raise(TYR_ERR_IO, s, op, "tensor %s: cannot write: %s", qn, strerror(errno));
  } else {
    /* through a bounded host buffer */
    size_t chunk = nbytes < (64u << 20) ? (size_t)nbytes : (64u << 20);
    char *buf = malloc(chunk);
    if (!buf)
      rc = tyr_raise(TYR_ERR_MEMORY, s, op, "tensor %s: cannot allocate a %zu-byte host buffer", qn,
                     chunk);
    const char *dev = tyr_data_ptr(src);
    for (uint64_t off = 0; rc == TYR_OK && off < nbytes; off += chunk) {
      size_t k = nbytes - off < chunk ? (size_t)(nbytes - off) : chunk;
      be->to_host(buf, dev + off, k, src->device);
      if (write_full(fd, buf, k) != 0)
        rc = tyr_raise(TYR_ERR_IO, s, op, "tensor %s: cannot write: %s", qn, strerror(errno));
    }
    free(buf);
  }
  tyr_tensor_free(tmp);
  return rc;
}

int tyr_safetensors_save_at(tyr_site s, const char *path, int n, const char *const *names,
                            tyr_tensor *const *tensors, int nmeta, const char *const *meta_keys,
                            const char *const *meta_values) {
  const char *api = "tyr_safetensors_save";
  if (!path) return tyr_raise(TYR_ERR_ARG, s, api, "path is NULL");
  if (!path[0]) return tyr_raise(TYR_ERR_ARG, s, api, "path is empty");
  const char *op = path;
  if (n < 0) return tyr_raise(TYR_ERR_ARG, s, op, "tensor count %d is negative", n);
  if (nmeta < 0) return tyr_raise(TYR_ERR_ARG, s, op, "metadata count %d is negative", nmeta);
  if (n > 0 && (!names || !tensors))
    return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", names ? "tensors" : "names");
  if (nmeta > 0 && (!meta_keys || !meta_values))
    return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", meta_keys ? "meta_values" : "meta_keys");

  int rc = 0, fd = -1;
  tyr_atomic_file af = {.fd = -1};
  char q[QNAME_MAX + 8];
  sbuf hb = {0};
  save_item *items = calloc(n ? (size_t)n : 1, sizeof *items);
  const char **sorted_names = calloc(n ? (size_t)n : 1, sizeof *sorted_names);
  meta_item *meta = calloc(nmeta ? (size_t)nmeta : 1, sizeof *meta);
  if (!items || !sorted_names || !meta) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto done;
  }

  /* check the arguments before touching the file system */
  for (int i = 0; i < n; i++) {
    const char *nm = names[i];
    tyr_tensor *t = tensors[i];
    if (!nm) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "names[%d] is NULL", i);
      goto done;
    }
    const char *qn = qname(nm, strlen(nm), q);
    if (!utf8_valid(nm)) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "tensor name %s (names[%d]) is not valid UTF-8", qn, i);
      goto done;
    }
    if (strcmp(nm, "__metadata__") == 0) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "a tensor may not be named \"__metadata__\"");
      goto done;
    }
    if (!t) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "tensor %s (tensors[%d]) is NULL", qn, i);
      goto done;
    }
    const st_dtype *dt = (unsigned)t->dtype < TYR_DTYPE_COUNT ? dtype_entry(t->dtype) : NULL;
    if (!dt) {
      rc = tyr_raise(TYR_ERR_DTYPE, s, op, "tensor %s has invalid dtype %d", qn, (int)t->dtype);
      goto done;
    }
    if (!tyr_backend_get(s, op, t->device)) {
      rc = (int)TYR_ERR_DEVICE;
      goto done;
    }
    items[i] = (save_item){nm, t, dt->order, (uint64_t)tyr_nbytes(t)};
    sorted_names[i] = nm;
  }
  qsort(sorted_names, (size_t)n, sizeof *sorted_names, cmp_str_ptr);
  for (int i = 1; i < n; i++)
    if (strcmp(sorted_names[i - 1], sorted_names[i]) == 0) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "tensor name %s appears more than once",
                     qname(sorted_names[i], strlen(sorted_names[i]), q));
      goto done;
    }
  for (int i = 0; i < nmeta; i++) {
    if (!meta_keys[i] || !meta_values[i]) {
      rc =
          tyr_raise(TYR_ERR_ARG, s, op, "meta_%s[%d] is NULL", meta_keys[i] ? "values" : "keys", i);
      goto done;
    }
    if (!utf8_valid(meta_keys[i]) || !utf8_valid(meta_values[i])) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "metadata %s %s is not valid UTF-8",
                     utf8_valid(meta_keys[i]) ? "value for key" : "key",
                     qname(meta_keys[i], strlen(meta_keys[i]), q));
      goto done;
    }
    meta[i] = (meta_item){meta_keys[i], meta_values[i]};
  }
  qsort(meta, (size_t)nmeta, sizeof *meta, cmp_meta);
  for (int i = 1; i < nmeta; i++)
    if (strcmp(meta[i - 1].key, meta[i].key) == 0) {
      rc = tyr_raise(TYR_ERR_ARG, s, op, "metadata key %s appears more than once",
                     qname(meta[i].key, strlen(meta[i].key), q));
      goto done;
    }

  /* the header */
  qsort(items, (size_t)n, sizeof *items, cmp_save);
  sb_str(&hb, "{");
  if (nmeta > 0) {
    sb_str(&hb, "\"__metadata__\":{");
    for (int i = 0; i < nmeta; i++) {
      if (i) sb_str(&hb, ",");
      sb_json_string(&hb, meta[i].key);
      sb_str(&hb, ":");
      sb_json_string(&hb, meta[i].value);
    }
    sb_str(&hb, "}");
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const tyr_tensor *t = items[i].t;
    if (i || nmeta > 0) sb_str(&hb, ",");
    sb_json_string(&hb, items[i].name);
    sb_str(&hb, ":{\"dtype\":\"");
    sb_str(&hb, tyr_safetensors_dtype_name(t->dtype));
    sb_str(&hb, "\",\"shape\":[");
    for (int d = 0; d < t->rank; d++) {
      if (d) sb_str(&hb, ",");
      sb_u64(&hb, (uint64_t)t->shape[d]);
    }
    sb_str(&hb, "],\"data_offsets\":[");
    sb_u64(&hb, off);
    sb_str(&hb, ",");
    off += items[i].nbytes;
    sb_u64(&hb, off);
    sb_str(&hb, "]}");
  }
  sb_str(&hb, "}");
  while (!hb.oom && hb.n % 8) sb_str(&hb, " ");
  if (hb.oom) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory building the header");
    goto done;
  }
  if (hb.n > TYR_SAFETENSORS_MAX_HEADER) {
    rc = tyr_raise(TYR_ERR_ARG, s, op,
                   "the header would be %zu bytes, more than the format's limit of %llu", hb.n,
                   (unsigned long long)TYR_SAFETENSORS_MAX_HEADER);
    goto done;
  }

  /* a temporary file beside the target, fsync'd and renamed over it when
     complete (tyr/fileio.h) */
  if ((rc = tyr_atomic_open_at(s, &af, path))) goto done;
  fd = af.fd;
  unsigned char nb[8];
  for (int i = 0; i < 8; i++) nb[i] = (unsigned char)((uint64_t)hb.n >> (8 * i));
  if (write_full(fd, nb, 8) != 0 || write_full(fd, hb.p, hb.n) != 0) {
    rc = tyr_raise(TYR_ERR_IO, s, op, "cannot write the header: %s", strerror(errno));
    goto done;
  }
  for (int i = 0; i < n; i++) {
    rc = (int)write_tensor(s, op, fd, items[i].t, qname(items[i].name, strlen(items[i].name), q));
    if (rc) goto done;
  }
  fd = -1;
  rc = tyr_atomic_commit_at(s, &af); /* removes the temporary file on failure */
done:
  if (fd >= 0) tyr_atomic_abort(&af);
  free(hb.p);
  free(items);
  free(sorted_names);
  free(meta);
  return rc;
}
