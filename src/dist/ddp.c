/* Data parallel: the parameter check and broadcast at start, and gradient
 * averaging in buckets started from the autograd leaf hook as soon as each
 * bucket's gradients are final.  Buckets are started strictly in bucket
 * order (every rank issues the same collectives in the same order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "dist/internal.h"
#include "tyr/ops_create.h"

/* ---- the parameter check ---------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t param_hash(const tyr_param *p) {
  uint64_t h = fnv(0xcbf29ce484222325ull, p->name, strlen(p->name));
  h = fnv(h, &p->t->rank, sizeof p->t->rank);
  h = fnv(h, p->t->shape, sizeof(int64_t) * (size_t)p->t->rank);
  int dt = p->t->dtype;
  return fnv(h, &dt, sizeof dt);
}

/* all[r*n + i] = rank r's v[i]: an all-gather of int64s on dev. */
static int gather_i64(tyr_site s, tyr_dist *pg, tyr_device dev, const int64_t *v, int64_t n,
                      int64_t *all) {
  int N = pg->cfg.world_size;
  tyr_tensor *a = tyr_keep_e(tyr_empty_at(s, TYR_I64, dev, 1, (int64_t[]){n}));
  tyr_tensor *b = tyr_keep_e(tyr_empty_at(s, TYR_I64, dev, 1, (int64_t[]){n * N}));
  int st = a && b ? 0 : TYR_ERR_MEMORY;
  const tyr_backend *be = tyr_backend_lookup(dev);
  if (!st) {
    be->from_host(tyr_data_ptr(a), v, sizeof(int64_t) * (size_t)n, dev);
    st = tyr_dist_all_gather_at(s, pg, b, a);
  }
  if (!st) {
    be->synchronize(dev);
    be->to_host(all, tyr_data_ptr(b), sizeof(int64_t) * (size_t)(n * N), dev);
  }
  tyr_tensor_free(a);
  tyr_tensor_free(b);
  return st;
}

int tyr_dist_check_params_at(tyr_site s, tyr_dist *pg, const tyr_params *ps, const char *what) {
  const char *op = what ? what : "tyr_dist_check_params";
  int N = pg->cfg.world_size, rank = pg->cfg.rank;
  if (N == 1) return 0;
  tyr_device dev = ps->n ? ps->items[0].t->device : TYR_DEVICE_CPU;
  uint64_t h = 0xcbf29ce484222325ull;
  int64_t numel = 0;
  for (int i = 0; i < ps->n; i++) {
    uint64_t ph = param_hash(&ps->items[i]);
    h = fnv(h, &ph, sizeof ph);
    numel += tyr_numel(ps->items[i].t);
  }
  int64_t mine[3] = {(int64_t)h, ps->n, numel};
  int64_t *all = malloc(sizeof(int64_t) * 3 * (size_t)N);
  if (!all) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  int st = gather_i64(s, pg, dev, mine, 3, all);
  int bad = -1;
  int64_t nmin = ps->n;
  for (int r = 0; r < N && !st; r++) {
    if (all[3 * r] != all[0] && bad < 0) bad = r;
    if (all[3 * r + 1] < nmin) nmin = all[3 * r + 1];
  }
  if (st || bad < 0) {
    free(all);
    return st;
  }
  /* every rank saw the difference: find the first parameter that differs */
  char detail[512] = "";
  int64_t *ph = malloc(sizeof(int64_t) * (size_t)(nmin + 1)),
          *pall = malloc(sizeof(int64_t) * (size_t)(nmin + 1) * (size_t)N);
  if (ph && pall && nmin > 0) {
    for (int64_t i = 0; i < nmin; i++) ph[i] = (int64_t)param_hash(&ps->items[i]);
    if (!gather_i64(s, pg, dev, ph, nmin, pall)) {
      for (int64_t i = 0; i < nmin && !detail[0]; i++)
        if (pall[i] != pall[(int64_t)bad * nmin + i]) {
          char sh[160];
          const tyr_tensor *t = ps->items[i].t;
          snprintf(detail, sizeof detail, "; parameter %lld on this rank (%d) is '%s' %s %s",
                   (long long)i, rank, ps->items[i].name,
                   tyr_shape_str(t->shape, t->rank, sh, sizeof sh), tyr_dtype_name(t->dtype));
        }
    }
  }
  free(ph);
  free(pall);
  st = tyr_raise(TYR_ERR_SHAPE, s, op,
                 "the ranks' models differ: rank 0 has %lld parameters (%lld scalars), rank %d "
                 "has %lld (%lld scalars)%s",
                 (long long)all[1], (long long)all[2], bad, (long long)all[3 * bad + 1],
                 (long long)all[3 * bad + 2], detail);
  free(all);
  return st;
}

int tyr_dist_broadcast_params_at(tyr_site s, tyr_dist *pg, tyr_params *ps, int root) {
  if (pg->cfg.world_size == 1) return 0;
  for (int i = 0; i < ps->n; i++) {
    int st = tyr_dist_broadcast_at(s, pg, ps->items[i].t, root);
    if (st) return st;
  }
  return 0;
}

