/* Batch iterators over token shards: windows of T + 1 tokens, in file order
 * or in a per-epoch permutation, split between data-parallel ranks.
 *
 * For a sequence length T the windows of an epoch form a grid: cum[i] is
 * the number of windows in shards before i, and window j of shard i starts
 * at j * T, or at starts[i][j] when windows are aligned to BOS tokens.  The
 * position is (epoch, k): k indexes the epoch's order, which maps to a grid
 * window through the identity (sequential) or a keyed Feistel permutation
 * with cycle walking (random), so no permutation table is stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/data.h"

typedef struct grid {
  int64_t T;        /* 0: no grid */
  int64_t N;        /* windows in an epoch */
  int64_t *cum;     /* nshards + 1 prefix counts */
  uint32_t **start; /* BOS mode: per shard window starts (NULL otherwise) */
  int half_bits;    /* random order: the Feistel half width */
} grid;

struct tyr_loader {
  tyr_shards *sh;
  char *source;
  tyr_loader_opts o;
  uint32_t **bos; /* BOS mode: positions of bos_token per shard */
  int64_t *nbos;
  grid g;
  int64_t epoch, k;
};

static void grid_free(grid *g, int nshards) {
  if (g->start) {
    for (int i = 0; i < nshards; i++) free(g->start[i]);
    free(g->start);
  }
  free(g->cum);
  memset(g, 0, sizeof *g);
}

/* Windows of shard i of length len for T (not BOS mode). */
static int64_t plain_count(int64_t len, int64_t T) {
  return len >= T + 1 ? (len - 1) / T : 0;
}

static int grid_build(tyr_site s, const tyr_loader *l, int64_t T, grid *g) {
  int n = tyr_shards_count(l->sh);
  memset(g, 0, sizeof *g);
  g->T = T;
  g->cum = calloc((size_t)n + 1, sizeof *g->cum);
  if (!g->cum) goto oom;
  if (l->o.align_bos) {
    g->start = calloc((size_t)n, sizeof *g->start);
    if (!g->start) goto oom;
  }
  for (int i = 0; i < n; i++) {
    int64_t len = tyr_shards_ntokens(l->sh, i), cnt = 0;
    if (l->o.align_bos) {
      const uint32_t *b = l->bos[i];
      int64_t nb = l->nbos[i];
      if (nb > 0) {
        g->start[i] = malloc((size_t)nb * sizeof(uint32_t));
        if (!g->start[i]) goto oom;
      }
      int64_t q = 0;
      while (q < nb && (int64_t)b[q] + T + 1 <= len) {
        int64_t p = b[q];
        g->start[i][cnt++] = (uint32_t)p;
        while (q < nb && (int64_t)b[q] < p + T) q++;
      }
    } else {
      cnt = plain_count(len, T);
    }
    g->cum[i + 1] = g->cum[i] + cnt;
  }
  g->N = g->cum[n];
  int bits = 0;
  while (bits < 64 && ((uint64_t)1 << bits) < (uint64_t)g->N) bits++;
  if (bits < 2) bits = 2;
  g->half_bits = (bits + 1) / 2;
  return 0;
oom:
  grid_free(g, n);
  return tyr_raise(TYR_ERR_MEMORY, s, "tyr_loader", "out of host memory");
}

/* Shard and start of grid window w < N. */
static void grid_locate(const tyr_loader *l, const grid *g, int64_t w, int *shard, int64_t *pos) {
  int lo = 0, hi = tyr_shards_count(l->sh) - 1; /* largest i with cum[i] <= w < cum[i+1] */
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (g->cum[mid] <= w)
      lo = mid;
    else
      hi = mid - 1;
  }
  while (g->cum[lo + 1] <= w) lo++; /* skip empty shards */
  int64_t j = w - g->cum[lo];
  *shard = lo;
  *pos = g->start ? (int64_t)g->start[lo][j] : j * g->T;
}

