/* BPE training.  Texts are split by the pattern as they are added and only
 * a count per distinct chunk is kept.  finish() turns the distinct chunks
 * into words of symbols, counts every adjacent pair (weighted by the word's
 * count) and keeps, per pair, the list of words it occurs in.  Each step
 * takes the most frequent pair from a heap, rewrites only the words on its
 * list, and adjusts the counts of the pairs around each rewritten
 * occurrence.  Heap entries are checked against the current count when
 * they come out: a stale larger count is pushed again with the right one,
 * and every increase pushes a fresh entry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>

#include "data/bpe_internal.h"

size_t tyr__bpe_file_block = (size_t)16 << 20;

typedef struct chunk_ent {
  uint64_t h;
  uint64_t key; /* chunks of up to 8 bytes: the bytes; longer: the arena offset */
  uint64_t count;
  uint32_t len;
  uint32_t used; /* 0: empty slot */
} chunk_ent;

static inline uint64_t load_short(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

struct tyr_bpe_trainer {
  char *pattern;
  pcre2_code *re;
  bool jit;
  bpe_matcher m;
  chunk_ent *tab;
  size_t cap, n;
  uint8_t *arena;
  size_t aused, acap;
  uint64_t nbytes;
  bool verbose;
};

tyr_bpe_trainer *tyr_bpe_trainer_init_at(tyr_site s, const char *pattern) {
  const char *op = "tyr_bpe_trainer_init";
  if (!pattern) pattern = TYR_TOKENIZER_PATTERN_GPT4;
  tyr_bpe_trainer *tr = calloc(1, sizeof *tr);
  if (!tr) goto oom;
  tr->pattern = strdup(pattern);
  tr->cap = 1 << 16;
  tr->tab = calloc(tr->cap, sizeof *tr->tab);
  tr->acap = 1 << 20;
  tr->arena = malloc(tr->acap);
  if (!tr->pattern || !tr->tab || !tr->arena) goto oom;
  tr->re = bpe_regex_compile(s, op, pattern, &tr->jit);
  if (!tr->re) goto fail;
  if (!bpe_matcher_init(&tr->m, tr->re)) goto oom;
  return tr;
oom:
  tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
fail:
  tyr_bpe_trainer_free(tr);
  return NULL;
}

void tyr_bpe_trainer_free(tyr_bpe_trainer *tr) {
  if (!tr) return;
  if (tr->m.md) bpe_matcher_free(&tr->m);
  pcre2_code_free(tr->re);
  free(tr->pattern);
  free(tr->tab);
  free(tr->arena);
  free(tr);
}

void tyr_bpe_trainer_set_verbose(tyr_bpe_trainer *tr, bool on) {
  if (tr) tr->verbose = on;
}
uint64_t tyr_bpe_trainer_n_bytes(const tyr_bpe_trainer *tr) {
  return tr ? tr->nbytes : 0;
}
uint64_t tyr_bpe_trainer_n_chunks(const tyr_bpe_trainer *tr) {
  return tr ? tr->n : 0;
}

/* Zeroed memory for a big table, in transparent huge pages where the
 * system allows (fewer TLB misses on random probes).  Freed with free(). */
static void *big_calloc(size_t n, size_t size) {
  size_t bytes = n * size;
  const size_t huge = (size_t)2 << 20;
  if (bytes < 4 * huge) return calloc(n, size);
  bytes = (bytes + huge - 1) / huge * huge;
  void *p = aligned_alloc(huge, bytes);
  if (!p) return NULL;
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 0, bytes);
  return p;
}

static bool chunk_grow(tyr_bpe_trainer *tr) {
  size_t ncap = tr->cap * 2;
  chunk_ent *nt = big_calloc(ncap, sizeof *nt);
  if (!nt) return false;
  for (size_t i = 0; i < tr->cap; i++) {
    if (!tr->tab[i].used) continue;
    size_t j = tr->tab[i].h & (ncap - 1);
    while (nt[j].used) j = (j + 1) & (ncap - 1);
    nt[j] = tr->tab[i];
  }
  free(tr->tab);
  tr->tab = nt;
  tr->cap = ncap;
  return true;
}

