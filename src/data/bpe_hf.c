/* Hugging Face tokenizer.json files (byte-level BPE) into a tyr_tokenizer:
 * the vocabulary's byte-level strings back to bytes, the merges in their
 * order (bpe_set_merges), the split regex of the pre-tokenizer, the added
 * tokens as specials, and the NFC normalizer (ICU) where the file has one.
 * Read with jansson; everything the tokenizers library would compute
 * differently is refused by name. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/bpe_internal.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_tokenizer_load_hf";

/* GPT-2's bytes_to_unicode: byte b is written as code point cp[b]; the
 * printable Latin-1 bytes stand for themselves, the others take 256, 257,
 * ... in byte order.  inv maps those code points (< 512) back, -1 if none. */
static void byte_level_tables(int inv[512]) {
  for (int i = 0; i < 512; i++) inv[i] = -1;
  int next = 256;
  for (int b = 0; b < 256; b++) {
    bool self = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    inv[self ? b : next++] = b;
  }
}

/* Decodes a byte-level string (UTF-8 of the code points above) into out
 * (at least strlen(s) bytes); returns the byte count or -1. */
static int64_t byte_level_decode(const int inv[512], const char *s, size_t n, uint8_t *out) {
  const uint8_t *p = (const uint8_t *)s;
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    if (p[i] < 0x80) {
      cp = p[i++];
    } else if ((p[i] & 0xe0) == 0xc0 && i + 1 < n && (p[i + 1] & 0xc0) == 0x80) {
      cp = (uint32_t)(p[i] & 0x1f) << 6 | (p[i + 1] & 0x3f);
      i += 2;
    } else {
      return -1; /* every byte-level code point is below 0x800 */
    }
    if (cp >= 512 || inv[cp] < 0) return -1;
    out[m++] = (uint8_t)inv[cp];
  }
  return (int64_t)m;
}

static bool str_is(json_t *v, const char *s) {
  return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* A field that must be absent, null, false or "" (a feature not computed). */
static int refuse_set(tyr_site s, const char *name, json_t *obj, const char *key,
                      const char *what) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v) || json_is_false(v) || (json_is_string(v) && !json_string_length(v)))
    return 0;
  if (json_is_number(v) && json_number_value(v) == 0) return 0;
  return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: %s is set: %s is not computed", name, key, what);
}

/* The ByteLevel pre-tokenizer: no prefix space; its own regex (GPT-2's) when
 * use_regex is true (the default). */
static int byte_level_step(tyr_site s, const char *name, json_t *pt, const char **pattern) {
  if (json_is_true(json_object_get(pt, "add_prefix_space")))
    return tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: the ByteLevel pre-tokenizer has add_prefix_space: not computed", name);
  json_t *ur = json_object_get(pt, "use_regex");
  if (!ur || json_is_true(ur)) {
    if (*pattern)
      return tyr_raise(TYR_ERR_FORMAT, s, OP,
                       "%s: a Split and a ByteLevel with use_regex: two splits are not computed",
                       name);
    *pattern = TYR_TOKENIZER_PATTERN_GPT2;
  }
  return 0;
}

static int split_step(tyr_site s, const char *name, json_t *pt, const char **pattern) {
  json_t *pat = json_object_get(pt, "pattern");
  json_t *re = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
  if (!json_is_string(re))
    return tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: the Split pre-tokenizer needs {\"Regex\": ...} as its pattern (a plain "
                     "string pattern is not computed)",
                     name);
  if (!str_is(json_object_get(pt, "behavior"), "Isolated"))
    return tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: the Split pre-tokenizer's behavior must be \"Isolated\"", name);
  if (json_is_true(json_object_get(pt, "invert")))
    return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: an inverted Split is not computed", name);
  if (*pattern)
    return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: two splitting steps are not computed", name);
  *pattern = json_string_value(re);
  return 0;
}

