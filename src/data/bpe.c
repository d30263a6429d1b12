/* Byte-level BPE tokenizer: construction, the split pattern, encode and
 * decode, queries.  Files are in bpe_io.c, training in bpe_train.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_internal.h"

const char *const tyr_tokenizer_chat_specials[TYR_TOKENIZER_N_CHAT_SPECIALS] = {
    "<|bos|>",           "<|user_start|>",   "<|user_end|>",   "<|assistant_start|>",
    "<|assistant_end|>", "<|python_start|>", "<|python_end|>", "<|output_start|>",
    "<|output_end|>",
};

size_t tyr__bpe_scan_max = 96;
bool tyr__bpe_use_cache = true;
/* Chunks up to this many bytes go into the chunk -> ids cache. */
#define BPE_CACHE_CHUNK_MAX 256
/* A cache holds at most this many uint32 words of entries, then starts over. */
#define BPE_CACHE_WORDS (4u << 20)
#define BPE_CACHE_MAX_SLOTS (1u << 20)

/* ---- regular expressions ------------------------------------------------------ */
pcre2_code *bpe_regex_try(const char *pattern, char *msg, size_t msg_size, size_t *offset) {
  int errcode = 0;
  PCRE2_SIZE erroff = 0;
  pcre2_code *re =
      pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
  if (!re) {
    pcre2_get_error_message(errcode, (PCRE2_UCHAR *)msg, msg_size);
    *offset = (size_t)erroff;
  }
  return re;
}

pcre2_code *bpe_regex_compile(tyr_site s, const char *op, const char *pattern, bool *jit) {
  char msg[256];
  size_t off = 0;
  pcre2_code *re = bpe_regex_try(pattern, msg, sizeof msg, &off);
  if (!re) {
    tyr_raise(TYR_ERR_ARG, s, op, "split pattern: %s at offset %zu", msg, off);
    return NULL;
  }
  *jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  return re;
}

bool bpe_matcher_init(bpe_matcher *m, const pcre2_code *re) {
  memset(m, 0, sizeof *m);
  m->md = pcre2_match_data_create_from_pattern(re, NULL);
  m->mc = pcre2_match_context_create(NULL);
  m->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
  if (!m->md || !m->mc || !m->js) {
    bpe_matcher_free(m);
    return false;
  }
  pcre2_jit_stack_assign(m->mc, NULL, m->js);
  return true;
}

void bpe_matcher_free(bpe_matcher *m) {
  pcre2_match_data_free(m->md);
  pcre2_match_context_free(m->mc);
  pcre2_jit_stack_free(m->js);
  memset(m, 0, sizeof *m);
}

void bpe_split_begin(bpe_splitter *sp, const pcre2_code *re, bool jit, bpe_matcher *m,
                     const uint8_t *text, size_t len) {
  sp->re = re;
  sp->jit = jit;
  sp->m = m;
  sp->text = text;
  sp->len = len;
  sp->pos = 0;
  sp->pend_s = sp->pend_e = 0;
  sp->err = 0;
  /* PCRE2's default limit (10 million steps per match) stops the GPT-4
   * pattern on a long run of spaces, where \s*[\r\n]+ backtracks over the
   * whole run once; allow steps in proportion to the text instead. */
  uint64_t limit = 10000000 + 64 * (uint64_t)len;
  pcre2_set_match_limit(m->mc, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit);
}

/* Bytes of the UTF-8 character at p (1 for a byte that starts none). */
static size_t utf8_step(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t k = c < 0xc2 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 1;
  if (k > n) return 1;
  for (size_t i = 1; i < k; i++)
    if ((p[i] & 0xc0) != 0x80) return 1;
  return k;
}

bool bpe_split_next(bpe_splitter *sp, size_t *b, size_t *e) {
  if (sp->pend_e > sp->pend_s) {
    *b = sp->pend_s;
    *e = sp->pend_e;
    sp->pos = sp->pend_e;
    sp->pend_s = sp->pend_e = 0;
    return true;
  }
  if (sp->pos >= sp->len) return false;
  size_t from = sp->pos, ms, me;
  for (;;) {
    int rc = sp->jit ? pcre2_jit_match(sp->re, sp->text, sp->len, from, 0, sp->m->md, sp->m->mc)
                     : pcre2_match(sp->re, sp->text, sp->len, from, 0, sp->m->md, sp->m->mc);
    if (rc == PCRE2_ERROR_NOMATCH) {
      ms = me = sp->len;
      break;
    }
    if (rc < 0) {
      sp->err = rc;
      return false;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sp->m->md);
    ms = ov[0];
    me = ov[1];
    if (me > ms) break;
    /* an empty match: skip a character and search again */
    if (ms >= sp->len) {
      ms = me = sp->len;
      break;
    }
    from = ms + utf8_step(sp->text + ms, sp->len - ms);
  }
  if (ms > sp->pos) { /* bytes no match covers: a chunk of their own */
    *b = sp->pos;
    *e = ms;
    sp->pend_s = ms;
    sp->pend_e = me;
    sp->pos = ms;
    return true;
  }
  *b = ms;
  *e = me;
  sp->pos = me;
  return true;
}

