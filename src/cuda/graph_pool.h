/* The memory of CUDA graphs: segments split into chunks.
 *
 * Every block a capture takes, and every block freed during it, belongs to
 * the graph until tyr_cuda_graph_free: each replay writes it again.  Such a
 * block is a segment of the graph's pool.  Later allocations of the same
 * capture take the smallest idle chunk that fits (best fit), split off what
 * they do not need, and freed chunks merge with idle neighbours, so the
 * graph's memory comes close to the capture's largest working set.  A pool
 * of whole blocks, one per request, held 9.25 GB for GPT-2 124M's training
 * step at batch 16 where this one holds 8.20 (docs/cuda.md).
 *
 * This file is plain C (and C++) and calls no CUDA: addresses are numbers to
 * it, and the allocator (src/cuda/cuda_runtime.cu) gives and takes the
 * segments.  Its functions are static inline, here with their definitions
 * below, so that the allocator and tests/unit/test_graph_pool.c, which
 * checks them on any machine, each compile their own copy (a static link
 * would otherwise need the C library's object after the CUDA archive). */
#ifndef TYR_CUDA_GRAPH_POOL_H
#define TYR_CUDA_GRAPH_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size classes of the caching allocator: 512 bytes, then 8 classes per
   power of two (at most 12.5% rounding). */
#define TCU_NCLASS (1 + 55 * 8)
/* Chunks start at multiples of this from their segment's base */
#define TCU_GCHUNK_ALIGN ((size_t)512)

/* The class of n bytes; its size in *rounded. */
static inline int tcu_size_class(size_t n, size_t *rounded);
/* The size of class c (tcu_size_class's inverse). */
static inline size_t tcu_class_size(int c);

typedef struct tcu_gpool tcu_gpool;
typedef struct tcu_gseg tcu_gseg;
typedef struct tcu_gchunk tcu_gchunk;

/* A piece of a segment: held by a tensor (used) or idle. */
struct tcu_gchunk {
  char *p;
  size_t size;
  bool used;
  tcu_gseg *seg;
  tcu_gchunk *prev, *next;   /* neighbours in the segment, by address */
  tcu_gchunk *bprev, *bnext; /* the pool's bin (idle chunks of a live pool) */
};

/* A block given to a graph, cut into chunks that cover it. */
struct tcu_gseg {
  char *base;
  size_t size;
  int n_used;              /* chunks held */
  tcu_gpool *pool;         /* NULL once the graph is freed (some chunks still held) */
  tcu_gchunk *first;       /* the chunk at base */
  tcu_gseg *sprev, *snext; /* the pool's segments */
};

/* One graph's memory. */
struct tcu_gpool {
  tcu_gchunk *bins[TCU_NCLASS]; /* idle chunks, by the class their size rounds up to */
  tcu_gseg *segs;
  size_t reserved; /* bytes of its segments */
  size_t idle;     /* of which in idle chunks */
};

/* The smallest idle chunk of at least n bytes (n a multiple of
   TCU_GCHUNK_ALIGN), its first n bytes split off, now used; NULL when none
   is that large.  Out of host memory the chunk is not split. */
static inline tcu_gchunk *tcu_gpool_take(tcu_gpool *g, size_t n);

/* Adds the block [base, base + size) to g as a segment whose first n bytes
   (0: none) are a used chunk, returned in *used; false, with nothing
   changed, when the host is out of memory. */
static inline bool tcu_gpool_add(tcu_gpool *g, void *base, size_t size, size_t n,
                                 tcu_gchunk **used);

/* Makes a used chunk idle, merged with idle neighbours.  A chunk of a freed
   graph's segment: true when it was the segment's last used chunk, the
   segment then gone and its block in *base and *size for the caller. */
static inline bool tcu_gpool_release(tcu_gchunk *c, void **base, size_t *size);

/* Makes the segment of c, whose graph was freed, g's (with its idle chunks). */
static inline void tcu_gpool_adopt(tcu_gpool *g, tcu_gchunk *c);

/* Empties g (its graph is freed): each segment with no used chunk goes to
   give(ctx, base, size); the others stay until their last chunk is released. */
static inline void tcu_gpool_clear(tcu_gpool *g, void (*give)(void *ctx, void *base, size_t size),
                                   void *ctx);

/* Used chunks by address, for the allocator's free: an open-addressing table. */
typedef struct {
  void **keys;
  tcu_gchunk **vals;
  size_t cap, count;
} tcu_gmap;