/* ---- buckets -------------------------------------------------------------- */

typedef struct bucket {
  tyr_tensor *flat; /* the bucket's gradients end to end */
  int pending;      /* parameters not yet ready this round */
  int nparams;
  tyr_dist_work *w;
  bool launched;
} bucket;

typedef struct pslot {
  tyr_tensor *t;
  int idx;
} pslot;

struct tyr_ddp {
  tyr_dist *pg;
  tyr_params *ps;
  tyr_ddp_config cfg;
  bucket *b;
  int nb;
  int *pbucket;     /* per parameter: its bucket */
  int64_t *poffset; /* its offset in the bucket */
  bool *ready;
  pslot *lookup; /* sorted by pointer */
  bool sync, local;
  int next; /* the next bucket to start */
  int overlapped, last_overlapped;
  int error;
};

static tyr_ddp *g_active;

tyr_ddp_config tyr_ddp_default_config(void) {
  return (tyr_ddp_config){.bucket_mb = 25, .overlap = true};
}

int tyr_ddp_num_buckets(const tyr_ddp *d) {
  return d->nb;
}
int tyr_ddp_overlapped_buckets(const tyr_ddp *d) {
  return d->last_overlapped;
}
void tyr_ddp_set_sync(tyr_ddp *d, bool on) {
  d->sync = on;
}

static int cmp_slot(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const pslot *)a)->t, y = (uintptr_t)((const pslot *)b)->t;
  return x < y ? -1 : x > y;
}

/* A view of the bucket's flat buffer with the parameter's shape. */
static tyr_tensor *slot_view(tyr_ddp *d, int i) {
  tyr_tensor *p = d->ps->items[i].t, *flat = d->b[d->pbucket[i]].flat;
  int64_t stride[TYR_MAX_RANK], acc = 1;
  for (int k = p->rank - 1; k >= 0; k--) stride[k] = acc, acc *= p->shape[k];
  return tyr_view_raw(flat, p->rank, p->shape, stride, flat->offset + d->poffset[i]);
}

static void pack(tyr_ddp *d, int i) {
  tyr_tensor *p = d->ps->items[i].t, *v = slot_view(d, i);
  const tyr_backend *be = tyr_backend_lookup(p->device);
  if (p->grad)
    be->copy(v, p->grad);
  else
    be->fill(v, 0);
  tyr_tensor_free(v);
  d->ready[i] = true;
  d->b[d->pbucket[i]].pending--;
}

static void launch_ready(tyr_ddp *d, tyr_site s, bool in_backward) {
  while (d->next < d->nb && d->b[d->next].pending == 0) {
    bucket *b = &d->b[d->next++];
    b->w = tyr_dist_all_reduce_async_at(s, d->pg, b->flat, TYR_DIST_AVG);
    if (!b->w) d->error = TYR_ERR_STATE;
    b->launched = true;
    if (in_backward) d->overlapped++;
  }
  /* let MPI progress the buckets in flight */
  for (int k = 0; k < d->next; k++)
    if (d->b[k].w) tyr_dist_test(d->b[k].w);
}

static void leaf_hook(tyr_tensor *leaf, void *ctx) {
  tyr_ddp *d = ctx;
  if (!d->sync || !d->cfg.overlap || d->local) return;
  pslot key = {.t = leaf}, *hit = bsearch(&key, d->lookup, (size_t)d->ps->n, sizeof key, cmp_slot);
  if (!hit) return; /* not one of ours */
  int i = hit->idx;
  if (d->ready[i]) return; /* a second backward before tyr_ddp_finish: finish reports it */
  pack(d, i);
  launch_ready(d, (tyr_site){__FILE__, __LINE__}, true);
}

