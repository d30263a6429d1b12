/* Branching Flows' config, target checks, deletion padding and forests
 * (tyr/branching_flows.h): which adjacent elements coalesce, the merged
 * nodes' data, and the split times drawn top-down. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branching/internal.h"
#include "tyr/branching_flows.h"

tyr_bf_config tyr_bf_config_default(int dim, int vocab) {
  return (tyr_bf_config){.dim = dim,
                         .vocab = vocab,
                         .branch_time = tyr_bf_uniform(),
                         .deletion_time = tyr_bf_uniform(),
                         .policy = TYR_BF_POLICY_UNIFORM,
                         .alpha = 1.0,
                         .group_min = 1,
                         .coalescence_factor = 1.0,
                         .deletion_pad = 0.0,
                         .bridge = TYR_BF_BRIDGE_LINEAR,
                         .sigma = 0.1,
                         .x0_std = 1.0,
                         .max_len = 64,
                         .snap_prob = 0.0,
                         .max_resample = 100,
                         .split_scale = 1.0};
}

bool tyr_bf_policy_parse(const char *name, tyr_bf_policy *out) {
  if (!strcmp(name, "uniform"))
    *out = TYR_BF_POLICY_UNIFORM;
  else if (!strcmp(name, "block-min"))
    *out = TYR_BF_POLICY_BLOCK_MIN;
  else if (!strcmp(name, "balanced"))
    *out = TYR_BF_POLICY_BALANCED;
  else
    return false;
  return true;
}

bool tyr_bf_bridge_kind_parse(const char *name, tyr_bf_bridge_kind *out) {
  if (!strcmp(name, "linear"))
    *out = TYR_BF_BRIDGE_LINEAR;
  else if (!strcmp(name, "brownian"))
    *out = TYR_BF_BRIDGE_BROWNIAN;
  else
    return false;
  return true;
}

int tyr_bf_config_check_at(tyr_site s, const tyr_bf_config *c) {
  const char *op = "tyr_bf_config_check";
  if (c->dim < 0 || c->dim > TYR_BF_MAX_DIM)
    return tyr_raise(TYR_ERR_ARG, s, op, "dim %d must be in 0..%d", c->dim, TYR_BF_MAX_DIM);
  if (c->vocab < 0) return tyr_raise(TYR_ERR_ARG, s, op, "vocab %d must be >= 0", c->vocab);
  if (c->dim == 0 && c->vocab == 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "dim and vocab are both 0: elements carry no data");
  int st;
  if ((st = tyr_bf_dist_check_at(s, &c->branch_time, "branch_time"))) return st;
  if ((st = tyr_bf_dist_check_at(s, &c->deletion_time, "deletion_time"))) return st;
  if (c->policy != TYR_BF_POLICY_UNIFORM && c->policy != TYR_BF_POLICY_BLOCK_MIN &&
      c->policy != TYR_BF_POLICY_BALANCED)
    return tyr_raise(TYR_ERR_ARG, s, op, "unknown coalescence policy %d", (int)c->policy);
  if (!(c->alpha >= 0) || !isfinite(c->alpha))
    return tyr_raise(TYR_ERR_ARG, s, op, "alpha %g must be a finite number >= 0", c->alpha);
  if (c->group_min < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "group_min %lld must be >= 1", (long long)c->group_min);
  for (int g = 0; c->group_mins && g < c->n_group_mins; g++)
    if (c->group_mins[g] < 1)
      return tyr_raise(TYR_ERR_ARG, s, op, "group_mins[%d] = %lld must be >= 1", g,
                       (long long)c->group_mins[g]);
  if (!(c->coalescence_factor >= 0 && c->coalescence_factor <= 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "coalescence_factor %g must be in [0, 1]",
                     c->coalescence_factor);
  if (!(c->deletion_pad >= 0) || !isfinite(c->deletion_pad))
    return tyr_raise(TYR_ERR_ARG, s, op, "deletion_pad %g must be a finite number >= 0",
                     c->deletion_pad);
  if (c->bridge != TYR_BF_BRIDGE_LINEAR && c->bridge != TYR_BF_BRIDGE_BROWNIAN)
    return tyr_raise(TYR_ERR_ARG, s, op, "unknown bridge kind %d", (int)c->bridge);
  if (!(c->sigma >= 0) || !isfinite(c->sigma) || !(c->x0_std >= 0) || !isfinite(c->x0_std))
    return tyr_raise(TYR_ERR_ARG, s, op, "sigma %g and x0_std %g must be finite numbers >= 0",
                     c->sigma, c->x0_std);
  if (c->max_len < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "max_len %lld must be >= 1", (long long)c->max_len);
  if (!(c->snap_prob >= 0 && c->snap_prob <= 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "snap_prob %g must be in [0, 1]", c->snap_prob);
  if (c->max_resample < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "max_resample %d must be >= 1", c->max_resample);
  if (!(c->split_scale >= 0) || !isfinite(c->split_scale))
    return tyr_raise(TYR_ERR_ARG, s, op, "split_scale %g must be a finite number >= 0",
                     c->split_scale);
  return 0;
}

#define GROUP(x, i) ((x)->group ? (x)->group[i] : 0)
#define BRANCHABLE(x, i) ((x)->branchable ? (x)->branchable[i] != 0 : true)
#define FLOWABLE(x, i) ((x)->flowable ? (x)->flowable[i] != 0 : true)
#define DELETED(x, i) ((x)->deleted ? (x)->deleted[i] != 0 : false)

static int64_t group_min(const tyr_bf_config *c, int32_t g) {
  return c->group_mins && g >= 0 && g < c->n_group_mins ? c->group_mins[g] : c->group_min;
}

int tyr_bf_target_check_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1) {
  const char *op = "tyr_bf_target_check";
  int st = tyr_bf_config_check_at(s, c);
  if (st) return st;
  if (!x1 || x1->n < 0 || (x1->n > 0 && !x1->elems))
    return tyr_raise(TYR_ERR_ARG, s, op, "the target has no elements array");
  if (x1->n > c->max_len)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "the target has %lld elements, more than max_len %lld (max_len must be at "
                     "least the target's length)",
                     (long long)x1->n, (long long)c->max_len);
  int32_t max_group = -1;
  for (int64_t i = 0; i < x1->n; i++) {
    const tyr_bf_elem *e = &x1->elems[i];
    int32_t g = GROUP(x1, i);
    if (g < 0)
      return tyr_raise(TYR_ERR_ARG, s, op, "element %lld: group %d must be >= 0", (long long)i, g);
    if (c->group_mins && g >= c->n_group_mins)
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "element %lld: group %d has no entry in group_mins (%d groups)",
                       (long long)i, g, c->n_group_mins);
    if (g > max_group) max_group = g;
    if (DELETED(x1, i) && !FLOWABLE(x1, i))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "element %lld: to be deleted but not flowable (a to-be-deleted element "
                       "must be flowable)",
                       (long long)i);
    if (DELETED(x1, i) && !BRANCHABLE(x1, i))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "element %lld: to be deleted but not branchable (a to-be-deleted element "
                       "must be branchable)",
                       (long long)i);
    for (int d = 0; d < c->dim; d++)
      if (!isfinite(e->x[d]))
        return tyr_raise(TYR_ERR_ARG, s, op, "element %lld: x[%d] is %g (values must be finite)",
                         (long long)i, d, (double)e->x[d]);
    if (c->vocab > 0 && (e->tok < 0 || e->tok >= c->vocab))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "element %lld: token %d is outside 0..%d (the vocabulary; %d is the mask)",
                       (long long)i, e->tok, c->vocab - 1, c->vocab);
  }
  if (max_group < 0) return 0;
  int64_t *count = calloc((size_t)max_group + 1, sizeof *count);
  if (!count) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  for (int64_t i = 0; i < x1->n; i++)
    if (BRANCHABLE(x1, i)) count[GROUP(x1, i)]++;
  for (int32_t g = 0; g <= max_group; g++) {
    int64_t m = group_min(c, g);
    if (count[g] > 0 && count[g] < m) {
      st = tyr_raise(TYR_ERR_ARG, s, op,
                     "group %d has %lld branchable elements, fewer than its minimum %lld (a group "
                     "minimum must not exceed the group's length)",
                     g, (long long)count[g], (long long)m);
      break;
    }
  }
  free(count);
  return st;
}

/* ---- sequences and deletion padding ------------------------------------------ */
tyr_bf_target tyr_bf_seq_target(const tyr_bf_seq *q) {
  return (tyr_bf_target){q->n, q->elems, q->group, q->branchable, q->flowable, q->deleted};
}

