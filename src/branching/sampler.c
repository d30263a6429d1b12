/* The sampler of Branching Flows (tyr/branching_flows.h): Euler steps of
 * a sequence from t = 0 to 1 given a model's predictions, with splits
 * (insertions next to the parent) and deletions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/branching_flows.h"

void tyr_bf_state_free(tyr_bf_state *st) {
  free(st->e);
  free(st->group);
  free(st->branchable);
  free(st->flowable);
  memset(st, 0, sizeof *st);
}

static int state_reserve(tyr_bf_state *st, int64_t cap) {
  if (cap <= st->cap) return 0;
  tyr_bf_elem *e = realloc(st->e, (size_t)cap * sizeof *e);
  if (e) st->e = e;
  int32_t *g = realloc(st->group, (size_t)cap * sizeof *g);
  if (g) st->group = g;
  uint8_t *b = realloc(st->branchable, (size_t)cap);
  if (b) st->branchable = b;
  uint8_t *f = realloc(st->flowable, (size_t)cap);
  if (f) st->flowable = f;
  if (!e || !g || !b || !f) return -1;
  st->cap = cap;
  return 0;
}

int tyr_bf_state_init_at(tyr_site s, const tyr_bf_config *c, tyr_bf_state *st, int64_t n,
                         tyr_bf_rng *r) {
  const char *op = "tyr_bf_state_init";
  memset(st, 0, sizeof *st);
  int rc = tyr_bf_config_check_at(s, c);
  if (rc) return rc;
  if (n < 1 || n > c->max_len)
    return tyr_raise(TYR_ERR_ARG, s, op, "%lld start elements: must be in 1..max_len %lld",
                     (long long)n, (long long)c->max_len);
  if (state_reserve(st, c->max_len)) {
    tyr_bf_state_free(st);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  st->n = n;
  for (int64_t i = 0; i < n; i++) {
    tyr_bf_start_state(c, r, &st->e[i]);
    st->group[i] = 0;
    st->branchable[i] = st->flowable[i] = 1;
  }
  return 0;
}

int tyr_bf_step_at(tyr_site s, const tyr_bf_config *c, tyr_bf_state *st, const tyr_bf_prediction *p,
                   double t, double dt, tyr_bf_rng *r) {
  const char *op = "tyr_bf_step";
  if (!(t >= 0 && dt > 0 && t + dt <= 1 + 1e-9))
    return tyr_raise(TYR_ERR_ARG, s, op, "t %g and dt %g must satisfy 0 <= t < t + dt <= 1", t, dt);
  if (!p || (c->dim > 0 && !p->x) || (c->vocab > 0 && !p->logits) || !p->split || !p->del)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "the prediction lacks anchors (dim %d), token logits (vocab %d), split or "
                     "deletion logits",
                     c->dim, c->vocab);
  const int64_t n = st->n;
  int64_t *splits = calloc((size_t)(n > 0 ? n : 1), sizeof *splits);
  uint8_t *dels = calloc((size_t)(n > 0 ? n : 1), 1);
  double *prob = c->vocab > 0 ? malloc((size_t)c->vocab * sizeof *prob) : NULL;
  if (!splits || !dels || (c->vocab > 0 && !prob)) {
    free(splits);
    free(dels);
    free(prob);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  const double rem = 1.0 - t, frac = rem > dt ? dt / rem : 1.0;
  const double hb = tyr_bf_dist_hazard(&c->branch_time, t);
  const double hd = tyr_bf_dist_hazard(&c->deletion_time, t);
  const double base_del = 1.0 - exp(-hd * dt);
  for (int64_t i = 0; i < n; i++) {
    tyr_bf_elem *e = &st->e[i];
    bool changed = false;
    if (st->flowable[i]) {
      for (int d = 0; d < c->dim; d++) {
        double v = e->x[d] + frac * ((double)p->x[i * c->dim + d] - e->x[d]);
        if (c->bridge == TYR_BF_BRIDGE_BROWNIAN && c->sigma > 0 && rem > dt)
          v += c->sigma * sqrt(dt) * tyr_bf_rng_normal(r);
        e->x[d] = (float)v;
      }
      if (c->vocab > 0 && tyr_bf_rng_uniform(r) < frac) {
        const float *lg = p->logits + i * c->vocab;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < c->vocab; v++) mx = fmax(mx, (double)lg[v]);
        for (int v = 0; v < c->vocab; v++) z += prob[v] = exp((double)lg[v] - mx);
        double u = tyr_bf_rng_uniform(r) * z, run = 0;
        int pick = c->vocab - 1;
        for (int v = 0; v < c->vocab; v++) {
          run += prob[v];
          if (u < run) {
            pick = v;
            break;
          }
        }
        changed = pick != e->tok;
        e->tok = pick;
      }
    }
    if (!st->branchable[i]) continue;
    double sl = p->split[i];
    sl = sl < -100 ? -100 : sl > 11 ? 11 : sl;
    splits[i] = tyr_bf_rng_poisson(r, dt * c->split_scale * exp(sl) * hb);
    double rho = 1.0 / (1.0 + exp(-(double)p->del[i]));
    dels[i] = tyr_bf_rng_uniform(r) < rho * base_del;
    if (dels[i] || changed) splits[i] = 0;
  }
  /* the new sequence: survivors, each followed by its copies, within max_len */
  int64_t total = 0;
  for (int64_t i = 0; i < n; i++)
    if (!dels[i]) total++;
  for (int64_t i = 0; i < n; i++) {
    int64_t room = c->max_len - total;
    if (splits[i] > room) splits[i] = room > 0 ? room : 0;
    total += splits[i];
  }
  int rc = 0;
  tyr_bf_state nx = {0};
  if (state_reserve(&nx, total > c->max_len ? total : c->max_len)) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    tyr_bf_state_free(&nx);
  } else {
    int64_t o = 0;
    for (int64_t i = 0; i < n; i++) {
      if (dels[i]) continue;
      for (int64_t k = 0; k <= splits[i]; k++, o++) {
        nx.e[o] = st->e[i];
        nx.group[o] = st->group[i];
        nx.branchable[o] = st->branchable[i];
        nx.flowable[o] = st->flowable[i];
      }
    }
    nx.n = o;
    tyr_bf_state_free(st);
    *st = nx;
  }
  free(splits);
  free(dels);
  free(prob);
  return rc;
}
