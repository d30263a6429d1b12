/* Bridges of Branching Flows (tyr/branching_flows.h): from each root's
 * start state down its tree to the segments alive at time t. */
#include <math.h>
#include <string.h>

#include "tyr/branching_flows.h"

void tyr_bf_start_state(const tyr_bf_config *c, tyr_bf_rng *r, tyr_bf_elem *x0) {
  memset(x0, 0, sizeof *x0);
  for (int d = 0; d < c->dim; d++) x0->x[d] = (float)(c->x0_std * tyr_bf_rng_normal(r));
  x0->tok = c->vocab; /* the mask (0 when there is no discrete part) */
}

void tyr_bf_bridge_elem(const tyr_bf_config *c, const tyr_bf_elem *xs, const tyr_bf_elem *anchor,
                        double s, double t, tyr_bf_rng *r, tyr_bf_elem *out) {
  tyr_bf_elem o = *xs;
  if (t >= 1.0 || s >= 1.0) {
    *out = *anchor;
    return;
  }
  double f = (t - s) / (1.0 - s);
  if (f < 0) f = 0;
  for (int d = 0; d < c->dim; d++) {
    double v = (double)xs->x[d] + f * ((double)anchor->x[d] - (double)xs->x[d]);
    if (c->bridge == TYR_BF_BRIDGE_BROWNIAN && c->sigma > 0 && t > s)
      v += c->sigma * sqrt((t - s) * (1.0 - t) / (1.0 - s)) * tyr_bf_rng_normal(r);
    o.x[d] = (float)v;
  }
  if (c->vocab > 0 && xs->tok != anchor->tok && t > s && tyr_bf_rng_uniform(r) < f)
    o.tok = anchor->tok;
  *out = o;
}

typedef struct walk {
  const tyr_bf_config *c;
  const tyr_bf_forest *f;
  double t;
  tyr_bf_rng *r;
  tyr_bf_segment *seg;
  int64_t n;
} walk;

static void emit(walk *w, const tyr_bf_node *nd, const tyr_bf_elem *xt, double last) {
  tyr_bf_segment *sg = &w->seg[w->n++];
  sg->xt = *xt;
  sg->anchor = nd->data;
  sg->descendants = nd->weight;
  sg->last_coal = last;
  sg->id = nd->id;
  sg->group = nd->group;
  sg->del = nd->del;
  sg->branchable = nd->flowable ? nd->branchable : 0;
  sg->flowable = nd->flowable;
}

/* the node k entered at time `now` in state xs */
static void walk_node(walk *w, int32_t k, const tyr_bf_elem *xs, double now) {
  const tyr_bf_node *nd = &w->f->nodes[k];
  if (!nd->flowable) {
    emit(w, nd, &nd->data, now);
    return;
  }
  bool leaf = nd->left < 0;
  if (leaf || nd->time > w->t) {
    if (nd->del) {
      double s0 = tyr_bf_dist_survival(&w->c->deletion_time, now);
      double s1 = tyr_bf_dist_survival(&w->c->deletion_time, w->t);
      double keep = s0 > 0 ? s1 / s0 : 0;
      if (!(tyr_bf_rng_uniform(w->r) < keep)) return;
    }
    tyr_bf_elem xt;
    tyr_bf_bridge_elem(w->c, xs, &nd->data, now, w->t, w->r, &xt);
    emit(w, nd, &xt, now);
    return;
  }
  tyr_bf_elem next;
  tyr_bf_bridge_elem(w->c, xs, &nd->data, now, nd->time, w->r, &next);
  walk_node(w, nd->left, &next, nd->time);
  walk_node(w, nd->right, &next, nd->time);
}

int64_t tyr_bf_bridge(const tyr_bf_config *c, const tyr_bf_forest *f, double t, tyr_bf_rng *r,
                      tyr_bf_segment *seg) {
  walk w = {c, f, t, r, seg, 0};
  for (int64_t k = 0; k < f->n_roots; k++) {
    tyr_bf_elem x0;
    tyr_bf_start_state(c, r, &x0);
    walk_node(&w, f->roots[k], &x0, 0.0);
  }
  return w.n;
}
