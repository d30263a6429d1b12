/* Batches of Branching Flows (tyr/branching_flows.h): B targets padded
 * with deletions, forested, bridged to their times and packed to fixed
 * [B, max_len] arrays.  Each batch element draws from its own Philox
 * stream, so the batch is the same on any number of threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "branching/internal.h"
#include "tyr/branching_flows.h"

void tyr_bf_batch_free(tyr_bf_batch *b) {
  free(b->t);
  free(b->len);
  free(b->xt);
  free(b->tok);
  free(b->anchor);
  free(b->anchor_tok);
  free(b->split_target);
  free(b->del);
  free(b->padmask);
  free(b->flowmask);
  free(b->branchmask);
  free(b->last_coal);
  free(b->group);
  memset(b, 0, sizeof *b);
}

static int batch_alloc(tyr_bf_batch *b, int64_t B, int64_t L, int64_t dim) {
  size_t n = (size_t)(B * L), nd = (size_t)(B * L * (dim > 0 ? dim : 1));
  b->B = B;
  b->L = L;
  b->dim = dim;
  b->t = calloc((size_t)B, sizeof *b->t);
  b->len = calloc((size_t)B, sizeof *b->len);
  b->xt = calloc(nd, sizeof *b->xt);
  b->anchor = calloc(nd, sizeof *b->anchor);
  b->tok = calloc(n, sizeof *b->tok);
  b->anchor_tok = calloc(n, sizeof *b->anchor_tok);
  b->split_target = calloc(n, sizeof(float));
  b->del = calloc(n, sizeof(float));
  b->padmask = calloc(n, sizeof(float));
  b->flowmask = calloc(n, sizeof(float));
  b->branchmask = calloc(n, sizeof(float));
  b->last_coal = calloc(n, sizeof(float));
  b->group = calloc(n, sizeof *b->group);
  if (!b->t || !b->len || !b->xt || !b->anchor || !b->tok || !b->anchor_tok || !b->split_target ||
      !b->del || !b->padmask || !b->flowmask || !b->branchmask || !b->last_coal || !b->group) {
    tyr_bf_batch_free(b);
    return -1;
  }
  return 0;
}

/* live segments at t for forest f, before deletions: roots plus splits <= t */
static int64_t live_bound(const tyr_bf_forest *f, double t) {
  int64_t n = f->n_roots;
  for (int64_t i = 0; i < f->n_splits; i++) n += f->split_times[i] <= t;
  return n;
}

/* One batch element; 0, 1 (no forest fitting max_len) or -1 (out of memory). */
static int one(const tyr_bf_config *c, const tyr_bf_target *x1, double t, tyr_bf_rng *r,
               tyr_bf_batch *out, int64_t b) {
  tyr_bf_seq padded = {0};
  tyr_bf_target tg = *x1;
  /* the target was checked: nothing below raises */
  if (c->deletion_pad > 0) {
    if (tyr__bf_pad(c, x1, r, &padded)) return -1;
    tg = tyr_bf_seq_target(&padded);
  }
  tyr_bf_forest f = {0};
  int rc = 1;
  for (int attempt = 0; attempt < c->max_resample; attempt++) {
    tyr_bf_forest_free(&f);
    if (tyr__bf_forest(c, &tg, r, &f)) {
      rc = -1;
      break;
    }
    double tt = t;
    if (f.n_splits > 0 && c->snap_prob > 0 && tyr_bf_rng_uniform(r) < c->snap_prob)
      tt = f.split_times[tyr_bf_rng_below(r, f.n_splits)];
    if (live_bound(&f, tt) > c->max_len) continue;
    tyr_bf_segment *seg = malloc((size_t)(f.n_leaves > 0 ? f.n_leaves : 1) * sizeof *seg);
    if (!seg) {
      rc = -1;
      break;
    }
    int64_t n = tyr_bf_bridge(c, &f, tt, r, seg);
    const int64_t L = out->L, D = out->dim;
    out->t[b] = (float)tt;
    out->len[b] = n;
    for (int64_t i = 0; i < L; i++) {
      int64_t k = b * L + i;
      if (i >= n) {
        out->tok[k] = out->anchor_tok[k] = c->vocab;
        continue;
      }
      const tyr_bf_segment *sg = &seg[i];
      for (int64_t d = 0; d < D; d++) {
        out->xt[k * D + d] = sg->xt.x[d];
        out->anchor[k * D + d] = sg->anchor.x[d];
      }
      out->tok[k] = c->vocab > 0 ? sg->xt.tok : 0;
      out->anchor_tok[k] = c->vocab > 0 ? sg->anchor.tok : 0;
      out->split_target[k] = (float)(sg->descendants - 1);
      out->del[k] = sg->del;
      out->padmask[k] = 1;
      out->flowmask[k] = sg->flowable;
      out->branchmask[k] = sg->branchable;
      out->last_coal[k] = (float)sg->last_coal;
      out->group[k] = sg->group;
    }
    free(seg);
    rc = 0;
    break;
  }
  tyr_bf_forest_free(&f);
  tyr_bf_seq_free(&padded);
  return rc;
}

int tyr_bf_batch_sample_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1, int64_t B,
                           const double *times, uint64_t seed, uint64_t step, tyr_bf_batch *out) {
  const char *op = "tyr_bf_batch_sample";
  memset(out, 0, sizeof *out);
  if (B < 1) return tyr_raise(TYR_ERR_ARG, s, op, "batch size %lld must be >= 1", (long long)B);
  if (!x1) return tyr_raise(TYR_ERR_ARG, s, op, "the targets are NULL");
  int st = tyr_bf_config_check_at(s, c);
  if (st) return st;
  for (int64_t b = 0; b < B; b++) {
    if (times && !(times[b] >= 0 && times[b] <= 1))
      return tyr_raise(TYR_ERR_ARG, s, op, "batch element %lld: time %g is outside [0, 1]",
                       (long long)b, times[b]);
    if ((st = tyr_bf_target_check_at(s, c, &x1[b]))) return st;
  }
  if (batch_alloc(out, B, c->max_len, c->dim))
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  int *rc = calloc((size_t)B, sizeof *rc);
  if (!rc) {
    tyr_bf_batch_free(out);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
  for (int64_t b = 0; b < B; b++) {
    tyr_bf_rng r;
    tyr_bf_rng_init(&r, seed, step * (uint64_t)B + (uint64_t)b);
    double t = times ? times[b] : tyr_bf_rng_uniform(&r);
    rc[b] = one(c, &x1[b], t, &r, out, b);
  }
  for (int64_t b = 0; b < B && !st; b++) {
    if (rc[b] < 0) st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    if (rc[b] > 0)
      st = tyr_raise(TYR_ERR_ARG, s, op,
                     "batch element %lld: %d forests in a row had more than max_len %lld segments "
                     "at t (raise max_len or lower deletion_pad)",
                     (long long)b, c->max_resample, (long long)c->max_len);
  }
  free(rc);
  if (st) tyr_bf_batch_free(out);
  return st;
}