/* Makes room for one more entry; false when the host is out of memory. */
static inline bool tcu_gmap_reserve(tcu_gmap *m);
/* Adds p (room made by tcu_gmap_reserve). */
static inline void tcu_gmap_put(tcu_gmap *m, void *p, tcu_gchunk *c);
static inline tcu_gchunk *tcu_gmap_find(const tcu_gmap *m, const void *p);
/* Removes p, which is there. */
static inline void tcu_gmap_del(tcu_gmap *m, const void *p);

/* ==== definitions ==== */

/* ---- size classes ---------------------------------------------------------- */
static inline int tcu_size_class(size_t n, size_t *rounded) {
  if (n <= 512) {
    *rounded = 512;
    return 0;
  }
  int o = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^o < n <= 2^(o+1) */
  size_t step = (size_t)1 << (o - 3);
  size_t k = (n + step - 1) / step; /* 9..16 */
  *rounded = k * step;
  return 1 + (o - 9) * 8 + (int)(k - 9);
}

static inline size_t tcu_class_size(int c) {
  if (c == 0) return 512;
  int o = 9 + (c - 1) / 8;
  return (size_t)(9 + (c - 1) % 8) << (o - 3);
}

/* ---- bins of idle chunks ----------------------------------------------------- */
static inline int gp_bin_of(size_t size) {
  size_t r;
  return tcu_size_class(size, &r);
}

static inline void gp_bin_insert(tcu_gpool *g, tcu_gchunk *c) {
  int b = gp_bin_of(c->size);
  c->bprev = NULL;
  c->bnext = g->bins[b];
  if (c->bnext) c->bnext->bprev = c;
  g->bins[b] = c;
  g->idle += c->size;
}

static inline void gp_bin_remove(tcu_gpool *g, tcu_gchunk *c) {
  if (c->bprev)
    c->bprev->bnext = c->bnext;
  else
    g->bins[gp_bin_of(c->size)] = c->bnext;
  if (c->bnext) c->bnext->bprev = c->bprev;
  c->bprev = c->bnext = NULL;
  g->idle -= c->size;
}

/* ---- chunks -------------------------------------------------------------------- */
/* Links a new chunk n after c in c's segment. */
static inline void gp_link_after(tcu_gchunk *c, tcu_gchunk *n) {
  n->prev = c;
  n->next = c->next;
  if (c->next) c->next->prev = n;
  c->next = n;
}

static inline void gp_unlink(tcu_gchunk *c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->seg->first == c) c->seg->first = c->next;
}

static inline tcu_gchunk *tcu_gpool_take(tcu_gpool *g, size_t n) {
  /* Chunks of a higher bin are all larger than those of a lower one: the
     best fit is the smallest fitting chunk of the first bin that has one. */
  tcu_gchunk *best = NULL;
  for (int b = gp_bin_of(n); b < TCU_NCLASS && !best; b++)
    for (tcu_gchunk *c = g->bins[b]; c; c = c->bnext)
      if (c->size >= n && (!best || c->size < best->size)) best = c;
  if (!best) return NULL;
  gp_bin_remove(g, best);
  if (best->size - n >= TCU_GCHUNK_ALIGN) {
    tcu_gchunk *rest = (tcu_gchunk *)calloc(1, sizeof *rest);
    if (rest) { /* out of host memory the whole chunk is handed out */
      rest->p = best->p + n;
      rest->size = best->size - n;
      rest->seg = best->seg;
      gp_link_after(best, rest);
      best->size = n;
      gp_bin_insert(g, rest);
    }
  }
  best->used = true;
  best->seg->n_used++;
  return best;
}

static inline bool tcu_gpool_add(tcu_gpool *g, void *base, size_t size, size_t n,
                                 tcu_gchunk **used) {
  bool split = n > 0 && size - n >= TCU_GCHUNK_ALIGN;
  tcu_gseg *s = (tcu_gseg *)calloc(1, sizeof *s);
  tcu_gchunk *c = (tcu_gchunk *)calloc(1, sizeof *c);
  tcu_gchunk *rest = split ? (tcu_gchunk *)calloc(1, sizeof *rest) : NULL;
  if (!s || !c || (split && !rest)) {
    free(s);
    free(c);
    free(rest);
    return false;
  }
  s->base = (char *)base;
  s->size = size;
  s->pool = g;
  s->first = c;
  s->snext = g->segs;
  if (g->segs) g->segs->sprev = s;
  g->segs = s;
  g->reserved += size;
  c->p = s->base;
  c->seg = s;
  if (n == 0) { /* all idle */
    c->size = size;
    gp_bin_insert(g, c);
    if (used) *used = NULL;
    return true;
  }
  c->size = split ? n : size;
  c->used = true;
  s->n_used = 1;
  if (split) {
    rest->p = s->base + n;
    rest->size = size - n;
    rest->seg = s;
    gp_link_after(c, rest);
    gp_bin_insert(g, rest);
  }
  if (used) *used = c;
  return true;
}