static bool chunk_add(tyr_bpe_trainer *tr, const uint8_t *p, size_t n) {
  if (n >= UINT32_MAX) return false;
  uint64_t h = bpe_hash(p, n);
  size_t mask = tr->cap - 1;
  size_t i = h & mask;
  for (; tr->tab[i].used; i = (i + 1) & mask) {
    chunk_ent *e = &tr->tab[i];
    if (e->h == h && e->len == n &&
        (n <= 8 ? e->key == load_short(p, n) : memcmp(tr->arena + e->key, p, n) == 0)) {
      e->count++;
      return true;
    }
  }
  if ((tr->n + 1) * 2 > tr->cap) {
    if (!chunk_grow(tr)) return false;
    mask = tr->cap - 1;
    for (i = h & mask; tr->tab[i].used; i = (i + 1) & mask) {
    }
  }
  uint64_t key = load_short(p, n < 8 ? n : 8);
  if (n > 8) {
    if (tr->aused + n > tr->acap) {
      size_t nc = tr->acap * 2;
      while (nc < tr->aused + n) nc *= 2;
      uint8_t *na = realloc(tr->arena, nc);
      if (!na) return false;
      tr->arena = na;
      tr->acap = nc;
    }
    memcpy(tr->arena + tr->aused, p, n);
    key = tr->aused;
    tr->aused += n;
  }
  tr->tab[i] = (chunk_ent){h, key, 1, (uint32_t)n, 1};
  tr->n++;
  return true;
}

/* Counts the chunks of p[0..n) that end at or before limit; *stop is where
 * the first chunk not counted starts (n when all were). */