/* First grid window at or after token pos of shard i (N when none). */
static int64_t grid_first_at(const tyr_loader *l, const grid *g, int i, int64_t pos) {
  int64_t cnt = g->cum[i + 1] - g->cum[i], j;
  if (g->start) {
    int64_t lo = 0, hi = cnt;
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if ((int64_t)g->start[i][mid] < pos)
        lo = mid + 1;
      else
        hi = mid;
    }
    j = lo;
  } else {
    j = (pos + g->T - 1) / g->T;
    if (j > cnt) j = cnt;
  }
  (void)l;
  return g->cum[i] + j;
}

static uint64_t feistel(uint64_t seed, uint64_t epoch, int h, uint64_t x) {
  uint64_t mask = h >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << h) - 1;
  uint64_t L = x >> h, R = x & mask;
  for (uint64_t r = 0; r < 6; r++) {
    uint32_t out[4];
    tyr_philox4x32(seed, ((epoch * 8 + r) << 32) | (R & 0xffffffffu), out);
    uint64_t f = ((uint64_t)out[0] | (uint64_t)out[1] << 32) & mask;
    uint64_t nl = R;
    R = L ^ f;
    L = nl;
  }
  return (L << h) | R;
}

/* The grid window read at place k of epoch e. */
static int64_t order_map(const tyr_loader *l, int64_t e, int64_t k) {
  const grid *g = &l->g;
  if (l->o.order == TYR_LOADER_SEQUENTIAL || g->N <= 1) return k;
  uint64_t y = (uint64_t)k;
  do y = feistel(l->o.seed, (uint64_t)e, g->half_bits, y);
  while (y >= (uint64_t)g->N);
  return (int64_t)y;
}

/* Makes the grid for T current, carrying the position over. */
static int use_T(tyr_site s, tyr_loader *l, int64_t T) {
  if (l->g.T == T) return 0;
  grid ng;
  int rc = grid_build(s, l, T, &ng);
  if (rc) return rc;
  int n = tyr_shards_count(l->sh);
  if (ng.N == 0) {
    int64_t longest = 0;
    for (int i = 0; i < n; i++)
      if (tyr_shards_ntokens(l->sh, i) > longest) longest = tyr_shards_ntokens(l->sh, i);
    grid_free(&ng, n);
    if (l->o.align_bos)
      return tyr_raise(TYR_ERR_ARG, s, l->source,
                       "no window of T + 1 = %lld tokens starting at BOS token %d fits in any "
                       "shard (%d shard%s, longest %lld tokens)",
                       (long long)T + 1, l->o.bos_token, n, n == 1 ? "" : "s", (long long)longest);
    return tyr_raise(TYR_ERR_ARG, s, l->source,
                     "no window of T + 1 = %lld tokens fits in any shard (%d shard%s, longest %lld "
                     "tokens)",
                     (long long)T + 1, n, n == 1 ? "" : "s", (long long)longest);
  }
  int64_t e = l->epoch, k = 0;
  if (l->g.T > 0 && l->k > 0) {
    if (l->o.order == TYR_LOADER_SEQUENTIAL) {
      int shard;
      int64_t pos;
      grid_locate(l, &l->g, l->k, &shard, &pos);
      k = grid_first_at(l, &ng, shard, pos);
      if (k >= ng.N) {
        k = 0;
        e++;
      }
    } else {
      k = (int64_t)((unsigned __int128)l->k * (uint64_t)ng.N / (uint64_t)l->g.N);
    }
  }
  grid_free(&l->g, n);
  l->g = ng;
  l->epoch = e;
  l->k = k;
  return 0;
}

static int find_bos(tyr_site s, tyr_loader *l) {
  int n = tyr_shards_count(l->sh);
  l->bos = calloc((size_t)n, sizeof *l->bos);
  l->nbos = calloc((size_t)n, sizeof *l->nbos);
  if (!l->bos || !l->nbos) goto oom;
  uint16_t b = (uint16_t)l->o.bos_token;
  for (int i = 0; i < n; i++) {
    const uint16_t *t = tyr_shards_tokens(l->sh, i);
    int64_t len = tyr_shards_ntokens(l->sh, i), cnt = 0;
    for (int64_t j = 0; j < len; j++) cnt += t[j] == b;
    l->nbos[i] = cnt;
    if (!cnt) continue;
    if (!(l->bos[i] = malloc((size_t)cnt * sizeof(uint32_t)))) goto oom;
    for (int64_t j = 0, c = 0; j < len; j++)
      if (t[j] == b) l->bos[i][c++] = (uint32_t)j;
  }
  return 0;
oom:
  return tyr_raise(TYR_ERR_MEMORY, s, l->source, "out of host memory");
}