/* ---- construction -------------------------------------------------------------- */
const char *bpe_special_name_problem(const char *name, size_t len) {
  if (len == 0) return "is empty";
  if (len > 256) return "is longer than 256 bytes";
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)name[i];
    if (c <= 0x20 || c == 0x7f) return "contains whitespace or a control character";
  }
  return NULL;
}

int64_t bpe_token_lookup(const tyr_tokenizer *t, const uint8_t *p, size_t n, uint64_t h) {
  size_t mask = t->tmap_cap - 1;
  uint32_t hi = (uint32_t)(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    bpe_tmap_slot sl = t->tmap[i];
    if (!sl.id1) return -1;
    if (sl.hhi == hi) {
      bpe_tok k = t->tok[sl.id1 - 1];
      if (k.len == n && memcmp(t->bytes + k.off, p, n) == 0) return sl.id1 - 1;
    }
  }
}

static inline uint32_t pair_lookup(const tyr_tokenizer *t, uint32_t a, uint32_t b) {
  uint64_t key = (uint64_t)a << 32 | b;
  size_t mask = t->pcap - 1;
  for (size_t i = bpe_mix64(key) & mask;; i = (i + 1) & mask) {
    uint64_t k = t->pkeys[i];
    if (k == key) return t->pvals[i];
    if (k == UINT64_MAX) return UINT32_MAX;
  }
}

static bool pair_insert(tyr_tokenizer *t, uint64_t key, uint32_t val, size_t *count) {
  if ((*count + 1) * 2 > t->pcap) {
    size_t ncap = t->pcap ? t->pcap * 2 : 1024;
    uint64_t *nk = malloc(ncap * sizeof *nk);
    uint32_t *nv = malloc(ncap * sizeof *nv);
    if (!nk || !nv) {
      free(nk);
      free(nv);
      return false;
    }
    memset(nk, 0xff, ncap * sizeof *nk);
    for (size_t i = 0; i < t->pcap; i++) {
      if (t->pkeys[i] == UINT64_MAX) continue;
      size_t j = bpe_mix64(t->pkeys[i]) & (ncap - 1);
      while (nk[j] != UINT64_MAX) j = (j + 1) & (ncap - 1);
      nk[j] = t->pkeys[i];
      nv[j] = t->pvals[i];
    }
    free(t->pkeys);
    free(t->pvals);
    t->pkeys = nk;
    t->pvals = nv;
    t->pcap = ncap;
  }
  size_t mask = t->pcap - 1;
  size_t i = bpe_mix64(key) & mask;
  while (t->pkeys[i] != UINT64_MAX && t->pkeys[i] != key) i = (i + 1) & mask;
  if (t->pkeys[i] == UINT64_MAX) (*count)++;
  t->pkeys[i] = key;
  t->pvals[i] = val;
  return true;
}

int bpe_set_merges(tyr_site s, const char *op, const char *name, tyr_tokenizer *t,
                   const uint32_t *a, const uint32_t *b, size_t n, bool ignore_merges) {
  if (n >= UINT32_MAX - 1)
    return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %zu merges is too many", name, n);
  uint32_t *mid = malloc((n + 1) * sizeof *mid);
  uint8_t *buf = NULL;
  size_t bcap = 0;
  if (!mid) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
  free(t->pkeys);
  free(t->pvals);
  t->pkeys = NULL;
  t->pvals = NULL;
  t->pcap = 0;
  size_t count = 0;
  for (size_t r = 0; r < n; r++) {
    if (a[r] >= t->n_ids || b[r] >= t->n_ids || t->kind[a[r]] != BPE_RANK ||
        t->kind[b[r]] != BPE_RANK) {
      free(mid);
      free(buf);
      return tyr_raise(TYR_ERR_FORMAT, s, op, "%s: merge %zu joins a token that is no BPE token",
                       name, r);
    }
    bpe_tok x = t->tok[a[r]], y = t->tok[b[r]];
    size_t len = (size_t)x.len + y.len;
    if (len > bcap) {
      uint8_t *nb = realloc(buf, len * 2);
      if (!nb) goto oom;
      buf = nb;
      bcap = len * 2;
    }
    memcpy(buf, t->bytes + x.off, x.len);
    memcpy(buf + x.len, t->bytes + y.off, y.len);
    int64_t id = bpe_token_lookup(t, buf, len, bpe_hash(buf, len));
    if (id < 0) {
      free(mid);
      free(buf);
      return tyr_raise(TYR_ERR_FORMAT, s, op,
                       "%s: merge %zu makes a token that is not in the vocabulary", name, r);
    }
    mid[r] = (uint32_t)id;
    if (!pair_insert(t, (uint64_t)a[r] << 32 | b[r], (uint32_t)r, &count)) goto oom;
  }
  if (!t->pcap && !pair_insert(t, UINT64_MAX - 1, UINT32_MAX, &count)) goto oom;
  free(buf);
  free(t->merge_id);
  t->merge_id = mid;
  t->ignore_merges = ignore_merges;
  return 0;
oom:
  free(mid);
  free(buf);
  return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
}