void tyr_bf_seq_free(tyr_bf_seq *q) {
  free(q->elems);
  free(q->group);
  free(q->branchable);
  free(q->flowable);
  free(q->deleted);
  memset(q, 0, sizeof *q);
}

static int seq_alloc(tyr_bf_seq *q, int64_t n) {
  size_t m = (size_t)(n > 0 ? n : 1);
  q->n = n;
  q->elems = calloc(m, sizeof *q->elems);
  q->group = calloc(m, sizeof *q->group);
  q->branchable = calloc(m, 1);
  q->flowable = calloc(m, 1);
  q->deleted = calloc(m, 1);
  if (!q->elems || !q->group || !q->branchable || !q->flowable || !q->deleted) {
    tyr_bf_seq_free(q);
    return -1;
  }
  return 0;
}

int tyr_bf_pad_deletions_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1,
                            tyr_bf_rng *r, tyr_bf_seq *out) {
  memset(out, 0, sizeof *out);
  int st = tyr_bf_target_check_at(s, c, x1);
  if (st) return st;
  if (tyr__bf_pad(c, x1, r, out))
    return tyr_raise(TYR_ERR_MEMORY, s, "tyr_bf_pad_deletions", "out of host memory");
  return 0;
}

int tyr__bf_pad(const tyr_bf_config *c, const tyr_bf_target *x1, tyr_bf_rng *r, tyr_bf_seq *out) {
  memset(out, 0, sizeof *out);
  int st = 0;
  const int64_t n = x1->n;
  int32_t max_group = -1;
  for (int64_t i = 0; i < n; i++)
    if (GROUP(x1, i) > max_group) max_group = GROUP(x1, i);
  /* per element: copies before and after it (and whether each is the deleted one) */
  int64_t *nb = calloc((size_t)n + 1, sizeof *nb), *na = calloc((size_t)n + 1, sizeof *na);
  uint8_t *orig_del = calloc((size_t)n + 1, 1);
  /* the deletion flags of the copies, in event order per element and side */
  int64_t cap = 16, nev = 0;
  int64_t *ev_elem = malloc((size_t)cap * sizeof *ev_elem);
  uint8_t *ev_after = malloc((size_t)cap), *ev_del = malloc((size_t)cap);
  int64_t *elig = malloc(((size_t)n + 1) * sizeof *elig);
  if (!nb || !na || !orig_del || !ev_elem || !ev_after || !ev_del || !elig) {
    st = -1;
    goto done;
  }
  for (int32_t g = 0; c->deletion_pad > 0 && g <= max_group; g++) {
    int64_t ng = 0, ne = 0;
    for (int64_t i = 0; i < n; i++) {
      if (GROUP(x1, i) != g) continue;
      ng++;
      if (FLOWABLE(x1, i) && BRANCHABLE(x1, i)) elig[ne++] = i;
    }
    if (ng == 0 || ne == 0) continue;
    int64_t mg = group_min(c, g);
    double mean = c->deletion_pad * (double)(ng > mg ? ng : mg) - (double)ng;
    int64_t k = tyr_bf_rng_poisson(r, mean);
    for (int64_t e = 0; e < k; e++) {
      int64_t i = elig[tyr_bf_rng_below(r, ne)];
      bool after = tyr_bf_rng_uniform(r) >= 0.5;
      bool take_orig = tyr_bf_rng_uniform(r) < 0.5 && !orig_del[i] && !DELETED(x1, i);
      if (take_orig) orig_del[i] = 1;
      if (nev == cap) {
        cap *= 2;
        int64_t *a = realloc(ev_elem, (size_t)cap * sizeof *a);
        if (a) ev_elem = a;
        uint8_t *b = realloc(ev_after, (size_t)cap);
        if (b) ev_after = b;
        uint8_t *d = realloc(ev_del, (size_t)cap);
        if (d) ev_del = d;
        if (!a || !b || !d) {
          st = -1;
          goto done;
        }
      }
      ev_elem[nev] = i;
      ev_after[nev] = after;
      ev_del[nev] = !take_orig;
      nev++;
      if (after)
        na[i]++;
      else
        nb[i]++;
    }
  }
  if (seq_alloc(out, n + nev)) {
    st = -1;
    goto done;
  }
  int64_t o = 0;
  for (int64_t i = 0; i < n; i++) {
    for (int side = 0; side < 2; side++) {
      /* copies before (side 0), then the original, then copies after (side 1) */
      if (side == 1) {
        out->elems[o] = x1->elems[i];
        out->group[o] = GROUP(x1, i);
        out->branchable[o] = BRANCHABLE(x1, i);
        out->flowable[o] = FLOWABLE(x1, i);
        out->deleted[o] = DELETED(x1, i) || orig_del[i];
        o++;
      }
      if ((side == 0 ? nb[i] : na[i]) == 0) continue;
      for (int64_t e = 0; e < nev; e++) {
        if (ev_elem[e] != i || ev_after[e] != (uint8_t)side) continue;
        out->elems[o] = x1->elems[i];
        out->group[o] = GROUP(x1, i);
        out->branchable[o] = 1;
        out->flowable[o] = 1;
        out->deleted[o] = ev_del[e];
        o++;
      }
    }
  }
done:
  free(nb);
  free(na);
  free(orig_del);
  free(ev_elem);
  free(ev_after);
  free(ev_del);
  free(elig);
  return st;
}