tyr_loader *tyr_loader_open_at(tyr_site s, const char *source, const tyr_loader_opts *opts) {
  const char *op = "tyr_loader_open";
  tyr_loader_opts o = opts ? *opts : (tyr_loader_opts){0};
  if (o.world_size == 0) o.world_size = 1;
  if (o.world_size < 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "world size %d is negative", o.world_size);
    return NULL;
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    tyr_raise(TYR_ERR_ARG, s, op, "rank %d is out of range for world size %d", o.rank,
              o.world_size);
    return NULL;
  }
  if (o.order != TYR_LOADER_SEQUENTIAL && o.order != TYR_LOADER_RANDOM) {
    tyr_raise(TYR_ERR_ARG, s, op, "unknown order %d", (int)o.order);
    return NULL;
  }
  if (o.align_bos && (o.bos_token < 0 || o.bos_token > 65535)) {
    tyr_raise(TYR_ERR_ARG, s, op, "BOS token %d is not a uint16 token id", o.bos_token);
    return NULL;
  }
  tyr_shards *sh = tyr_shards_open_at(s, source, o.format);
  if (!sh) return NULL;
  tyr_loader *l = calloc(1, sizeof *l);
  if (!l || !(l->source = strdup(source))) {
    free(l);
    tyr_shards_close(sh);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  l->sh = sh;
  l->o = o;
  if (o.align_bos && find_bos(s, l)) {
    tyr_loader_close(l);
    return NULL;
  }
  return l;
}

void tyr_loader_close(tyr_loader *l) {
  if (!l) return;
  int n = tyr_shards_count(l->sh);
  grid_free(&l->g, n);
  if (l->bos)
    for (int i = 0; i < n; i++) free(l->bos[i]);
  free(l->bos);
  free(l->nbos);
  tyr_shards_close(l->sh);
  free(l->source);
  free(l);
}

static int check_bt(tyr_site s, const char *op, const tyr_loader *l, int64_t B, int64_t T) {
  if (!l) return tyr_raise(TYR_ERR_ARG, s, op, "loader is NULL");
  if (B < 1 || T < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "batch size %lld and sequence length %lld must be >= 1",
                     (long long)B, (long long)T);
  if (T >= INT32_MAX || B > INT64_MAX / 8 / T / l->o.world_size)
    return tyr_raise(TYR_ERR_ARG, s, op, "batch [%lld, %lld] is too large", (long long)B,
                     (long long)T);
  return 0;
}

int tyr_loader_next_into_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T, int64_t *x,
                            int64_t *y) {
  const char *op = "tyr_loader_next";
  int rc = check_bt(s, op, l, B, T);
  if (rc) return rc;
  if (!x || !y) return tyr_raise(TYR_ERR_ARG, s, op, "output buffer is NULL");
  rc = use_T(s, l, T);
  if (rc) return rc;
  const int64_t N = l->g.N, W = l->o.world_size, r = l->o.rank;
  for (int64_t b = 0; b < B; b++) {
    int64_t idx = l->k + b * W + r;
    int64_t e = l->epoch + idx / N, k = idx % N;
    int shard;
    int64_t pos;
    grid_locate(l, &l->g, order_map(l, e, k), &shard, &pos);
    const uint16_t *t = tyr_shards_tokens(l->sh, shard) + pos;
    int64_t *xr = x + b * T, *yr = y + b * T;
    for (int64_t i = 0; i < T; i++) {
      xr[i] = t[i];
      yr[i] = t[i + 1];
    }
  }
  int64_t adv = l->k + B * W;
  l->epoch += adv / N;
  l->k = adv % N;
  return 0;
}