static void line_prefix(char *buf, size_t n, const size_t *lines, size_t i) {
  if (lines && lines[i])
    snprintf(buf, n, "line %zu: ", lines[i]);
  else
    buf[0] = 0;
}

tyr_tokenizer *bpe_build(tyr_site s, const char *op, const char *name, const char *pattern,
                         const uint8_t *const *tok, const uint32_t *tok_len, const uint32_t *ranks,
                         size_t n, const char *const *specials, const uint32_t *special_lens,
                         const uint32_t *special_ids, int n_specials) {
  return bpe_build_lines(s, op, name, pattern, tok, tok_len, ranks, NULL, n, specials, special_lens,
                         special_ids, n_specials);
}

tyr_tokenizer *bpe_build_lines(tyr_site s, const char *op, const char *name, const char *pattern,
                               const uint8_t *const *tok, const uint32_t *tok_len,
                               const uint32_t *ranks, const size_t *lines, size_t n,
                               const char *const *specials, const uint32_t *special_lens,
                               const uint32_t *special_ids, int n_specials) {
  char where[48];
  if (!pattern) pattern = TYR_TOKENIZER_PATTERN_GPT4;
  if (n_specials < 0 || (n_specials > 0 && (!specials || !special_ids))) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s: bad special tokens (%d)", name, n_specials);
    return NULL;
  }
  if (n_specials > 65536) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %d special tokens (at most 65536)", name, n_specials);
    return NULL;
  }
  uint64_t max_id = 0, total = 0;
  for (size_t i = 0; i < n; i++) {
    line_prefix(where, sizeof where, lines, i);
    if (ranks[i] >= TYR_TOKENIZER_MAX_ID) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %srank %u is too large (at most %u)", name, where,
                ranks[i], TYR_TOKENIZER_MAX_ID - 1);
      return NULL;
    }
    if (tok_len[i] == 0) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %srank %u has an empty token", name, where, ranks[i]);
      return NULL;
    }
    if (ranks[i] > max_id) max_id = ranks[i];
    total += tok_len[i];
  }
  for (int k = 0; k < n_specials; k++) {
    size_t len = special_lens ? special_lens[k] : strlen(specials[k]);
    const char *why = bpe_special_name_problem(specials[k], len);
    if (why) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: special token %d %s", name, k, why);
      return NULL;
    }
    if (special_ids[k] >= TYR_TOKENIZER_MAX_ID) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: special token '%.*s' has id %u (at most %u)", name,
                (int)len, specials[k], special_ids[k], TYR_TOKENIZER_MAX_ID - 1);
      return NULL;
    }
    if (special_ids[k] > max_id) max_id = special_ids[k];
    total += len + 1; /* NUL-terminated in the arena */
  }
  if (total >= UINT32_MAX) {
    tyr_raise(TYR_ERR_FORMAT, s, op, "%s: tokens hold too many bytes (%llu)", name,
              (unsigned long long)total);
    return NULL;
  }
  tyr_tokenizer *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  for (int i = 0; i < BPE_NCACHE; i++) atomic_flag_clear(&t->busy[i]);
  t->n_ids = (uint32_t)max_id + 1;
  t->n_ranks = (uint32_t)n;
  t->tok = calloc(t->n_ids, sizeof *t->tok);
  t->kind = calloc(t->n_ids, 1);
  t->bytes = calloc(total + BPE_PAD, 1);
  t->pattern = strdup(pattern);
  t->n_specials = n_specials;
  t->special_ids = malloc(sizeof(uint32_t) * (size_t)(n_specials + 1));
  t->special_off = malloc(sizeof(uint32_t) * (size_t)(n_specials + 1));
  t->special_len = malloc(sizeof(uint32_t) * (size_t)(n_specials + 1));
  size_t tcap = 16;
  while (tcap < 2 * n + 2) tcap *= 2;
  t->tmap_cap = tcap;
  t->tmap = calloc(tcap, sizeof *t->tmap);
  if (!t->tok || !t->kind || !t->bytes || !t->pattern || !t->special_ids || !t->special_off ||
      !t->special_len || !t->tmap)
    goto oom;

  /* ranked tokens */
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t r = ranks[i];
    if (t->kind[r] != BPE_NONE) {
      line_prefix(where, sizeof where, lines, i);
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %srank %u appears twice", name, where, r);
      goto fail;
    }
    t->kind[r] = BPE_RANK;
    t->tok[r].off = (uint32_t)used;
    t->tok[r].len = tok_len[i];
    memcpy(t->bytes + used, tok[i], tok_len[i]);
    used += tok_len[i];
    uint64_t h = bpe_hash(tok[i], tok_len[i]);
    int64_t other = bpe_token_lookup(t, tok[i], tok_len[i], h);
    if (other >= 0) {
      line_prefix(where, sizeof where, lines, i);
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: %sthe token of rank %u already has rank %lld", name,
                where, r, (long long)other);
      goto fail;
    }
    size_t j = h & (tcap - 1);
    while (t->tmap[j].id1) j = (j + 1) & (tcap - 1);
    t->tmap[j].id1 = r + 1;
    t->tmap[j].hhi = (uint32_t)(h >> 32);
  }
  for (int b = 0; b < 256; b++) {
    uint8_t c = (uint8_t)b;
    int64_t id = bpe_token_lookup(t, &c, 1, bpe_hash(&c, 1));
    if (id < 0) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: no token for the single byte 0x%02x", name, b);
      goto fail;
    }
    t->byte_id[b] = (uint32_t)id;
  }

  /* specials */
  t->special_min_len = UINT32_MAX;
  for (int k = 0; k < n_specials; k++) {
    uint32_t id = special_ids[k];
    uint32_t len = special_lens ? special_lens[k] : (uint32_t)strlen(specials[k]);
    if (t->kind[id] == BPE_RANK) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: special token '%.*s' has id %u, which is a rank", name,
                (int)len, specials[k], id);
      goto fail;
    }
    if (t->kind[id] == BPE_SPECIAL) {
      tyr_raise(TYR_ERR_FORMAT, s, op, "%s: special token '%.*s' has id %u, which another has",
                name, (int)len, specials[k], id);
      goto fail;
    }
    for (int q = 0; q < k; q++) {
      if (t->special_len[q] == len && memcmp(t->bytes + t->special_off[q], specials[k], len) == 0) {
        tyr_raise(TYR_ERR_FORMAT, s, op, "%s: special token '%.*s' appears twice", name, (int)len,
                  specials[k]);
        goto fail;
      }
    }
    t->kind[id] = BPE_SPECIAL;
    t->tok[id].off = (uint32_t)used;
    t->tok[id].len = len;
    memcpy(t->bytes + used, specials[k], len);
    t->special_ids[k] = id;
    t->special_off[k] = (uint32_t)used;
    t->special_len[k] = len;
    t->special_first[(uint8_t)specials[k][0]] = 1;
    if (len < t->special_min_len) t->special_min_len = len;
    t->bytes[used + len] = 0; /* (calloc'd: for tyr_tokenizer_special) */
    used += len + 1;
  }
  t->nbytes = used;

  /* pairs: every split of a ranked token into two ranked tokens.  Only
     splits whose two lengths some ranked token has are looked up: hashing
     every prefix of every token is quadratic in a token's length (tokens
     of megabytes come from training on text without spaces) */
  size_t npairs = 0;
  uint32_t max_len = 0;
  for (uint32_t id = 0; id < t->n_ids; id++)
    if (t->kind[id] == BPE_RANK && t->tok[id].len > max_len) max_len = t->tok[id].len;
  uint8_t *has_len = calloc((size_t)max_len + 1, 1);
  if (!has_len) goto oom;
  for (uint32_t id = 0; id < t->n_ids; id++)
    if (t->kind[id] == BPE_RANK) has_len[t->tok[id].len] = 1;
  for (uint32_t id = 0; id < t->n_ids; id++) {
    if (t->kind[id] != BPE_RANK || t->tok[id].len < 2) continue;
    const uint8_t *p = t->bytes + t->tok[id].off;
    uint32_t len = t->tok[id].len;
    for (uint32_t k = 1; k < len; k++) {
      if (!has_len[k] || !has_len[len - k]) continue;
      int64_t a = bpe_token_lookup(t, p, k, bpe_hash(p, k));
      if (a < 0) continue;
      int64_t b = bpe_token_lookup(t, p + k, len - k, bpe_hash(p + k, len - k));
      if (b < 0) continue;
      if (!pair_insert(t, (uint64_t)a << 32 | (uint64_t)b, id, &npairs)) {
        free(has_len);
        goto oom;
      }
    }
  }
  free(has_len);
  if (!t->pcap && !pair_insert(t, UINT64_MAX - 1, UINT32_MAX, &npairs)) goto oom;

  t->re = bpe_regex_compile(s, op, pattern, &t->jit);
  if (!t->re) goto fail;
  return t;
