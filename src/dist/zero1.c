/* ZeRO-1 AdamW: the moments sharded over ranks.  The parameters lie end to
 * end in a flat buffer of world_size * shard elements (zero padding at the
 * end, so that no size has to divide by the world size); rank r owns
 * [r*shard, (r+1)*shard).  A step: gradients packed flat, reduce-scattered
 * (average), clipped by the global norm, AdamW on each parameter's part of
 * the shard (the backend's adamw_step, elementwise the same as the
 * unsharded optimizer), then the parameters all-gathered. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "dist/internal.h"

struct tyr_zero1 {
  tyr_dist *pg;
  tyr_params *ps;
  tyr_optim_config cfg;
  int64_t total, shard;
  int64_t *offset; /* per parameter: its start in the flat buffer */
  tyr_tensor *gflat, *pflat, *gshard, *pshard, *m, *v;
  int64_t step;
  bool grads_averaged; /* the gradients arrive averaged: no reduce-scatter */
};

static tyr_tensor *flat_view(tyr_tensor *flat, int64_t off, int rank, const int64_t *shape) {
  int64_t stride[TYR_MAX_RANK], acc = 1;
  for (int k = rank - 1; k >= 0; k--) stride[k] = acc, acc *= shape[k];
  return tyr_view_raw(flat, rank, shape, stride, flat->offset + off);
}

static tyr_tensor *seg(tyr_tensor *flat, int64_t off, int64_t n) {
  return flat_view(flat, off, 1, (int64_t[]){n});
}

tyr_zero1 *tyr_zero1_init_at(tyr_site s, tyr_dist *pg, tyr_params *ps, tyr_optim_config cfg) {
  const char *op = "tyr_zero1_init";
  if (!pg || !ps || ps->n == 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "group or parameters are NULL or empty");
    return NULL;
  }
  if (cfg.kind != TYR_OPTIM_ADAMW) {
    tyr_raise(TYR_ERR_ARG, s, op, "ZeRO-1 shards AdamW's moments; the config is not AdamW");
    return NULL;
  }
  if (cfg.ngroups == 0) {
    cfg.ngroups = 1;
    cfg.groups[0] = (tyr_param_group){1.0, cfg.weight_decay};
  }
  tyr_tensor *p0 = ps->items[0].t;
  for (int i = 0; i < ps->n; i++) {
    tyr_param *p = &ps->items[i];
    if (p->t->dtype != p0->dtype || !tyr_device_eq(p->t->device, p0->device)) {
      tyr_raise(TYR_ERR_DTYPE, s, op,
                "parameter '%s' is %s on %s, '%s' is %s on %s: one dtype and device", p->name,
                tyr_dtype_name(p->t->dtype), tyr_device_name(p->t->device), ps->items[0].name,
                tyr_dtype_name(p0->dtype), tyr_device_name(p0->device));
      return NULL;
    }
    if (p->group < 0 || p->group >= cfg.ngroups) {
      tyr_raise(TYR_ERR_ARG, s, op, "parameter '%s' is in group %d, but there are %d groups",
                p->name, p->group, cfg.ngroups);
      return NULL;
    }
  }
  if (tyr_dist_check_params_at(s, pg, ps, op) || tyr_dist_broadcast_params_at(s, pg, ps, 0))
    return NULL;
  tyr_zero1 *z = calloc(1, sizeof *z);
  if (z) z->offset = calloc((size_t)ps->n, sizeof *z->offset);
  if (!z || !z->offset) {
    free(z);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  z->pg = pg, z->ps = ps, z->cfg = cfg;
  for (int i = 0; i < ps->n; i++) {
    z->offset[i] = z->total;
    z->total += tyr_numel(ps->items[i].t);
  }
  int N = pg->cfg.world_size;
  z->shard = (z->total + N - 1) / N;
  tyr_device dev = p0->device;
  const tyr_backend *be = tyr_backend_lookup(dev);
  z->pflat = tyr_keep_e(tyr_empty_at(s, p0->dtype, dev, 1, (int64_t[]){z->shard * N}));
  z->gshard = tyr_keep_e(tyr_empty_at(s, p0->dtype, dev, 1, (int64_t[]){z->shard}));
  z->pshard = tyr_keep_e(tyr_empty_at(s, p0->dtype, dev, 1, (int64_t[]){z->shard}));
  z->m = tyr_keep_e(tyr_empty_at(s, TYR_F32, dev, 1, (int64_t[]){z->shard}));
  z->v = tyr_keep_e(tyr_empty_at(s, TYR_F32, dev, 1, (int64_t[]){z->shard}));
  if (!z->pflat || !z->gshard || !z->pshard || !z->m || !z->v) {
    tyr_zero1_free(z);
    return NULL;
  }
  be->fill(z->pflat, 0);
  be->fill(z->pshard, 0);
  be->fill(z->m, 0);
  be->fill(z->v, 0);
  return z;
}