static int count_text(tyr_site s, const char *op, tyr_bpe_trainer *tr, const uint8_t *p, size_t n,
                      size_t limit, size_t *stop) {
  bpe_splitter sp;
  bpe_split_begin(&sp, tr->re, tr->jit, &tr->m, p, n);
  size_t b, e;
  *stop = n;
  while (bpe_split_next(&sp, &b, &e)) {
    if (e > limit) {
      *stop = b;
      return 0;
    }
    if (!chunk_add(tr, p + b, e - b)) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  if (sp.err) {
    char msg[256];
    pcre2_get_error_message(sp.err, (PCRE2_UCHAR *)msg, sizeof msg);
    return tyr_raise(TYR_ERR_ARG, s, op, "split pattern failed at byte %zu: %s", sp.pos, msg);
  }
  return 0;
}

int tyr_bpe_trainer_add_at(tyr_site s, tyr_bpe_trainer *tr, const char *text, size_t len) {
  const char *op = "tyr_bpe_trainer_add";
  if (!tr || (!text && len)) return tyr_raise(TYR_ERR_ARG, s, op, "NULL argument");
  size_t stop;
  int rc = count_text(s, op, tr, (const uint8_t *)text, len, len, &stop);
  if (rc == 0) tr->nbytes += len;
  return rc;
}

/* A file read as plain bytes or, when it starts with the zstd magic
 * number, decompressed on the fly. */
typedef struct file_src {
  FILE *f;
  ZSTD_DStream *ds;
  uint8_t *in;
  ZSTD_inBuffer ib;
  size_t last; /* the last ZSTD_decompressStream result: 0 at a frame end */
  uint8_t head[4];
  size_t nhead;  /* plain files: bytes already read to look for the magic */
  bool io_error; /* the failure was the system's, not the data's */
} file_src;

#define SRC_IN 65536

/* Fills dst[0..n) as far as the file goes; returns the count, or
 * SIZE_MAX with *why set. */
static size_t src_read(file_src *src, uint8_t *dst, size_t n, const char **why) {
  if (!src->ds) {
    size_t k = src->nhead < n ? src->nhead : n;
    memcpy(dst, src->head, k);
    memmove(src->head, src->head + k, src->nhead - k);
    src->nhead -= k;
    size_t got = k + fread(dst + k, 1, n - k, src->f);
    if (ferror(src->f)) {
      *why = strerror(errno);
      src->io_error = true;
      return SIZE_MAX;
    }
    return got;
  }
  ZSTD_outBuffer ob = {dst, n, 0};
  while (ob.pos < ob.size) {
    if (src->ib.pos == src->ib.size) {
      size_t got = fread(src->in, 1, SRC_IN, src->f);
      if (ferror(src->f)) {
        *why = strerror(errno);
        src->io_error = true;
        return SIZE_MAX;
      }
      if (got == 0) {
        if (src->last != 0) {
          *why = "truncated zstd data";
          return SIZE_MAX;
        }
        break;
      }
      src->ib = (ZSTD_inBuffer){src->in, got, 0};
    }
    src->last = ZSTD_decompressStream(src->ds, &ob, &src->ib);
    if (ZSTD_isError(src->last)) {
      *why = ZSTD_getErrorName(src->last);
      return SIZE_MAX;
    }
  }
  return ob.pos;
}

int tyr_bpe_trainer_add_file_at(tyr_site s, tyr_bpe_trainer *tr, const char *path) {
  const char *op = "tyr_bpe_trainer_add_file";
  if (!tr || !path) return tyr_raise(TYR_ERR_ARG, s, op, "NULL argument");
  file_src src = {0};
  src.f = fopen(path, "rb");
  if (!src.f) return tyr_raise(TYR_ERR_IO, s, op, "%s: cannot open: %s", path, strerror(errno));
  size_t block = tyr__bpe_file_block ? tyr__bpe_file_block : 1;
  /* a chunk is counted only when at least `margin` bytes follow it in the
   * buffer, so that the pattern sees the same text as in one pass */
  size_t margin = block / 4 < 65536 ? block / 4 : 65536;
  size_t cap = block, n = 0;
  uint8_t *buf = malloc(cap);
  int rc = 0;
  if (!buf) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto done;
  }
  src.nhead = fread(src.head, 1, 4, src.f);
  if (src.nhead == 4 && src.head[0] == 0x28 && src.head[1] == 0xb5 && src.head[2] == 0x2f &&
      src.head[3] == 0xfd) {
    src.ds = ZSTD_createDStream();
    src.in = malloc(SRC_IN);
    if (!src.ds || !src.in) {
      rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
      goto done;
    }
    ZSTD_initDStream(src.ds);
    memcpy(src.in, src.head, 4);
    src.ib = (ZSTD_inBuffer){src.in, 4, 0};
    src.nhead = 0;
  }
  for (;;) {
    const char *why = NULL;
    size_t got = src_read(&src, buf + n, cap - n, &why);
    if (got == SIZE_MAX) {
      rc = tyr_raise(src.io_error ? TYR_ERR_IO : TYR_ERR_FORMAT, s, op, "%s: %s", path, why);
      goto done;
    }
    n += got;
    if (n < cap) { /* end of file */
      size_t stop;
      rc = count_text(s, op, tr, buf, n, n, &stop);
      if (rc == 0) tr->nbytes += n;
      goto done;
    }
    size_t stop;
    rc = count_text(s, op, tr, buf, n, n - margin, &stop);
    if (rc) goto done;
    tr->nbytes += stop;
    if (stop == 0) { /* one chunk fills the buffer: read more */
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) {
        rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
        goto done;
      }
      buf = nb;
      cap *= 2;
      margin = cap / 4 < 65536 ? cap / 4 : 65536;
      continue;
    }
    memmove(buf, buf + stop, n - stop);
    n -= stop;
  }
done:
  free(buf);
  free(src.in);
  ZSTD_freeDStream(src.ds);
  fclose(src.f);
  return rc;
}

/* ---- merging ------------------------------------------------------------------- */
typedef struct pair_rec {
  uint32_t a, b;
  int64_t count;
  uint32_t *w; /* words the pair occurs in (maybe stale, maybe repeated) */
  uint32_t nw, cw;
  uint64_t stamp; /* last step that raised the count */
} pair_rec;

typedef struct heap_ent {
  int64_t count;
  uint32_t a, b, idx;
} heap_ent;

typedef struct merger {
  /* words */
  uint32_t *sym;
  size_t *woff;
  uint32_t *wlen;
  uint64_t *wcnt;
  uint64_t *wstamp;
  uint32_t nwords;
  /* pairs */
  pair_rec *pairs;
  size_t np, pcap;
  uint64_t *pkeys; /* UINT64_MAX: empty */
  uint32_t *pidx;
  size_t mcap;
  /* heap */
  heap_ent *heap;
  size_t hn, hcap;
  /* tokens */
  uint8_t *tb;
  size_t tbn, tbcap;
  uint32_t *toff, *tlen;
  uint32_t ntok, tcap;
  uint32_t *tmap; /* id + 1 */
  size_t tmcap;
  /* pairs raised this step */
  uint32_t *touched;
  size_t nt, ct;
  uint64_t step;
  bool oom;
} merger;

