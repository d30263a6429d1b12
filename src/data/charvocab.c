/* Character-level vocabulary: a set of code points kept as a bitmap while
 * text is scanned, and a sorted table (token id = index) for encoding,
 * decoding and the JSON file. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/charvocab.h"
#include "tyr/fileio.h"

#define CP_LIMIT 0x110000

struct tyr_char_vocab {
  uint64_t *bits; /* CP_LIMIT bits: the set */
  int32_t *chars; /* sorted code points, n of them */
  int n;
  int32_t low[256]; /* id of code points < 256, or -1 */
};

/* Decodes one UTF-8 sequence at p (end - p >= 1 bytes).  Returns its length
 * and sets *cp, or 0 when the bytes are not valid UTF-8. */
static int utf8_next(const unsigned char *p, const unsigned char *end, int32_t *cp) {
  unsigned c = p[0];
  if (c < 0x80) {
    *cp = (int32_t)c;
    return 1;
  }
  int len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0)
    len = 2, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    len = 4, v = c & 0x07, min = 0x10000;
  else
    return 0;
  if (end - p < len) return 0;
  for (int i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = v << 6 | (p[i] & 0x3F);
  }
  if (v < min || v >= CP_LIMIT || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = (int32_t)v;
  return len;
}

static int utf8_put(int32_t cp, char out[4]) {
  uint32_t c = (uint32_t)cp;
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | c >> 6);
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | c >> 12);
    out[1] = (char)(0x80 | (c >> 6 & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | c >> 18);
  out[1] = (char)(0x80 | (c >> 12 & 0x3F));
  out[2] = (char)(0x80 | (c >> 6 & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

static bool has(const tyr_char_vocab *v, int32_t cp) {
  return v->bits[cp >> 6] >> (cp & 63) & 1;
}

/* Rebuilds the sorted table from the bitmap. */
static int rebuild(tyr_char_vocab *v, int n) {
  int32_t *c = malloc((size_t)(n ? n : 1) * sizeof *c);
  if (!c) return -1;
  int k = 0;
  for (int32_t w = 0; w < CP_LIMIT / 64; w++) {
    uint64_t b = v->bits[w];
    while (b) {
      c[k++] = w * 64 + __builtin_ctzll(b);
      b &= b - 1;
    }
  }
  free(v->chars);
  v->chars = c;
  v->n = k;
  for (int i = 0; i < 256; i++) v->low[i] = -1;
  for (int i = 0; i < k && c[i] < 256; i++) v->low[c[i]] = i;
  return 0;
}

tyr_char_vocab *tyr_char_vocab_new_at(tyr_site s) {
  tyr_char_vocab *v = calloc(1, sizeof *v);
  if (v) v->bits = calloc(CP_LIMIT / 64, sizeof *v->bits);
  if (!v || !v->bits || rebuild(v, 0)) {
    if (v) free(v->bits);
    free(v);
    tyr_raise(TYR_ERR_MEMORY, s, "tyr_char_vocab_new", "out of host memory");
    return NULL;
  }
  return v;
}

void tyr_char_vocab_free(tyr_char_vocab *v) {
  if (!v) return;
  free(v->bits);
  free(v->chars);
  free(v);
}

int tyr_char_vocab_size(const tyr_char_vocab *v) {
  return v ? v->n : 0;
}

int32_t tyr_char_vocab_char(const tyr_char_vocab *v, int id) {
  return v && id >= 0 && id < v->n ? v->chars[id] : -1;
}

int tyr_char_vocab_id(const tyr_char_vocab *v, int32_t cp) {
  if (!v || cp < 0 || cp >= CP_LIMIT) return -1;
  if (cp < 256) return v->low[cp];
  int lo = 0, hi = v->n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (v->chars[mid] < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < v->n && v->chars[lo] == cp ? lo : -1;
}

int tyr_char_vocab_scan_at(tyr_site s, tyr_char_vocab *v, const char *name, const char *text,
                           size_t len) {
  const char *op = name ? name : "tyr_char_vocab_scan";
  if (!v) return tyr_raise(TYR_ERR_ARG, s, op, "vocabulary is NULL");
  if (!text && len) return tyr_raise(TYR_ERR_ARG, s, op, "text is NULL");
  const unsigned char *p = (const unsigned char *)text, *end = p + len;
  int32_t *added = NULL;
  int nadd = 0, cap = 0;
  int st = 0;
  while (p < end) {
    int32_t cp;
    int k = utf8_next(p, end, &cp);
    if (!k) {
      st = tyr_raise(TYR_ERR_FORMAT, s, op, "invalid UTF-8 at byte %lld (0x%02x)",
                     (long long)(p - (const unsigned char *)text), *p);
      break;
    }
    p += k;
    if (has(v, cp)) continue;
    if (v->n + nadd >= TYR_CHAR_VOCAB_MAX) {
      st = tyr_raise(TYR_ERR_ARG, s, op, "more than %d distinct characters (token ids are uint16)",
                     TYR_CHAR_VOCAB_MAX);
      break;
    }
    if (nadd == cap) {
      int nc = cap ? cap * 2 : 64;
      int32_t *na = realloc(added, (size_t)nc * sizeof *na);
      if (!na) {
        st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
        break;
      }
      added = na;
      cap = nc;
    }
    added[nadd++] = cp;
    v->bits[cp >> 6] |= (uint64_t)1 << (cp & 63);
  }
  if (!st && nadd && rebuild(v, v->n + nadd))
    st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  if (st)
    for (int i = 0; i < nadd; i++) v->bits[added[i] >> 6] &= ~((uint64_t)1 << (added[i] & 63));
  free(added);
  return st;
}

int64_t tyr_char_vocab_encode_at(tyr_site s, const tyr_char_vocab *v, const char *name,
                                 const char *text, size_t len, uint16_t *out) {
  const char *op = name ? name : "tyr_char_vocab_encode";
  if (!v || (!text && len) || (!out && len)) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", !v ? "vocabulary" : !text ? "text" : "out");
    return -1;
  }
  const unsigned char *p = (const unsigned char *)text, *end = p + len;
  int64_t n = 0;
  while (p < end) {
    int32_t cp;
    int k = utf8_next(p, end, &cp);
    if (!k) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "invalid UTF-8 at byte %lld (0x%02x)",
                (long long)(p - (const unsigned char *)text), *p);
      return -1;
    }
    int id = tyr_char_vocab_id(v, cp);
    if (id < 0) {
      tyr_raise(TYR_ERR_ARG, s, op, "character U+%04X at byte %lld is not in the vocabulary",
                (unsigned)cp, (long long)(p - (const unsigned char *)text));
      return -1;
    }
    out[n++] = (uint16_t)id;
    p += k;
  }
  return n;
}

size_t tyr_char_vocab_decode(const tyr_char_vocab *v, const int64_t *ids, int64_t n, char *out,
                             size_t cap) {
  size_t used = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t cp = v && ids[i] >= 0 && ids[i] < v->n ? v->chars[ids[i]] : 0xFFFD;
    char b[4];
    int k = utf8_put(cp, b);
    for (int j = 0; j < k; j++, used++)
      if (used + 1 < cap) out[used] = b[j];
  }
  if (cap) out[used < cap ? used : cap - 1] = 0;
  return used;
}