tyr_ddp *tyr_ddp_init_at(tyr_site s, tyr_dist *pg, tyr_params *ps, const tyr_ddp_config *cfg_in) {
  const char *op = "tyr_ddp_init";
  if (!pg || !ps) {
    tyr_raise(TYR_ERR_ARG, s, op, "group or parameters are NULL");
    return NULL;
  }
  if (g_active) {
    tyr_raise(TYR_ERR_STATE, s, op, "another tyr_ddp is active (free it first)");
    return NULL;
  }
  if (tyr_dist_check_params_at(s, pg, ps, op) || tyr_dist_broadcast_params_at(s, pg, ps, 0))
    return NULL;
  tyr_ddp *d = calloc(1, sizeof *d);
  int n = ps->n;
  if (d) {
    d->pbucket = calloc((size_t)n + 1, sizeof *d->pbucket);
    d->poffset = calloc((size_t)n + 1, sizeof *d->poffset);
    d->ready = calloc((size_t)n + 1, sizeof *d->ready);
    d->lookup = calloc((size_t)n + 1, sizeof *d->lookup);
    d->b = calloc((size_t)n + 1, sizeof *d->b);
  }
  if (!d || !d->pbucket || !d->poffset || !d->ready || !d->lookup || !d->b) {
    tyr_ddp_free(d);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  d->pg = pg;
  d->ps = ps;
  d->cfg = cfg_in ? *cfg_in : tyr_ddp_default_config();
  if (!(d->cfg.bucket_mb > 0)) d->cfg.bucket_mb = 25;
  d->sync = true;
  tyr_device dev0 = n ? ps->items[0].t->device : TYR_DEVICE_CPU;
  d->local = !strcmp(tyr_dist_backend_name(pg, dev0), "local");
  /* buckets in reverse parameter order (backward makes the last ones first) */
  double cap = d->cfg.bucket_mb * 1024.0 * 1024.0;
  int64_t fill = 0;
  for (int i = n - 1; i >= 0; i--) {
    tyr_tensor *t = ps->items[i].t;
    if (!tyr_is_contiguous(t)) {
      tyr_raise(TYR_ERR_ARG, s, op, "parameter '%s' is not contiguous", ps->items[i].name);
      tyr_ddp_free(d);
      return NULL;
    }
    int64_t bytes = tyr_nbytes(t);
    bool fresh = d->nb == 0;
    if (!fresh) {
      tyr_tensor *prev = ps->items[i + 1].t;
      fresh = (double)(fill + bytes) > cap || prev->dtype != t->dtype ||
              !tyr_device_eq(prev->device, t->device);
    }
    if (fresh) {
      d->nb++;
      fill = 0;
    }
    d->pbucket[i] = d->nb - 1;
    d->poffset[i] = fill / (int64_t)tyr_dtype_size(t->dtype);
    d->b[d->nb - 1].nparams++;
    fill += bytes;
  }
  for (int k = 0; k < d->nb; k++) {
    int64_t numel = 0;
    tyr_tensor *any = NULL;
    for (int i = 0; i < n; i++)
      if (d->pbucket[i] == k) {
        int64_t end = d->poffset[i] + tyr_numel(ps->items[i].t);
        if (end > numel) numel = end;
        any = ps->items[i].t;
      }
    d->b[k].flat = tyr_keep_e(tyr_empty_at(s, any->dtype, any->device, 1, (int64_t[]){numel}));
    if (!d->b[k].flat) {
      tyr_ddp_free(d);
      return NULL;
    }
    d->b[k].pending = d->b[k].nparams;
  }
  for (int i = 0; i < n; i++) d->lookup[i] = (pslot){ps->items[i].t, i};
  qsort(d->lookup, (size_t)n, sizeof *d->lookup, cmp_slot);
  g_active = d;
  tyr__autograd_set_leaf_hook(leaf_hook, d);
  return d;
}

int tyr_ddp_finish_at(tyr_site s, tyr_ddp *d) {
  const char *op = "tyr_ddp_finish";
  if (!d) return tyr_raise(TYR_ERR_ARG, s, op, "NULL");
  if (!d->sync)
    return tyr_raise(TYR_ERR_STATE, s, op,
                     "sync is off (tyr_ddp_set_sync(d, false)): turn it on before the last "
                     "micro-step's backward");
  if (d->local) return 0; /* one process: the gradients are the average */
  int n = d->ps->n;
  for (int i = n - 1; i >= 0; i--)
    if (!d->ready[i]) pack(d, i);
  launch_ready(d, s, false);
  int st = d->error;
  for (int k = 0; k < d->nb; k++) {
    if (d->b[k].w) {
      int e = tyr_dist_wait_at(s, d->b[k].w);
      if (e && !st) st = e;
    }
    d->b[k].w = NULL;
    d->b[k].launched = false;
    d->b[k].pending = d->b[k].nparams;
  }
  for (int i = 0; i < n && !st; i++) {
    tyr_tensor *p = d->ps->items[i].t;
    if (!p->grad) {
      p->grad = tyr_keep_e(tyr_empty_at(s, p->dtype, p->device, p->rank, p->shape));
      if (!p->grad) st = TYR_ERR_MEMORY;
    }
    if (!st) {
      tyr_tensor *v = slot_view(d, i);
      tyr_backend_lookup(p->device)->copy(p->grad, v);
      tyr_tensor_free(v);
    }
  }
  memset(d->ready, 0, sizeof *d->ready * (size_t)n);
  d->last_overlapped = d->overlapped;
  d->overlapped = 0;
  d->next = 0;
  d->error = 0;
  return st;
}

void tyr_ddp_free(tyr_ddp *d) {
  if (!d) return;
  if (g_active == d) {
    tyr__autograd_set_leaf_hook(NULL, NULL);
    g_active = NULL;
  }
  for (int k = 0; k < d->nb; k++) {
    if (d->b[k].w) tyr_dist_wait_at((tyr_site){__FILE__, __LINE__}, d->b[k].w);
    tyr_tensor_free(d->b[k].flat);
  }
  free(d->b);
  free(d->pbucket);
  free(d->poffset);
  free(d->ready);
  free(d->lookup);
  free(d);
}