static int pre_tokenizer(tyr_site s, const char *name, json_t *pt, const char **pattern) {
  *pattern = NULL;
  if (!json_is_object(pt))
    return tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: pre_tokenizer is missing: a byte-level BPE needs ByteLevel", name);
  json_t *type = json_object_get(pt, "type");
  if (str_is(type, "ByteLevel")) return byte_level_step(s, name, pt, pattern);
  if (!str_is(type, "Sequence"))
    return tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: pre_tokenizer type %s: only ByteLevel, or a Sequence of a Split and "
                     "ByteLevel, is computed",
                     name, json_is_string(type) ? json_string_value(type) : "(missing)");
  json_t *steps = json_object_get(pt, "pretokenizers");
  if (!json_is_array(steps) || json_array_size(steps) == 0)
    return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: the Sequence pre-tokenizer has no steps", name);
  bool byte_level = false;
  for (size_t i = 0; i < json_array_size(steps); i++) {
    json_t *st = json_array_get(steps, i);
    json_t *t = json_object_get(st, "type");
    int rc;
    if (str_is(t, "Split") && !byte_level)
      rc = split_step(s, name, st, pattern);
    else if (str_is(t, "ByteLevel") && !byte_level)
      rc = byte_level_step(s, name, st, pattern), byte_level = true;
    else
      rc = tyr_raise(TYR_ERR_FORMAT, s, OP,
                     "%s: pre-tokenizer step %zu (%s): only a Split followed by ByteLevel is "
                     "computed",
                     name, i, json_is_string(t) ? json_string_value(t) : "(no type)");
    if (rc) return rc;
  }
  if (!byte_level)
    return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: the pre-tokenizer has no ByteLevel step", name);
  return 0;
}

static int normalizer(tyr_site s, const char *name, json_t *nm, bool *nfc) {
  *nfc = false;
  if (!nm || json_is_null(nm)) return 0;
  json_t *t = json_object_get(nm, "type");
  if (str_is(t, "NFC")) {
    *nfc = true;
    return 0;
  }
  if (str_is(t, "Sequence")) {
    json_t *list = json_object_get(nm, "normalizers");
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
      bool one;
      if (normalizer(s, name, json_array_get(list, i), &one)) return TYR_ERR_FORMAT;
      *nfc |= one;
    }
    return 0;
  }
  return tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: normalizer %s: only NFC is computed", name,
                   json_is_string(t) ? json_string_value(t) : "(no type)");
}

/* "a b" or ["a", "b"] -> the two ids via vocab */
static bool merge_pair(json_t *vocab, json_t *m, uint32_t *a, uint32_t *b) {
  char buf[1024];
  const char *x, *y;
  if (json_is_string(m)) {
    const char *str = json_string_value(m);
    const char *sp = strchr(str, ' ');
    size_t n = json_string_length(m);
    if (!sp || n >= sizeof buf || strchr(sp + 1, ' ')) return false;
    memcpy(buf, str, n + 1);
    buf[sp - str] = 0;
    x = buf;
    y = buf + (sp - str) + 1;
  } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
             json_is_string(json_array_get(m, 1))) {
    x = json_string_value(json_array_get(m, 0));
    y = json_string_value(json_array_get(m, 1));
  } else {
    return false;
  }
  json_t *ia = json_object_get(vocab, x), *ib = json_object_get(vocab, y);
  if (!json_is_integer(ia) || !json_is_integer(ib)) return false;
  json_int_t va = json_integer_value(ia), vb = json_integer_value(ib);
  if (va < 0 || vb < 0 || va >= TYR_TOKENIZER_MAX_ID || vb >= TYR_TOKENIZER_MAX_ID) return false;
  *a = (uint32_t)va;
  *b = (uint32_t)vb;
  return true;
}