oom:
  tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", name);
fail:
  tyr_tokenizer_free(t);
  return NULL;
}

static void work_free(bpe_work *w) {
  if (!w->ready) return;
  bpe_matcher_free(&w->m);
  free(w->front);
  free(w->slots);
  free(w->arena);
  free(w->part);
  free(w->rank);
  free(w->next);
  free(w->prev);
  free(w->heap);
  memset(w, 0, sizeof *w);
}

void tyr_tokenizer_free(tyr_tokenizer *t) {
  if (!t) return;
  for (int i = 0; i < BPE_NCACHE; i++) work_free(&t->work[i]);
  pcre2_code_free(t->re);
  free(t->pattern);
  free(t->tok);
  free(t->kind);
  free(t->bytes);
  free(t->tmap);
  free(t->pkeys);
  free(t->pvals);
  free(t->merge_id);
  free(t->special_ids);
  free(t->special_off);
  free(t->special_len);
  free(t);
}

/* ---- queries ------------------------------------------------------------------ */
int tyr_tokenizer_vocab_size(const tyr_tokenizer *t) {
  return t ? (int)t->n_ids : 0;
}
int tyr_tokenizer_n_ranks(const tyr_tokenizer *t) {
  return t ? (int)t->n_ranks : 0;
}
int tyr_tokenizer_n_specials(const tyr_tokenizer *t) {
  return t ? t->n_specials : 0;
}
const char *tyr_tokenizer_pattern(const tyr_tokenizer *t) {
  return t ? t->pattern : NULL;
}