/* ---- forests ------------------------------------------------------------------ */
void tyr_bf_forest_free(tyr_bf_forest *f) {
  free(f->nodes);
  free(f->roots);
  free(f->split_times);
  memset(f, 0, sizeof *f);
}

int64_t tyr_bf_max_merges(const tyr_bf_target *x1) {
  int64_t m = 0;
  for (int64_t i = 0; i + 1 < x1->n; i++)
    m += BRANCHABLE(x1, i) && BRANCHABLE(x1, i + 1) && GROUP(x1, i) == GROUP(x1, i + 1);
  return m;
}

double tyr_bf_split_time(const tyr_bf_dist *d, int64_t W, double t0, tyr_bf_rng *r) {
  double m = (double)(W - 1), S0 = tyr_bf_dist_survival(d, t0);
  double e = tyr_bf_rng_exponential(r);
  double t = tyr_bf_dist_quantile(d, 1.0 - S0 * exp(-e / m));
  return t < t0 ? t0 : t > 1 ? 1 : t;
}

/* the pairs (cur[i], cur[i + 1]) the policy allows now, with their weights */
static int64_t eligible_pairs(const tyr_bf_config *c, const tyr_bf_node *nodes, const int32_t *cur,
                              int64_t n, const int64_t *gsize, int64_t *pairs, double *w) {
  int64_t np = 0, block_start = 0;
  for (int64_t i = 0; i + 1 < n; i++) {
    const tyr_bf_node *a = &nodes[cur[i]], *b = &nodes[cur[i + 1]];
    bool adj = a->branchable && b->branchable && a->group == b->group;
    if (!adj) {
      block_start = i + 1;
      continue;
    }
    int64_t m = group_min(c, a->group);
    bool ok;
    if (c->policy == TYR_BF_POLICY_BLOCK_MIN) {
      int64_t j = i + 1;
      while (j + 1 < n && nodes[cur[j + 1]].branchable && nodes[cur[j + 1]].group == a->group) j++;
      ok = j - block_start + 1 > m; /* this contiguous branchable block's length */
    } else {
      ok = gsize[a->group] > m;
    }
    if (!ok) continue;
    pairs[np] = i;
    w[np] =
        c->policy == TYR_BF_POLICY_BALANCED ? pow((double)(a->weight + b->weight), -c->alpha) : 1.0;
    np++;
  }
  return np;
}