/* ---- JSON form ------------------------------------------------------------- */
int tyr_char_vocab_save_at(tyr_site s, const tyr_char_vocab *v, const char *path) {
  const char *op = path ? path : "tyr_char_vocab_save";
  if (!v || !path) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", !v ? "vocabulary" : "path");
  json_t *root = json_object(), *arr = json_array();
  int bad = !root || !arr;
  for (int i = 0; !bad && i < v->n; i++) {
    char b[4];
    int k = utf8_put(v->chars[i], b);
    bad = json_array_append_new(arr, json_stringn(b, (size_t)k)) != 0;
  }
  if (!bad)
    bad = json_object_set_new(root, "format", json_string("tyr-char-vocab")) ||
          json_object_set_new(root, "version", json_integer(1)) ||
          json_object_set_new(root, "vocab_size", json_integer(v->n)) ||
          json_object_set(root, "chars", arr);
  char *text = bad ? NULL : json_dumps(root, JSON_INDENT(1));
  json_decref(arr);
  json_decref(root);
  if (!text) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  /* temporary file, fsync, rename, directory fsync (tyr/fileio.h) */
  size_t tl = strlen(text);
  text[tl] = '\n'; /* json_dumps leaves room for its NUL: the newline takes it */
  int rc = tyr_file_write_atomic_at(s, path, text, tl + 1);
  free(text);
  return rc;
}

tyr_char_vocab *tyr_char_vocab_load_at(tyr_site s, const char *path) {
  const char *op = path ? path : "tyr_char_vocab_load";
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, op, "path is NULL");
    return NULL;
  }
  json_error_t je;
  json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
  if (!root) {
    if (access(path, R_OK) != 0)
      tyr_raise(TYR_ERR_IO, s, op, "cannot open: %s", strerror(errno));
    else
      tyr_raise(TYR_ERR_FORMAT, s, op, "line %d: %s", je.line, je.text);
    return NULL;
  }
  tyr_char_vocab *v = NULL;
  json_t *fmt = json_object_get(root, "format"), *chars = json_object_get(root, "chars");
  json_t *vs = json_object_get(root, "vocab_size");
  if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "tyr-char-vocab") != 0) {
    tyr_raise(TYR_ERR_FORMAT, s, op,
              "not a character vocabulary (\"format\" is not \"tyr-char-vocab\")");
    goto out;
  }
  if (!json_is_array(chars) || !json_is_integer(vs) ||
      json_integer_value(vs) != (json_int_t)json_array_size(chars)) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "\"chars\" must be an array of \"vocab_size\" strings");
    goto out;
  }
  if (json_array_size(chars) > TYR_CHAR_VOCAB_MAX) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%zu characters, at most %d", json_array_size(chars),
              TYR_CHAR_VOCAB_MAX);
    goto out;
  }
  if (!(v = tyr_char_vocab_new_at(s))) goto out;
  int32_t prev = -1;
  for (size_t i = 0; i < json_array_size(chars); i++) {
    json_t *c = json_array_get(chars, i);
    const unsigned char *p = (const unsigned char *)json_string_value(c);
    size_t len = json_string_length(c);
    int32_t cp = -1;
    if (!p || len == 0 || utf8_next(p, p + len, &cp) != (int)len) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "chars[%zu] is not a one-character string", i);
      goto fail;
    }
    if (cp <= prev) {
      tyr_raise(TYR_ERR_FORMAT, s, op,
                "chars[%zu] (U+%04X) is not after chars[%zu] in code point order", i, (unsigned)cp,
                i - 1);
      goto fail;
    }
    prev = cp;
    v->bits[cp >> 6] |= (uint64_t)1 << (cp & 63);
  }
  if (rebuild(v, (int)json_array_size(chars))) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto fail;
  }
  goto out;
fail:
  tyr_char_vocab_free(v);
  v = NULL;
out:
  json_decref(root);
  return v;
}