int tyr_loader_next_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T, tyr_tensor **x,
                       tyr_tensor **y) {
  const char *op = "tyr_loader_next";
  if (x) *x = NULL;
  if (y) *y = NULL;
  if (!x || !y) return tyr_raise(TYR_ERR_ARG, s, op, "output pointer is NULL");
  int rc = check_bt(s, op, l, B, T);
  if (rc) return rc;
  int64_t shape[2] = {B, T};
  tyr_tensor *tx = tyr_empty_at(s, TYR_I64, TYR_DEVICE_CPU, 2, shape);
  if (!tx) return tyr_error_last() ? tyr_error_last()->status : TYR_ERR_MEMORY;
  tyr_tensor *ty = tyr_empty_at(s, TYR_I64, TYR_DEVICE_CPU, 2, shape);
  if (!ty) {
    tyr_tensor_free(tx);
    return tyr_error_last() ? tyr_error_last()->status : TYR_ERR_MEMORY;
  }
  rc = tyr_loader_next_into_at(s, l, B, T, tyr_data_ptr(tx), tyr_data_ptr(ty));
  if (rc) {
    tyr_tensor_free(tx);
    tyr_tensor_free(ty);
    return rc;
  }
  *x = tx;
  *y = ty;
  return 0;
}

int tyr__loader_next_checked_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T,
                                const int64_t xdims[2], const int64_t ydims[2], tyr_tensor **x,
                                tyr_tensor **y) {
  *x = *y = NULL;
  const int64_t *d[2] = {xdims, ydims};
  for (int i = 0; i < 2; i++)
    if (d[i][0] != B || d[i][1] != T)
      return tyr_raise(TYR_ERR_SHAPE, s, "tyr_loader_next",
                       "%s is declared [%lld, %lld] but the batch is [%lld, %lld]", i ? "y" : "x",
                       (long long)d[i][0], (long long)d[i][1], (long long)B, (long long)T);
  return tyr_loader_next_at(s, l, B, T, x, y);
}

int64_t tyr_loader_epoch(const tyr_loader *l) {
  return l ? l->epoch : 0;
}
const tyr_shards *tyr_loader_shards(const tyr_loader *l) {
  return l ? l->sh : NULL;
}

int64_t tyr_loader_windows_at(tyr_site s, tyr_loader *l, int64_t T) {
  if (check_bt(s, "tyr_loader_windows", l, 1, T)) return -1;
  if (l->g.T == T) return l->g.N;
  grid g;
  if (grid_build(s, l, T, &g)) return -1;
  int64_t N = g.N;
  grid_free(&g, tyr_shards_count(l->sh));
  return N;
}

void tyr_loader_reset(tyr_loader *l) {
  if (!l) return;
  l->epoch = 0;
  l->k = 0;
}

tyr_loader_state tyr_loader_get_state(const tyr_loader *l) {
  tyr_loader_state st = {0, 0, 0};
  if (l) {
    st.epoch = l->epoch;
    st.window = l->k;
    st.T = l->g.T;
  }
  return st;
}

int tyr_loader_set_state_at(tyr_site s, tyr_loader *l, tyr_loader_state st) {
  const char *op = "tyr_loader_set_state";
  if (!l) return tyr_raise(TYR_ERR_ARG, s, op, "loader is NULL");
  if (st.epoch < 0 || st.window < 0 || st.T < 0)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "negative field in state (epoch %lld, window %lld, T %lld)",
                     (long long)st.epoch, (long long)st.window, (long long)st.T);
  if (st.T == 0) {
    if (st.window != 0)
      return tyr_raise(TYR_ERR_ARG, s, op, "window %lld given without a sequence length",
                       (long long)st.window);
    l->epoch = st.epoch;
    l->k = 0;
    return 0;
  }
  int rc = check_bt(s, op, l, 1, st.T);
  if (rc) return rc;
  int n = tyr_shards_count(l->sh);
  grid ng = l->g;
  if (l->g.T != st.T && (rc = grid_build(s, l, st.T, &ng))) return rc;
  if (st.window >= ng.N) {
    int64_t N = ng.N;
    if (ng.cum != l->g.cum) grid_free(&ng, n);
    return tyr_raise(TYR_ERR_ARG, s, op, "window %lld is out of range: %lld windows of T = %lld",
                     (long long)st.window, (long long)N, (long long)st.T);
  }
  if (ng.cum != l->g.cum) {
    grid_free(&l->g, n);
    l->g = ng;
  }
  l->epoch = st.epoch;
  l->k = st.window;
  return 0;
}