void tyr_zero1_free(tyr_zero1 *z) {
  if (!z) return;
  tyr_tensor_free(z->gflat);
  tyr_tensor_free(z->pflat);
  tyr_tensor_free(z->gshard);
  tyr_tensor_free(z->pshard);
  tyr_tensor_free(z->m);
  tyr_tensor_free(z->v);
  free(z->offset);
  free(z);
}

void tyr_zero1_set_grads_averaged(tyr_zero1 *z, bool on) {
  z->grads_averaged = on;
}

int64_t tyr_zero1_state_bytes(const tyr_zero1 *z) {
  return 2 * z->shard * (int64_t)sizeof(float);
}
int64_t tyr_zero1_step_count(const tyr_zero1 *z) {
  return z->step;
}

/* Calls fn for each parameter's part inside this rank's shard: i, the part
 * [lo, hi) in flat coordinates. */
typedef void (*part_fn)(tyr_zero1 *z, int i, int64_t lo, int64_t hi, void *ctx);
static void for_parts(tyr_zero1 *z, part_fn fn, void *ctx) {
  int64_t a = z->pg->cfg.rank * z->shard, b = a + z->shard;
  for (int i = 0; i < z->ps->n; i++) {
    int64_t lo = z->offset[i], hi = lo + tyr_numel(z->ps->items[i].t);
    if (lo < a) lo = a;
    if (hi > b) hi = b;
    if (lo < hi) fn(z, i, lo, hi, ctx);
  }
}

static void copy_param_part(tyr_zero1 *z, int i, int64_t lo, int64_t hi, void *ctx) {
  (void)ctx;
  tyr_tensor *p = z->ps->items[i].t;
  int64_t a = z->pg->cfg.rank * z->shard;
  tyr_tensor *pf = flat_view(p, 0, 1, (int64_t[]){tyr_numel(p)});
  tyr_tensor *src = seg(pf, lo - z->offset[i], hi - lo), *dst = seg(z->pshard, lo - a, hi - lo);
  tyr_backend_lookup(p->device)->copy(dst, src);
  tyr_tensor_free(src);
  tyr_tensor_free(dst);
  tyr_tensor_free(pf);
}

/* the gradient's part (averaged already) into the gradient shard */
static void copy_grad_part(tyr_zero1 *z, int i, int64_t lo, int64_t hi, void *ctx) {
  (void)ctx;
  tyr_tensor *p = z->ps->items[i].t;
  int64_t a = z->pg->cfg.rank * z->shard;
  tyr_tensor *dst = seg(z->gshard, lo - a, hi - lo);
  if (p->grad) {
    tyr_tensor *gf = flat_view(p->grad, 0, 1, (int64_t[]){tyr_numel(p)});
    tyr_tensor *src = seg(gf, lo - z->offset[i], hi - lo);
    tyr_backend_lookup(p->device)->copy(dst, src);
    tyr_tensor_free(src);
    tyr_tensor_free(gf);
  } else {
    tyr_backend_lookup(p->device)->fill(dst, 0);
  }
  tyr_tensor_free(dst);
}

typedef struct {
  double lr;
} step_ctx;

static void adam_part(tyr_zero1 *z, int i, int64_t lo, int64_t hi, void *ctx) {
  const step_ctx *c = ctx;
  const tyr_optim_config *cf = &z->cfg;
  const tyr_param_group *g = &cf->groups[z->ps->items[i].group];
  int64_t a = z->pg->cfg.rank * z->shard, n = hi - lo;
  tyr_tensor *p = seg(z->pshard, lo - a, n), *gr = seg(z->gshard, lo - a, n),
             *m = seg(z->m, lo - a, n), *v = seg(z->v, lo - a, n);
  tyr_backend_lookup(p->device)->adamw_step(p, gr, m, v, c->lr * g->lr_scale, cf->beta1, cf->beta2,
                                            cf->eps, g->weight_decay, z->step);
  tyr_tensor_free(p);
  tyr_tensor_free(gr);
  tyr_tensor_free(m);
  tyr_tensor_free(v);
}