const char *tyr_tokenizer_special(const tyr_tokenizer *t, int i, uint32_t *id) {
  if (!t || i < 0 || i >= t->n_specials) return NULL;
  if (id) *id = t->special_ids[i];
  return (const char *)t->bytes + t->special_off[i];
}

int64_t tyr_tokenizer_special_id(const tyr_tokenizer *t, const char *name) {
  if (!t || !name) return -1;
  size_t len = strlen(name);
  for (int k = 0; k < t->n_specials; k++)
    if (t->special_len[k] == len && memcmp(t->bytes + t->special_off[k], name, len) == 0)
      return t->special_ids[k];
  return -1;
}

int64_t tyr_tokenizer_token_id(const tyr_tokenizer *t, const void *bytes, size_t len) {
  if (!t || (!bytes && len)) return -1;
  return bpe_token_lookup(t, bytes, len, bpe_hash(bytes, len));
}

const uint8_t *tyr_tokenizer_token_bytes(const tyr_tokenizer *t, uint32_t id, size_t *len) {
  if (!t || id >= t->n_ids || t->kind[id] == BPE_NONE) return NULL;
  if (len) *len = t->tok[id].len;
  return t->bytes + t->tok[id].off;
}

bool tyr_tokenizer_is_special(const tyr_tokenizer *t, uint32_t id) {
  return t && id < t->n_ids && t->kind[id] == BPE_SPECIAL;
}

/* ---- encoding --------------------------------------------------------------- */
typedef struct bpe_out {
  uint32_t **ids;
  size_t *cap;
  size_t n;
} bpe_out;

static bool out_reserve(bpe_out *o, size_t extra) {
  if (o->n + extra <= *o->cap) return true;
  size_t ncap = *o->cap ? *o->cap : 64;
  while (ncap < o->n + extra) ncap *= 2;
  uint32_t *p = realloc(*o->ids, ncap * sizeof *p);
  if (!p) return false;
  *o->ids = p;
  *o->cap = ncap;
  return true;
}

static bool scratch_reserve(bpe_work *w, size_t n) {
  if (n <= w->scap) return true;
  size_t ncap = w->scap ? w->scap : 256;
  while (ncap < n) ncap *= 2;
  uint32_t *part = realloc(w->part, ncap * sizeof *part);
  if (part) w->part = part;
  uint32_t *rank = realloc(w->rank, ncap * sizeof *rank);
  if (rank) w->rank = rank;
  uint32_t *next = realloc(w->next, ncap * sizeof *next);
  if (next) w->next = next;
  uint32_t *prev = realloc(w->prev, ncap * sizeof *prev);
  if (prev) w->prev = prev;
  uint64_t *heap = realloc(w->heap, 2 * ncap * sizeof *heap); /* merges push up to 2n */
  if (heap) w->heap = heap;
  if (!part || !rank || !next || !prev || !heap) return false;
  w->scap = ncap;
  return true;
}

static bool work_init(bpe_work *w, const tyr_tokenizer *t) {
  if (w->ready) return true;
  memset(w, 0, sizeof *w);
  if (!bpe_matcher_init(&w->m, t->re)) return false;
  w->ready = true;
  w->front = calloc(BPE_FRONT, sizeof *w->front);
  if (!w->front || !scratch_reserve(w, 256)) {
    work_free(w);
    return false;
  }
  return true;
}

/* Merges the n (>= 2) bytes at p by scanning for the lowest rank; writes
 * the ids to out and returns how many. */