static tyr_tokenizer *from_json(tyr_site s, json_t *root, const char *name) {
  tyr_tokenizer *t = NULL;
  const uint8_t **toks = NULL;
  uint32_t *lens = NULL, *ranks = NULL, *ma = NULL, *mb = NULL, *sids = NULL;
  const char **specials = NULL;
  uint32_t *slens = NULL;
  uint8_t *arena = NULL;
  if (!json_is_object(root)) {
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: not a JSON object", name);
    return NULL;
  }
  json_t *model = json_object_get(root, "model");
  json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
  if (!json_is_object(model) || !str_is(json_object_get(model, "type"), "BPE")) {
    json_t *ty = json_object_get(model, "type");
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: model type is %s: only BPE is read", name,
              json_is_string(ty) ? json_string_value(ty) : "(missing)");
    return NULL;
  }
  if (!json_is_object(vocab) || !json_is_array(merges)) {
    tyr_raise(TYR_ERR_FORMAT, s, OP,
              "%s: the BPE model needs a \"vocab\" object and a \"merges\" "
              "array",
              name);
    return NULL;
  }
  if (refuse_set(s, name, model, "dropout", "BPE dropout") ||
      refuse_set(s, name, model, "byte_fallback", "byte fallback") ||
      refuse_set(s, name, model, "continuing_subword_prefix", "a subword prefix") ||
      refuse_set(s, name, model, "end_of_word_suffix", "an end-of-word suffix"))
    return NULL;
  bool ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
  bool nfc;
  const char *pattern;
  if (normalizer(s, name, json_object_get(root, "normalizer"), &nfc) ||
      pre_tokenizer(s, name, json_object_get(root, "pre_tokenizer"), &pattern))
    return NULL;
  if (!pattern) { /* ByteLevel with use_regex false and no Split: the text is one piece */
    tyr_raise(TYR_ERR_FORMAT, s, OP,
              "%s: the pre-tokenizer does not split the text (ByteLevel with use_regex false "
              "and no Split): not computed",
              name);
    return NULL;
  }
  if (strlen(pattern) > BPE_MAX_PATTERN) {
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: the split pattern is longer than %d bytes", name,
              BPE_MAX_PATTERN);
    return NULL;
  }
  /* added tokens -> specials */
  json_t *added = json_object_get(root, "added_tokens");
  size_t na = json_is_array(added) ? json_array_size(added) : 0;
  if (added && !json_is_null(added) && !json_is_array(added)) {
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: added_tokens is not an array", name);
    return NULL;
  }
  size_t nv = json_object_size(vocab);
  toks = calloc(nv + 1, sizeof *toks);
  lens = calloc(nv + 1, sizeof *lens);
  ranks = calloc(nv + 1, sizeof *ranks);
  specials = calloc(na + 1, sizeof *specials);
  slens = calloc(na + 1, sizeof *slens);
  sids = calloc(na + 1, sizeof *sids);
  size_t nm = json_array_size(merges);
  ma = calloc(nm + 1, sizeof *ma);
  mb = calloc(nm + 1, sizeof *mb);
  if (!toks || !lens || !ranks || !specials || !slens || !sids || !ma || !mb) goto oom;
  for (size_t i = 0; i < na; i++) {
    json_t *a = json_array_get(added, i);
    json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) >= TYR_TOKENIZER_MAX_ID || !json_is_string(content)) {
      tyr_raise(TYR_ERR_FORMAT, s, OP,
                "%s: added token %zu needs an \"id\" in [0, %u) and a "
                "\"content\" string",
                name, i, TYR_TOKENIZER_MAX_ID);
      goto fail;
    }
    const char *flags[] = {"lstrip", "rstrip", "single_word"};
    for (int f = 0; f < 3; f++)
      if (json_is_true(json_object_get(a, flags[f]))) {
        tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: added token %s has %s: not computed", name,
                  json_string_value(content), flags[f]);
        goto fail;
      }
    specials[i] = json_string_value(content);
    slens[i] = (uint32_t)json_string_length(content);
    sids[i] = (uint32_t)json_integer_value(id);
  }
  /* the vocabulary, less the added tokens */
  size_t total = 0;
  const char *key;
  json_t *val;
  json_object_foreach(vocab, key, val) total += strlen(key);
  arena = malloc(total + 1);
  if (!arena) goto oom;
  int inv[512];
  byte_level_tables(inv);
  size_t n = 0, used = 0;
  json_object_foreach(vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0 ||
        json_integer_value(val) >= TYR_TOKENIZER_MAX_ID) {
      tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: vocab entry \"%.64s\" needs an id in [0, %u)", name,
                key, TYR_TOKENIZER_MAX_ID);
      goto fail;
    }
    uint32_t id = (uint32_t)json_integer_value(val);
    bool is_added = false;
    for (size_t k = 0; k < na && !is_added; k++) is_added = sids[k] == id;
    if (is_added) continue;
    int64_t len = byte_level_decode(inv, key, strlen(key), arena + used);
    if (len <= 0) {
      tyr_raise(TYR_ERR_FORMAT, s, OP,
                "%s: vocab entry \"%.64s\" (id %u) is not a byte-level token: this is not a "
                "byte-level BPE",
                name, key, id);
      goto fail;
    }
    toks[n] = arena + used;
    lens[n] = (uint32_t)len;
    ranks[n++] = id;
    used += (size_t)len;
  }
  char tname[512];
  snprintf(tname, sizeof tname, "%s", name);
  t = bpe_build(s, OP, tname, pattern, toks, lens, ranks, n, specials, slens, sids, (int)na);
  if (!t) goto fail;
  for (size_t r = 0; r < nm; r++)
    if (!merge_pair(vocab, json_array_get(merges, r), &ma[r], &mb[r])) {
      tyr_raise(TYR_ERR_FORMAT, s, OP,
                "%s: merge %zu is not two vocabulary tokens (\"a b\" or [\"a\", \"b\"])", name, r);
      goto fail;
    }
  if (bpe_set_merges(s, OP, name, t, ma, mb, nm, ignore_merges)) goto fail;
  if (nfc && bpe_set_nfc(s, OP, name, t)) goto fail;
  goto done;