static void merger_free(merger *m) {
  free(m->sym);
  free(m->woff);
  free(m->wlen);
  free(m->wcnt);
  free(m->wstamp);
  for (size_t i = 0; i < m->np; i++) free(m->pairs[i].w);
  free(m->pairs);
  free(m->pkeys);
  free(m->pidx);
  free(m->heap);
  free(m->tb);
  free(m->toff);
  free(m->tlen);
  free(m->tmap);
  free(m->touched);
}

/* The pair record of (a, b), made when create; SIZE_MAX if absent or out
 * of memory (m->oom). */
static size_t pair_get(merger *m, uint32_t a, uint32_t b, bool create) {
  uint64_t key = (uint64_t)a << 32 | b;
  size_t mask = m->mcap - 1;
  size_t i = bpe_mix64(key) & mask;
  for (; m->pkeys[i] != UINT64_MAX; i = (i + 1) & mask)
    if (m->pkeys[i] == key) return m->pidx[i];
  if (!create) return SIZE_MAX;
  if ((m->np + 1) * 2 > m->mcap) {
    size_t nc = m->mcap * 2;
    uint64_t *nk = malloc(nc * sizeof *nk);
    uint32_t *ni = malloc(nc * sizeof *ni);
    if (!nk || !ni) {
      free(nk);
      free(ni);
      m->oom = true;
      return SIZE_MAX;
    }
    memset(nk, 0xff, nc * sizeof *nk);
    for (size_t k = 0; k < m->mcap; k++) {
      if (m->pkeys[k] == UINT64_MAX) continue;
      size_t j = bpe_mix64(m->pkeys[k]) & (nc - 1);
      while (nk[j] != UINT64_MAX) j = (j + 1) & (nc - 1);
      nk[j] = m->pkeys[k];
      ni[j] = m->pidx[k];
    }
    free(m->pkeys);
    free(m->pidx);
    m->pkeys = nk;
    m->pidx = ni;
    m->mcap = nc;
    mask = nc - 1;
    for (i = bpe_mix64(key) & mask; m->pkeys[i] != UINT64_MAX; i = (i + 1) & mask) {
    }
  }
  if (m->np == m->pcap) {
    size_t nc = m->pcap ? m->pcap * 2 : 4096;
    pair_rec *np = realloc(m->pairs, nc * sizeof *np);
    if (!np || m->np >= UINT32_MAX) {
      if (np) m->pairs = np;
      m->oom = true;
      return SIZE_MAX;
    }
    m->pairs = np;
    m->pcap = nc;
  }
  m->pairs[m->np] = (pair_rec){a, b, 0, NULL, 0, 0, 0};
  m->pkeys[i] = key;
  m->pidx[i] = (uint32_t)m->np;
  return m->np++;
}

static void pair_add_word(merger *m, pair_rec *p, uint32_t w) {
  if (p->nw && p->w[p->nw - 1] == w) return;
  if (p->nw == p->cw) {
    uint32_t nc = p->cw ? p->cw * 2 : 4;
    uint32_t *nw = realloc(p->w, nc * sizeof *nw);
    if (!nw) {
      m->oom = true;
      return;
    }
    p->w = nw;
    p->cw = nc;
  }
  p->w[p->nw++] = w;
}

static bool heap_better(const heap_ent *x, const heap_ent *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static void heap_push_ent(merger *m, heap_ent e) {
  if (m->hn == m->hcap) {
    size_t nc = m->hcap ? m->hcap * 2 : 4096;
    heap_ent *nh = realloc(m->heap, nc * sizeof *nh);
    if (!nh) {
      m->oom = true;
      return;
    }
    m->heap = nh;
    m->hcap = nc;
  }
  size_t i = m->hn++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_better(&e, &m->heap[p])) break;
    m->heap[i] = m->heap[p];
    i = p;
  }
  m->heap[i] = e;
}