static void merge_data(const tyr_bf_config *c, const tyr_bf_node *a, const tyr_bf_node *b,
                       tyr_bf_rng *r, tyr_bf_elem *out) {
  memset(out, 0, sizeof *out);
  double wa = (double)a->weight, wb = (double)b->weight;
  for (int d = 0; d < c->dim; d++)
    out->x[d] = (float)((wa * a->data.x[d] + wb * b->data.x[d]) / (wa + wb));
  out->tok = a->data.tok;
  if (c->vocab > 0) out->tok = tyr_bf_rng_uniform(r) * (wa + wb) < wa ? a->data.tok : b->data.tok;
}

static void split_times(const tyr_bf_config *c, tyr_bf_forest *f, int32_t k, double t0,
                        tyr_bf_rng *r) {
  tyr_bf_node *nd = &f->nodes[k];
  if (nd->weight <= 1) return;
  nd->time = tyr_bf_split_time(&c->branch_time, nd->weight, t0, r);
  f->split_times[f->n_splits++] = nd->time;
  split_times(c, f, nd->left, nd->time, r);
  split_times(c, f, nd->right, nd->time, r);
}

int tyr_bf_forest_sample_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1,
                            tyr_bf_rng *r, tyr_bf_forest *out) {
  memset(out, 0, sizeof *out);
  int st = tyr_bf_target_check_at(s, c, x1);
  if (st) return st;
  if (tyr__bf_forest(c, x1, r, out))
    return tyr_raise(TYR_ERR_MEMORY, s, "tyr_bf_forest_sample", "out of host memory");
  return 0;
}