oom:
  tyr_raise(TYR_ERR_MEMORY, s, OP, "%s: out of host memory", name);
fail:
  tyr_tokenizer_free(t);
  t = NULL;
done:
  free(toks);
  free(lens);
  free(ranks);
  free(ma);
  free(mb);
  free(specials);
  free(slens);
  free(sids);
  free(arena);
  return t;
}

tyr_tokenizer *tyr_tokenizer_load_hf_mem_at(tyr_site s, const void *data, size_t n,
                                            const char *name) {
  if (!name) name = "(memory)";
  if (!data && n) {
    tyr_raise(TYR_ERR_ARG, s, OP, "%s: data is NULL", name);
    return NULL;
  }
  if (n > tyr__bpe_max_file) {
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: larger than %zu bytes", name, tyr__bpe_max_file);
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data ? data : "", n, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: line %d, column %d: %s", name, jerr.line, jerr.column,
              jerr.text);
    return NULL;
  }
  tyr_tokenizer *t = from_json(s, root, name);
  json_decref(root);
  return t;
}

tyr_tokenizer *tyr_tokenizer_load_hf_at(tyr_site s, const char *path) {
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, OP, "path is NULL");
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    tyr_raise(TYR_ERR_IO, s, OP, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    tyr_raise(TYR_ERR_IO, s, OP, "%s: not a regular file", path);
    return NULL;
  }
  if ((uint64_t)st.st_size > tyr__bpe_max_file) {
    fclose(f);
    tyr_raise(TYR_ERR_FORMAT, s, OP, "%s: larger than %zu bytes", path, tyr__bpe_max_file);
    return NULL;
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    tyr_raise(TYR_ERR_MEMORY, s, OP, "%s: out of host memory", path);
    return NULL;
  }
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  if (got != n) {
    free(buf);
    tyr_raise(TYR_ERR_IO, s, OP, "%s: read error", path);
    return NULL;
  }
  tyr_tokenizer *t = tyr_tokenizer_load_hf_mem_at(s, buf, n, path);
  free(buf);
  return t;
}