static heap_ent heap_pop_ent(merger *m) {
  heap_ent top = m->heap[0], v = m->heap[--m->hn];
  size_t i = 0, n = m->hn;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_better(&m->heap[c + 1], &m->heap[c])) c++;
    if (!heap_better(&m->heap[c], &v)) break;
    m->heap[i] = m->heap[c];
    i = c;
  }
  if (n) m->heap[i] = v;
  return top;
}

static void delta(merger *m, uint32_t a, uint32_t b, int64_t d, uint32_t w) {
  size_t idx = pair_get(m, a, b, d > 0);
  if (idx == SIZE_MAX) return;
  pair_rec *p = &m->pairs[idx];
  p->count += d;
  if (d > 0) {
    pair_add_word(m, p, w);
    if (p->stamp != m->step) {
      p->stamp = m->step;
      if (m->nt == m->ct) {
        size_t nc = m->ct ? m->ct * 2 : 1024;
        uint32_t *nt = realloc(m->touched, nc * sizeof *nt);
        if (!nt) {
          m->oom = true;
          return;
        }
        m->touched = nt;
        m->ct = nc;
      }
      m->touched[m->nt++] = (uint32_t)idx;
    }
  }
}

static void merge_word(merger *m, uint32_t w, uint32_t a, uint32_t b, uint32_t nid) {
  uint32_t *s = m->sym + m->woff[w];
  uint32_t n = m->wlen[w], j = 0, i = 0;
  int64_t c = (int64_t)m->wcnt[w];
  while (i < n) {
    if (i + 1 < n && s[i] == a && s[i + 1] == b) {
      if (j > 0) {
        delta(m, s[j - 1], a, -c, w);
        delta(m, s[j - 1], nid, c, w);
      }
      if (i + 2 < n) {
        delta(m, b, s[i + 2], -c, w);
        delta(m, nid, s[i + 2], c, w);
      }
      s[j++] = nid;
      i += 2;
    } else {
      s[j++] = s[i++];
    }
  }
  m->wlen[w] = j;
}

static int64_t tok_lookup(const merger *m, const uint8_t *p, size_t n, uint64_t h) {
  size_t mask = m->tmcap - 1;
  for (size_t i = h & mask; m->tmap[i]; i = (i + 1) & mask) {
    uint32_t id = m->tmap[i] - 1;
    if (m->tlen[id] == n && memcmp(m->tb + m->toff[id], p, n) == 0) return id;
  }
  return -1;
}

/* Adds a token (bytes not yet a token); false when out of memory. */
static bool tok_add(merger *m, const uint8_t *p, size_t n, uint64_t h) {
  if ((m->ntok + 1) * 2 > m->tmcap) {
    size_t nc = m->tmcap * 2;
    uint32_t *nm = calloc(nc, sizeof *nm);
    if (!nm) return false;
    for (uint32_t id = 0; id < m->ntok; id++) {
      size_t j = bpe_hash(m->tb + m->toff[id], m->tlen[id]) & (nc - 1);
      while (nm[j]) j = (j + 1) & (nc - 1);
      nm[j] = id + 1;
    }
    free(m->tmap);
    m->tmap = nm;
    m->tmcap = nc;
  }
  if (m->ntok == m->tcap) {
    uint32_t nc = m->tcap * 2;
    uint32_t *no = realloc(m->toff, nc * sizeof *no);
    if (no) m->toff = no;
    uint32_t *nl = realloc(m->tlen, nc * sizeof *nl);
    if (nl) m->tlen = nl;
    if (!no || !nl) return false;
    m->tcap = nc;
  }
  if (m->tbn + n > m->tbcap) {
    size_t nc = m->tbcap * 2;
    while (nc < m->tbn + n) nc *= 2;
    uint8_t *nb = realloc(m->tb, nc);
    if (!nb) return false;
    m->tb = nb;
    m->tbcap = nc;
  }
  if (m->tbn + n >= UINT32_MAX) return false;
  memcpy(m->tb + m->tbn, p, n);
  m->toff[m->ntok] = (uint32_t)m->tbn;
  m->tlen[m->ntok] = (uint32_t)n;
  m->tbn += n;
  size_t j = h & (m->tmcap - 1);
  while (m->tmap[j]) j = (j + 1) & (m->tmcap - 1);
  m->tmap[j] = m->ntok + 1;
  m->ntok++;
  return true;
}