static size_t merge_scan(const tyr_tokenizer *t, bpe_work *w, const uint8_t *p, size_t n,
                         uint32_t *out) {
  uint32_t *part = w->part, *rank = w->rank;
  for (size_t i = 0; i < n; i++) part[i] = t->byte_id[p[i]];
  for (size_t i = 0; i + 1 < n; i++) rank[i] = pair_lookup(t, part[i], part[i + 1]);
  rank[n - 1] = UINT32_MAX;
  size_t m = n;
  while (m > 1) {
    uint32_t best = UINT32_MAX;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; i++) {
      if (rank[i] < best) {
        best = rank[i];
        bi = i;
      }
    }
    if (best == UINT32_MAX) break;
    part[bi] = t->merge_id ? t->merge_id[best] : best;
    if (bi + 2 < m) {
      memmove(part + bi + 1, part + bi + 2, (m - bi - 2) * sizeof *part);
      memmove(rank + bi + 1, rank + bi + 2, (m - bi - 2) * sizeof *rank);
    }
    m--;
    if (bi > 0) rank[bi - 1] = pair_lookup(t, part[bi - 1], part[bi]);
    rank[bi] = bi + 1 < m ? pair_lookup(t, part[bi], part[bi + 1]) : UINT32_MAX;
  }
  memcpy(out, part, m * sizeof *part);
  return m;
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], v = h[--(*n)];
  size_t i = 0, m = *n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && h[c + 1] < h[c]) c++;
    if (h[c] >= v) break;
    h[i] = h[c];
    i = c;
  }
  if (m) h[i] = v;
  return top;
}

/* The same result for long chunks: a heap of (rank, position) over a
 * linked list of parts.  A pair's rank at a position changes only by a
 * merge there, and each change makes it a longer token, so an entry is
 * current exactly when its rank equals the position's current rank. */
static size_t merge_heap(const tyr_tokenizer *t, bpe_work *w, const uint8_t *p, size_t n,
                         uint32_t *out) {
  const uint32_t END = UINT32_MAX;
  uint32_t *part = w->part, *rank = w->rank, *next = w->next, *prev = w->prev;
  uint64_t *heap = w->heap;
  size_t hn = 0;
  for (size_t i = 0; i < n; i++) {
    part[i] = t->byte_id[p[i]];
    next[i] = i + 1 < n ? (uint32_t)(i + 1) : END;
    prev[i] = i ? (uint32_t)(i - 1) : END;
  }
  for (size_t i = 0; i < n; i++) {
    rank[i] = i + 1 < n ? pair_lookup(t, part[i], part[i + 1]) : UINT32_MAX;
    if (rank[i] != UINT32_MAX) heap[hn++] = (uint64_t)rank[i] << 32 | i;
  }
  /* heapify */
  for (size_t k = hn / 2; k-- > 0;) {
    uint64_t v = heap[k];
    size_t i = k;
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= hn) break;
      if (c + 1 < hn && heap[c + 1] < heap[c]) c++;
      if (heap[c] >= v) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = v;
  }
  while (hn) {
    uint64_t e = heap_pop(heap, &hn);
    uint32_t r = (uint32_t)(e >> 32), i = (uint32_t)e;
    if (rank[i] != r) continue;
    uint32_t j = next[i];
    part[i] = t->merge_id ? t->merge_id[r] : r;
    next[i] = next[j];
    if (next[j] != END) prev[next[j]] = i;
    rank[j] = UINT32_MAX;
    if (next[i] != END) {
      rank[i] = pair_lookup(t, part[i], part[next[i]]);
      if (rank[i] != UINT32_MAX) heap_push(heap, &hn, (uint64_t)rank[i] << 32 | i);
    } else {
      rank[i] = UINT32_MAX;
    }
    uint32_t k = prev[i];
    if (k != END) {
      rank[k] = pair_lookup(t, part[k], part[i]);
      if (rank[k] != UINT32_MAX) heap_push(heap, &hn, (uint64_t)rank[k] << 32 | k);
    }
  }
  size_t m = 0;
  for (uint32_t i = 0; i != END; i = next[i]) out[m++] = part[i];
  return m;
}

static void cache_clear(bpe_work *w) {
  if (w->slots) memset(w->slots, 0, w->cap * sizeof *w->slots);
  w->n = 0;
  w->aused = 0;
}

static const uint32_t *cache_find(const bpe_work *w, const uint8_t *p, size_t n, uint64_t h,
                                  uint32_t *nids) {
  if (!w->cap) return NULL;
  size_t mask = w->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const bpe_cache_slot *sl = &w->slots[i];
    if (!sl->off) return NULL;
    if (sl->h == h && sl->len == n) {
      const uint32_t *e = w->arena + sl->off - 1;
      if (memcmp(e + 1, p, n) == 0) {
        *nids = e[0];
        return e + 1 + (n + 3) / 4;
      }
    }
  }
}