int tyr_zero1_step_at(tyr_site s, tyr_zero1 *z, double lr, double max_norm, double *norm_out) {
  const char *op = "tyr_zero1_step";
  if (!z) return tyr_raise(TYR_ERR_ARG, s, op, "NULL");
  tyr_params *ps = z->ps;
  const tyr_backend *be = tyr_backend_lookup(z->m->device);
  if (lr < 0) lr = z->cfg.lr;
  int st = 0;
  if (z->grads_averaged) { /* this rank's shard of them; the padding is zero */
    for (int i = 0; i < ps->n; i++)
      if (ps->items[i].t->grad && !tyr_is_contiguous(ps->items[i].t->grad))
        return tyr_raise(TYR_ERR_ARG, s, op, "the gradient of '%s' is not contiguous",
                         ps->items[i].name);
    be->fill(z->gshard, 0);
    for_parts(z, copy_grad_part, NULL);
  } else {
    /* gradients flat (a buffer made on first use); missing ones are zero */
    if (!z->gflat) {
      tyr_tensor *p0 = ps->items[0].t;
      z->gflat = tyr_keep_e(
          tyr_empty_at(s, p0->dtype, p0->device, 1, (int64_t[]){z->shard * z->pg->cfg.world_size}));
      if (!z->gflat) return TYR_ERR_MEMORY;
      be->fill(z->gflat, 0);
    }
    for (int i = 0; i < ps->n; i++) {
      tyr_tensor *p = ps->items[i].t;
      tyr_tensor *v = flat_view(z->gflat, z->offset[i], p->rank, p->shape);
      if (p->grad)
        be->copy(v, p->grad);
      else
        be->fill(v, 0);
      tyr_tensor_free(v);
    }
    if ((st = tyr_dist_reduce_scatter_at(s, z->pg, z->gshard, z->gflat, TYR_DIST_AVG))) return st;
  }
  if (max_norm > 0 || norm_out) {
    double ss = be->sum_squares(z->gshard);
    ss = tyr_dist_reduce_scalar_at(s, z->pg, ss, TYR_DIST_SUM);
    double norm = sqrt(ss);
    if (norm_out) *norm_out = norm;
    if (max_norm > 0 && norm > max_norm && isfinite(norm))
      be->scale_(z->gshard, max_norm / (norm + 1e-6));
  }
  z->step++;
  for_parts(z, copy_param_part, NULL);
  step_ctx c = {lr};
  for_parts(z, adam_part, &c);
  if ((st = tyr_dist_all_gather_at(s, z->pg, z->pflat, z->pshard))) return st;
  for (int i = 0; i < ps->n; i++) {
    tyr_tensor *p = ps->items[i].t;
    tyr_tensor *v = flat_view(z->pflat, z->offset[i], p->rank, p->shape);
    be->copy(p, v);
    tyr_tensor_free(v);
  }
  return 0;
}

/* opt's moments <-> the shards: dir 0 gathers into opt, 1 scatters from it */
static int move_state(tyr_site s, const char *op, tyr_zero1 *z, tyr_optim *opt, int dir) {
  if (!opt || opt->params != z->ps || opt->n != z->ps->n || !opt->m || !opt->v)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "the optimizer must be AdamW over the same parameter collection");
  tyr_device dev = z->m->device;
  const tyr_backend *be = tyr_backend_lookup(dev);
  int N = z->pg->cfg.world_size, R = z->pg->cfg.rank;
  tyr_tensor *full = tyr_keep_e(tyr_empty_at(s, TYR_F32, dev, 1, (int64_t[]){z->shard * N}));
  if (!full) return TYR_ERR_MEMORY;
  be->fill(full, 0);
  int st = 0;
  for (int which = 0; which < 2 && !st; which++) {
    tyr_tensor *sh = which ? z->v : z->m, **mine = which ? opt->v : opt->m;
    if (dir == 0) {
      st = tyr_dist_all_gather_at(s, z->pg, full, sh);
      for (int i = 0; i < z->ps->n && !st; i++) {
        tyr_tensor *v = flat_view(full, z->offset[i], mine[i]->rank, mine[i]->shape);
        be->copy(mine[i], v);
        tyr_tensor_free(v);
      }
    } else {
      for (int i = 0; i < z->ps->n; i++) {
        tyr_tensor *v = flat_view(full, z->offset[i], mine[i]->rank, mine[i]->shape);
        be->copy(v, mine[i]);
        tyr_tensor_free(v);
      }
      tyr_tensor *part = seg(full, R * z->shard, z->shard);
      be->copy(sh, part);
      tyr_tensor_free(part);
    }
  }
  tyr_tensor_free(full);
  if (!st) {
    if (dir == 0)
      opt->step = z->step;
    else
      z->step = opt->step;
  }
  return st;
}

int tyr_zero1_gather_state_at(tyr_site s, tyr_zero1 *z, tyr_optim *opt) {
  return move_state(s, "tyr_zero1_gather_state", z, opt, 0);
}
int tyr_zero1_scatter_state_at(tyr_site s, tyr_zero1 *z, const tyr_optim *opt) {
  return move_state(s, "tyr_zero1_scatter_state", z, (tyr_optim *)opt, 1);
}