int tyr__bf_forest(const tyr_bf_config *c, const tyr_bf_target *x1, tyr_bf_rng *r,
                   tyr_bf_forest *out) {
  memset(out, 0, sizeof *out);
  int st = 0;
  const int64_t n = x1->n;
  size_t m = (size_t)(n > 0 ? n : 1);
  int32_t max_group = 0;
  for (int64_t i = 0; i < n; i++)
    if (GROUP(x1, i) > max_group) max_group = GROUP(x1, i);
  out->nodes = calloc(2 * m, sizeof *out->nodes);
  out->roots = calloc(m, sizeof *out->roots);
  out->split_times = calloc(m, sizeof *out->split_times);
  int64_t *gsize = calloc((size_t)max_group + 1, sizeof *gsize), *pairs = calloc(m, sizeof *pairs);
  double *w = calloc(m, sizeof *w);
  if (!out->nodes || !out->roots || !out->split_times || !gsize || !pairs || !w) {
    st = -1;
    tyr_bf_forest_free(out);
    goto done;
  }
  out->n_leaves = n;
  for (int64_t i = 0; i < n; i++) {
    tyr_bf_node *nd = &out->nodes[i];
    nd->data = x1->elems[i];
    if (c->vocab == 0) nd->data.tok = 0;
    nd->left = nd->right = -1;
    nd->weight = 1;
    nd->id = i + 1;
    nd->group = GROUP(x1, i);
    nd->branchable = BRANCHABLE(x1, i);
    nd->flowable = FLOWABLE(x1, i);
    nd->del = DELETED(x1, i);
    nd->time = 1.0;
    out->roots[i] = (int32_t)i;
    if (nd->branchable) gsize[nd->group]++;
  }
  out->n_nodes = n;
  out->n_roots = n;
  out->max_merges = tyr_bf_max_merges(x1);
  int64_t want = tyr_bf_rng_binomial(r, out->max_merges, c->coalescence_factor);
  for (int64_t k = 0; k < want; k++) {
    int64_t np = eligible_pairs(c, out->nodes, out->roots, out->n_roots, gsize, pairs, w);
    if (np == 0) break;
    int64_t pick = 0;
    if (c->policy == TYR_BF_POLICY_BALANCED) {
      double total = 0;
      for (int64_t j = 0; j < np; j++) total += w[j];
      double cut = tyr_bf_rng_uniform(r) * total, run = 0;
      pick = np - 1;
      for (int64_t j = 0; j < np; j++) {
        run += w[j];
        if (cut < run) {
          pick = j;
          break;
        }
      }
    } else {
      pick = tyr_bf_rng_below(r, np);
    }
    int64_t i = pairs[pick];
    const tyr_bf_node *a = &out->nodes[out->roots[i]], *b = &out->nodes[out->roots[i + 1]];
    tyr_bf_node *nd = &out->nodes[out->n_nodes];
    merge_data(c, a, b, r, &nd->data);
    nd->left = out->roots[i];
    nd->right = out->roots[i + 1];
    nd->weight = a->weight + b->weight;
    nd->id = 0;
    nd->group = a->group;
    nd->branchable = nd->flowable = 1;
    nd->del = 0;
    nd->time = 0;
    gsize[nd->group]--;
    out->roots[i] = (int32_t)out->n_nodes++;
    memmove(out->roots + i + 1, out->roots + i + 2,
            (size_t)(out->n_roots - i - 2) * sizeof *out->roots);
    out->n_roots--;
    out->merges++;
  }
  for (int64_t k = 0; k < out->n_roots; k++) split_times(c, out, out->roots[k], 0.0, r);
done:
  free(gsize);
  free(pairs);
  free(w);
  return st;
}