/* Best effort: on any failure the entry is simply not cached. */
static void cache_put(bpe_work *w, const uint8_t *p, size_t n, uint64_t h, const uint32_t *ids,
                      uint32_t nids) {
  size_t words = 1 + (n + 3) / 4 + nids;
  if (w->aused + words > BPE_CACHE_WORDS ||
      (w->cap && w->n + 1 > w->cap / 2 && w->cap >= BPE_CACHE_MAX_SLOTS))
    cache_clear(w);
  if ((w->n + 1) * 2 > w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 4096;
    bpe_cache_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return;
    for (size_t i = 0; i < w->cap; i++) {
      if (!w->slots[i].off) continue;
      size_t j = w->slots[i].h & (ncap - 1);
      while (ns[j].off) j = (j + 1) & (ncap - 1);
      ns[j] = w->slots[i];
    }
    free(w->slots);
    w->slots = ns;
    w->cap = ncap;
  }
  if (w->aused + words > w->acap) {
    size_t ncap = w->acap ? w->acap * 2 : 65536;
    while (ncap < w->aused + words) ncap *= 2;
    uint32_t *na = realloc(w->arena, ncap * sizeof *na);
    if (!na) return;
    w->arena = na;
    w->acap = ncap;
  }
  uint32_t *e = w->arena + w->aused;
  e[0] = nids;
  e[(n + 3) / 4] = 0; /* the padding of the last word */
  memcpy(e + 1, p, n);
  memcpy(e + 1 + (n + 3) / 4, ids, nids * sizeof *ids);
  size_t mask = w->cap - 1;
  size_t i = h & mask;
  while (w->slots[i].off) i = (i + 1) & mask;
  w->slots[i].h = h;
  w->slots[i].len = (uint32_t)n;
  w->slots[i].off = (uint32_t)w->aused + 1;
  w->aused += words;
  w->n++;
}

/* The n (<= 8) bytes at p as a number, byte i in bits 8i..8i+7; readable
 * is how many bytes from p may be read. */
static inline uint64_t short_key(const uint8_t *p, size_t n, size_t readable) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (readable >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    return n == 8 ? v : v & ((1ull << (8 * n)) - 1);
  }
#endif
  (void)readable;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* Encodes one chunk (readable bytes may be read from p); false when out of
 * memory. */
static bool encode_chunk(const tyr_tokenizer *t, bpe_work *w, const uint8_t *p, size_t n,
                         size_t readable, bpe_out *o) {
  if (!out_reserve(o, n)) return false;
  uint32_t *dst = *o->ids + o->n;
  if (n == 1) {
    dst[0] = t->byte_id[p[0]];
    o->n++;
    return true;
  }
  bpe_front *fe = NULL;
  uint64_t key = 0;
  if (n <= 8 && tyr__bpe_use_cache) {
    key = short_key(p, n, readable);
    fe = &w->front[((key ^ n) * 0x9e3779b97f4a7c15ull) >> (64 - 13)];
    if (fe->len == n && fe->key == key) {
      for (int i = 0; i < fe->nids; i++) dst[i] = fe->ids[i];
      o->n += fe->nids;
      return true;
    }
  }
  uint64_t h = bpe_hash(p, n);
  int64_t id = !t->merge_id || t->ignore_merges ? bpe_token_lookup(t, p, n, h) : -1;
  if (id >= 0) {
    dst[0] = (uint32_t)id;
    o->n++;
    if (fe) *fe = (bpe_front){key, (uint8_t)n, 1, {(uint32_t)id, 0, 0, 0, 0}};
    return true;
  }
  uint32_t nids;
  const uint32_t *hit = tyr__bpe_use_cache ? cache_find(w, p, n, h, &nids) : NULL;
  size_t m;
  if (hit) {
    memcpy(dst, hit, nids * sizeof *dst);
    m = nids;
  } else {
    if (n >= UINT32_MAX || !scratch_reserve(w, n)) return false;
    m = n <= tyr__bpe_scan_max ? merge_scan(t, w, p, n, dst) : merge_heap(t, w, p, n, dst);
    if (n <= BPE_CACHE_CHUNK_MAX && tyr__bpe_use_cache) cache_put(w, p, n, h, dst, (uint32_t)m);
  }
  if (fe && m <= 5) {
    *fe = (bpe_front){key, (uint8_t)n, (uint8_t)m, {0}};
    for (size_t i = 0; i < m; i++) fe->ids[i] = dst[i];
  }
  o->n += m;
  return true;
}

/* Earliest special token at or after from (longest on a tie). */
static bool find_special(const tyr_tokenizer *t, const uint8_t *text, size_t from, size_t len,
                         size_t *at, int *which) {
  if (len < t->special_min_len) return false;
  size_t last = len - t->special_min_len;
  for (size_t i = from; i <= last; i++) {
    if (!t->special_first[text[i]]) continue;
    int best = -1;
    uint32_t blen = 0;
    for (int k = 0; k < t->n_specials; k++) {
      uint32_t l = t->special_len[k];
      if (l > blen && l <= len - i && memcmp(text + i, t->bytes + t->special_off[k], l) == 0) {
        best = k;
        blen = l;
      }
    }
    if (best >= 0) {
      *at = i;
      *which = best;
      return true;
    }
  }
  return false;
}

/* Encodes p[0..n) split by the pattern; readable bytes (>= n) may be read
 * from p. */