static inline bool tcu_gpool_release(tcu_gchunk *c, void **base, size_t *size) {
  tcu_gseg *s = c->seg;
  tcu_gpool *g = s->pool;
  c->used = false;
  s->n_used--;
  tcu_gchunk *n = c->next;
  if (n && !n->used) { /* n merges into c */
    if (g) gp_bin_remove(g, n);
    c->size += n->size;
    gp_unlink(n);
    free(n);
  }
  tcu_gchunk *p = c->prev;
  if (p && !p->used) { /* c merges into p */
    if (g) gp_bin_remove(g, p);
    p->size += c->size;
    gp_unlink(c);
    free(c);
    c = p;
  }
  if (g) {
    gp_bin_insert(g, c);
    return false;
  }
  if (s->n_used > 0) return false;
  /* a freed graph's segment, now one idle chunk: the block goes back */
  *base = s->base;
  *size = s->size;
  free(c);
  free(s);
  return true;
}

static inline void tcu_gpool_adopt(tcu_gpool *g, tcu_gchunk *c) {
  tcu_gseg *s = c->seg;
  s->pool = g;
  s->sprev = NULL;
  s->snext = g->segs;
  if (g->segs) g->segs->sprev = s;
  g->segs = s;
  g->reserved += s->size;
  for (tcu_gchunk *k = s->first; k; k = k->next)
    if (!k->used) gp_bin_insert(g, k);
}

static inline void tcu_gpool_clear(tcu_gpool *g, void (*give)(void *ctx, void *base, size_t size),
                                   void *ctx) {
  tcu_gseg *s = g->segs;
  while (s) {
    tcu_gseg *next = s->snext;
    if (s->n_used == 0) { /* one idle chunk covers it */
      give(ctx, s->base, s->size);
      tcu_gchunk *k = s->first;
      while (k) {
        tcu_gchunk *kn = k->next;
        free(k);
        k = kn;
      }
      free(s);
    } else { /* held chunks keep it; their releases merge its idle chunks */
      s->pool = NULL;
      s->sprev = s->snext = NULL;
      for (tcu_gchunk *k = s->first; k; k = k->next) k->bprev = k->bnext = NULL;
    }
    s = next;
  }
  memset(g, 0, sizeof *g);
}

/* ---- used chunks by address ---------------------------------------------------- */
static inline size_t gp_gmap_slot(const tcu_gmap *m, const void *p) {
  uintptr_t h = (uintptr_t)p >> 9; /* chunks start at least 512 bytes apart */
  h ^= h >> 17;
  h *= 0x9e3779b97f4a7c15ull;
  return (size_t)(h ^ (h >> 29)) & (m->cap - 1);
}

static inline bool tcu_gmap_reserve(tcu_gmap *m) {
  if ((m->count + 1) * 2 <= m->cap) return true;
  size_t cap = m->cap ? m->cap * 2 : 1024;
  void **keys = (void **)calloc(cap, sizeof *keys);
  tcu_gchunk **vals = (tcu_gchunk **)calloc(cap, sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return false;
  }
  tcu_gmap old = *m;
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  m->count = 0;
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i]) tcu_gmap_put(m, old.keys[i], old.vals[i]);
  free(old.keys);
  free(old.vals);
  return true;
}

static inline void tcu_gmap_put(tcu_gmap *m, void *p, tcu_gchunk *c) {
  size_t i = gp_gmap_slot(m, p);
  while (m->keys[i]) i = (i + 1) & (m->cap - 1);
  m->keys[i] = p;
  m->vals[i] = c;
  m->count++;
}

static inline tcu_gchunk *tcu_gmap_find(const tcu_gmap *m, const void *p) {
  if (!m->count) return NULL;
  for (size_t i = gp_gmap_slot(m, p);; i = (i + 1) & (m->cap - 1)) {
    if (m->keys[i] == p) return m->vals[i];
    if (!m->keys[i]) return NULL;
  }
}

static inline void tcu_gmap_del(tcu_gmap *m, const void *p) {
  size_t mask = m->cap - 1, i = gp_gmap_slot(m, p);
  while (m->keys[i] != p) i = (i + 1) & mask;
  /* backward shift: each later entry of the run moves into the hole unless
     its home slot lies cyclically in (hole, its slot] */
  for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
    size_t k = gp_gmap_slot(m, m->keys[j]);
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    m->keys[i] = m->keys[j];
    m->vals[i] = m->vals[j];
    i = j;
  }
  m->keys[i] = NULL;
  m->vals[i] = NULL;
  m->count--;
}

#ifdef __cplusplus
}
#endif

#endif