tyr_tokenizer *tyr_bpe_trainer_finish_at(tyr_site s, tyr_bpe_trainer *tr, int vocab_size,
                                         const char *const *specials, int n_specials) {
  const char *op = "tyr_bpe_trainer_finish";
  if (!tr || n_specials < 0 || (n_specials > 0 && !specials)) {
    tyr_raise(TYR_ERR_ARG, s, op, "NULL argument or bad special tokens");
    return NULL;
  }
  if (vocab_size < 256 + n_specials || (uint32_t)vocab_size > TYR_TOKENIZER_MAX_ID) {
    tyr_raise(TYR_ERR_ARG, s, op, "vocab size %d is outside %d..%u (256 bytes + %d specials)",
              vocab_size, 256 + n_specials, TYR_TOKENIZER_MAX_ID, n_specials);
    return NULL;
  }
  uint32_t target = (uint32_t)(vocab_size - n_specials);
  merger M = {0}, *m = &M;
  tyr_tokenizer *t = NULL;
  const uint8_t **tok = NULL;
  uint32_t *ranks = NULL, *sids = NULL;

  /* tokens: the 256 bytes */
  m->tcap = 1024;
  m->tmcap = 2048;
  m->tbcap = 1 << 16;
  m->toff = malloc(m->tcap * sizeof *m->toff);
  m->tlen = malloc(m->tcap * sizeof *m->tlen);
  m->tmap = calloc(m->tmcap, sizeof *m->tmap);
  m->tb = malloc(m->tbcap);
  if (!m->toff || !m->tlen || !m->tmap || !m->tb) goto oom;
  for (int c = 0; c < 256; c++) {
    uint8_t b = (uint8_t)c;
    if (!tok_add(m, &b, 1, bpe_hash(&b, 1))) goto oom;
  }

  /* words: the distinct chunks of two or more bytes */
  size_t nsym = 0;
  uint32_t nw = 0;
  for (size_t i = 0; i < tr->cap; i++) {
    if (tr->tab[i].used && tr->tab[i].len >= 2) {
      nsym += tr->tab[i].len;
      nw++;
    }
  }
  m->nwords = nw;
  m->sym = malloc((nsym + 1) * sizeof *m->sym);
  m->woff = malloc(((size_t)nw + 1) * sizeof *m->woff);
  m->wlen = malloc(((size_t)nw + 1) * sizeof *m->wlen);
  m->wcnt = malloc(((size_t)nw + 1) * sizeof *m->wcnt);
  m->wstamp = calloc((size_t)nw + 1, sizeof *m->wstamp);
  m->mcap = 1 << 16;
  m->pkeys = malloc(m->mcap * sizeof *m->pkeys);
  m->pidx = malloc(m->mcap * sizeof *m->pidx);
  if (!m->sym || !m->woff || !m->wlen || !m->wcnt || !m->wstamp || !m->pkeys || !m->pidx) goto oom;
  memset(m->pkeys, 0xff, m->mcap * sizeof *m->pkeys);
  size_t at = 0;
  uint32_t w = 0;
  for (size_t i = 0; i < tr->cap; i++) {
    const chunk_ent *e = &tr->tab[i];
    if (!e->used || e->len < 2) continue;
    /* a chunk of up to 8 bytes keeps them in its key; a longer one, its
       offset in the arena (forming arena + key for a short one would be
       an out-of-bounds pointer) */
    uint8_t shortbuf[8];
    const uint8_t *p = shortbuf;
    if (e->len <= 8)
      for (uint32_t k = 0; k < e->len; k++) shortbuf[k] = (uint8_t)(e->key >> (8 * k));
    else
      p = tr->arena + e->key;
    m->woff[w] = at;
    m->wlen[w] = e->len;
    m->wcnt[w] = e->count;
    for (uint32_t k = 0; k < e->len; k++) m->sym[at + k] = p[k];
    for (uint32_t k = 0; k + 1 < e->len; k++) {
      size_t idx = pair_get(m, p[k], p[k + 1], true);
      if (idx == SIZE_MAX) goto oom;
      m->pairs[idx].count += (int64_t)e->count;
      pair_add_word(m, &m->pairs[idx], w);
    }
    if (m->oom) goto oom;
    at += e->len;
    w++;
  }
  for (size_t i = 0; i < m->np; i++) {
    const pair_rec *p = &m->pairs[i];
    heap_push_ent(m, (heap_ent){p->count, p->a, p->b, (uint32_t)i});
  }
  if (m->oom) goto oom;

  /* merge */
  while (m->ntok < target && m->hn) {
    heap_ent top = heap_pop_ent(m);
    pair_rec *p = &m->pairs[top.idx];
    if (top.count != p->count) {
      if (top.count > p->count && p->count > 0) {
        top.count = p->count;
        heap_push_ent(m, top);
        if (m->oom) goto oom;
      }
      continue;
    }
    if (p->count <= 0) continue;
    uint32_t a = p->a, b = p->b;
    size_t la = m->tlen[a], lb = m->tlen[b];
    uint8_t stackbuf[512];
    uint8_t *cat = la + lb <= sizeof stackbuf ? stackbuf : malloc(la + lb);
    if (!cat) goto oom;
    memcpy(cat, m->tb + m->toff[a], la);
    memcpy(cat + la, m->tb + m->toff[b], lb);
    uint64_t h = bpe_hash(cat, la + lb);
    int64_t nid = tok_lookup(m, cat, la + lb, h);
    if (nid < 0) { /* a new token (else the bytes came about by another pair) */
      if (!tok_add(m, cat, la + lb, h)) {
        if (cat != stackbuf) free(cat);
        goto oom;
      }
      nid = m->ntok - 1;
    }
    if (cat != stackbuf) free(cat);
    m->step++;
    m->nt = 0;
    uint32_t *words = p->w, nwl = p->nw;
    int64_t count = p->count;
    for (uint32_t k = 0; k < nwl; k++) {
      uint32_t wi = words[k];
      if (m->wstamp[wi] == m->step) continue;
      m->wstamp[wi] = m->step;
      merge_word(m, wi, a, b, (uint32_t)nid);
    }
    if (m->oom) goto oom;
    p = &m->pairs[top.idx]; /* the array may have moved */
    p->count = 0;
    free(p->w);
    p->w = NULL;
    p->nw = p->cw = 0;
    for (size_t k = 0; k < m->nt; k++) {
      const pair_rec *q = &m->pairs[m->touched[k]];
      if (q->count > 0) heap_push_ent(m, (heap_ent){q->count, q->a, q->b, m->touched[k]});
    }
    if (m->oom) goto oom;
    if (tr->verbose && (m->ntok % 1000 == 0 || m->ntok == target))
      fprintf(stderr, "tyr_bpe_trainer: %u/%u tokens, last merge seen %lld times\n", m->ntok,
              target, (long long)count);
  }

  /* the tokenizer */
  tok = malloc(m->ntok * sizeof *tok);
  ranks = malloc(m->ntok * sizeof *ranks);
  sids = malloc(((size_t)n_specials + 1) * sizeof *sids);
  if (!tok || !ranks || !sids) goto oom;
  for (uint32_t id = 0; id < m->ntok; id++) {
    tok[id] = m->tb + m->toff[id];
    ranks[id] = id;
  }
  for (int k = 0; k < n_specials; k++) sids[k] = m->ntok + (uint32_t)k;
  t = bpe_build(s, op, "trained tokenizer", tr->pattern, tok, m->tlen, ranks, m->ntok, specials,
                NULL, sids, n_specials);
  goto done;
oom:
  tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
done:
  free(tok);
  free(ranks);
  free(sids);
  merger_free(m);
  return t;
}

tyr_tokenizer *tyr_tokenizer_train_at(tyr_site s, const char *const *texts, const size_t *lens,
                                      size_t n, int vocab_size, const char *pattern) {
  if (!texts && n) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_tokenizer_train", "NULL texts");
    return NULL;
  }
  tyr_bpe_trainer *tr = tyr_bpe_trainer_init_at(s, pattern);
  if (!tr) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!texts[i]) continue;
    if (tyr_bpe_trainer_add_at(s, tr, texts[i], lens ? lens[i] : strlen(texts[i]))) {
      tyr_bpe_trainer_free(tr);
      return NULL;
    }
  }
  tyr_tokenizer *t = tyr_bpe_trainer_finish_at(s, tr, vocab_size, tyr_tokenizer_chat_specials,
                                               TYR_TOKENIZER_N_CHAT_SPECIALS);
  tyr_bpe_trainer_free(tr);
  return t;
}