static int encode_ordinary(tyr_site s, const char *op, const tyr_tokenizer *t, bpe_work *w,
                           const uint8_t *p, size_t n, size_t readable, bpe_out *o) {
  bpe_splitter sp;
  bpe_split_begin(&sp, t->re, t->jit, &w->m, p, n);
  size_t b, e;
  while (bpe_split_next(&sp, &b, &e))
    if (!encode_chunk(t, w, p + b, e - b, readable - b, o))
      return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  if (sp.err) {
    char msg[256];
    pcre2_get_error_message(sp.err, (PCRE2_UCHAR *)msg, sizeof msg);
    return tyr_raise(TYR_ERR_ARG, s, op, "split pattern failed at byte %zu: %s", sp.pos, msg);
  }
  return 0;
}

int tyr_tokenizer_encode_append_at(tyr_site s, const tyr_tokenizer *t, const char *text, size_t len,
                                   bool allow_special, uint32_t **ids, size_t *cap, size_t *n) {
  const char *op = "tyr_tokenizer_encode";
  if (!t || !ids || !cap || !n || (!text && len))
    return tyr_raise(TYR_ERR_ARG, s, op, "NULL argument");
  if (*n > *cap) return tyr_raise(TYR_ERR_ARG, s, op, "count %zu exceeds capacity %zu", *n, *cap);
  tyr_tokenizer *mt = (tyr_tokenizer *)t; /* the workspaces are the only mutable part */
  int slot = -1;
  for (int i = 0; i < BPE_NCACHE; i++) {
    if (!atomic_flag_test_and_set_explicit(&mt->busy[i], memory_order_acquire)) {
      slot = i;
      break;
    }
  }
  bpe_work tmp = {0};
  bpe_work *w = slot >= 0 ? &mt->work[slot] : &tmp;
  int rc = 0;
  if (!work_init(w, t)) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto done;
  }
  bpe_out o = {ids, cap, *n};
  const uint8_t *p = (const uint8_t *)text;
  uint8_t *normal = NULL; /* the text in NFC, when the tokenizer asks and it differs */
  if (t->nfc) {
    size_t nlen;
    rc = bpe_nfc(s, op, p, len, &normal, &nlen);
    if (rc) goto done;
    if (normal) {
      p = normal;
      len = nlen;
    }
  }
  size_t pos = 0;
  while (pos < len && rc == 0) {
    size_t at = len;
    int which = -1;
    if (allow_special && t->n_specials) find_special(t, p, pos, len, &at, &which);
    rc = encode_ordinary(s, op, t, w, p + pos, at - pos, len - pos, &o);
    if (rc == 0 && which >= 0) {
      if (!out_reserve(&o, 1)) {
        rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
        break;
      }
      (*ids)[o.n++] = t->special_ids[which];
      at += t->special_len[which];
    }
    pos = at;
  }
  if (rc == 0) *n = o.n;
  free(normal);
done:
  if (slot >= 0)
    atomic_flag_clear_explicit(&mt->busy[slot], memory_order_release);
  else
    work_free(&tmp);
  return rc;
}

size_t tyr_tokenizer_encode_at(tyr_site s, const tyr_tokenizer *t, const char *text, size_t len,
                               bool allow_special, uint32_t **ids, size_t *cap) {
  size_t n = 0;
  if (!cap) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_tokenizer_encode", "NULL argument");
    return TYR_TOKENIZER_FAIL;
  }
  if (tyr_tokenizer_encode_append_at(s, t, text, len, allow_special, ids, cap, &n))
    return TYR_TOKENIZER_FAIL;
  return n;
}

/* ---- decoding --------------------------------------------------------------- */
size_t tyr_tokenizer_decode_at(tyr_site s, const tyr_tokenizer *t, const uint32_t *ids, size_t n,
                               char **out, size_t *cap) {
  const char *op = "tyr_tokenizer_decode";
  if (!t || !out || !cap || (!ids && n)) {
    tyr_raise(TYR_ERR_ARG, s, op, "NULL argument");
    return TYR_TOKENIZER_FAIL;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t id = ids[i];
    if (id >= t->n_ids || t->kind[id] == BPE_NONE) {
      tyr_raise(TYR_ERR_ARG, s, op, "id %u at position %zu is not a token (vocab size %u)", id, i,
                t->n_ids);
      return TYR_TOKENIZER_FAIL;
    }
    total += t->tok[id].len;
  }
  if (total + 1 + BPE_PAD > *cap) {
    size_t ncap = *cap ? *cap : 64;
    while (ncap < total + 1 + BPE_PAD) ncap *= 2;
    char *p = realloc(*out, ncap);
    if (!p) {
      tyr_raise(TYR_ERR_MEMORY, s, op, "cannot allocate %zu bytes", ncap);
      return TYR_TOKENIZER_FAIL;
    }
    *out = p;
    *cap = ncap;
  }
  char *d = *out;
  for (size_t i = 0; i < n; i++) {
    bpe_tok k = t->tok[ids[i]];
    const uint8_t *src = t->bytes + k.off;
    /* the arena and the output have BPE_PAD bytes to spare */
    if (k.len <= BPE_PAD)
      memcpy(d, src, BPE_PAD);
    else
      memcpy(d, src, k.len);
    d += k.len;
  }
  *d = 0;
  return total;
}
