/* PUCT search over AND/OR proof trees, and the sampling baseline
 * (tyr/models/proof_search.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/models/proof_search.h"

tyr_proof_search_config tyr_proof_search_defaults(void) {
  return (tyr_proof_search_config){
      .budget = 64, .samples = 8, .c_puct = 1.0, .discount = 0.99, .max_depth = 48};
}

enum { OPEN = 0, PROVED = 1, FAILED = -1 };
/* policy calls on a goal whose candidates were all rejected before it fails */
#define RETRIES 4

typedef struct app {
  tyr_sequent_step step;
  double prior;
  int n, n_kids, kids[2];
} app;

typedef struct node {
  tyr_sequent goal;
  int depth, status, n, first_app, n_apps, tries;
  bool expanded;
  double v_est, value;
} node;

typedef struct tree {
  node *nodes;
  app *apps;
  int n_nodes, cap_nodes, n_apps, cap_apps;
} tree;

static int add_node(tree *t, const tyr_sequent *g, int depth, double v) {
  if (t->n_nodes == t->cap_nodes) {
    int cap = t->cap_nodes ? 2 * t->cap_nodes : 64;
    node *n = realloc(t->nodes, sizeof *n * (size_t)cap);
    if (!n) return -1;
    t->nodes = n, t->cap_nodes = cap;
  }
  node *n = &t->nodes[t->n_nodes];
  memset(n, 0, sizeof *n);
  n->goal = *g;
  n->depth = depth;
  n->v_est = n->value = v;
  return t->n_nodes++;
}

static int add_app(tree *t) {
  if (t->n_apps == t->cap_apps) {
    int cap = t->cap_apps ? 2 * t->cap_apps : 64;
    app *a = realloc(t->apps, sizeof *a * (size_t)cap);
    if (!a) return -1;
    t->apps = a, t->cap_apps = cap;
  }
  memset(&t->apps[t->n_apps], 0, sizeof t->apps[0]);
  return t->n_apps++;
}

/* an app's value and status from its goals' */
static double app_value(const tree *t, const app *a, int *status) {
  double v = 1;
  *status = PROVED;
  for (int k = 0; k < a->n_kids; k++) {
    const node *c = &t->nodes[a->kids[k]];
    if (c->status == FAILED) {
      *status = FAILED;
      return 0;
    }
    if (c->status != PROVED) *status = OPEN;
    v *= c->value;
  }
  return v;
}

static void recompute(tree *t, int id, double discount) {
  node *n = &t->nodes[id];
  if (!n->expanded || n->status != OPEN) return;
  if (n->n_apps == 0) { /* every candidate was rejected: asked again on the next visit */
    if (n->tries >= RETRIES) n->status = FAILED, n->value = 0;
    return;
  }
  double best = 0;
  bool any_open = false;
  for (int i = 0; i < n->n_apps; i++) {
    int st;
    double v = app_value(t, &t->apps[n->first_app + i], &st);
    if (st == PROVED) {
      n->status = PROVED;
      n->value = 1;
      return;
    }
    if (st == OPEN) {
      any_open = true;
      best = fmax(best, v);
    }
  }
  if (!any_open) {
    n->status = FAILED;
    n->value = 0;
  } else {
    n->value = discount * best;
  }
}

static void report(const tyr_proof_search_config *c, const tyr_sequent *g, const char *step,
                   const char *why) {
  if (c->on_reject) c->on_reject(c->reject_ctx, g, step, why);
}

/* one policy call on node id: its applications and their goals */
static int expand(tree *t, int id, const tyr_proof_search_config *c, tyr_proof_policy_fn policy,
                  void *ctx, tyr_proof_candidate *cand, tyr_proof_result *out) {
  tyr_sequent goal = t->nodes[id].goal;
  int depth = t->nodes[id].depth;
  double v = 0.5;
  int k = policy(ctx, &goal, c->samples, cand, &v);
  out->calls++;
  if (k < 0) return -1;
  if (k > c->samples) k = c->samples;
  v = fmin(1, fmax(0, v));
  double mx = -INFINITY, z = 0;
  for (int i = 0; i < k; i++) mx = fmax(mx, cand[i].logp);
  int first = t->n_apps, n_apps = 0;
  for (int i = 0; i < k; i++) {
    bool dup = false;
    for (int j = 0; j < i && !dup; j++) dup = !strcmp(cand[i].text, cand[j].text);
    if (dup) continue;
    tyr_sequent_step st;
    tyr_sequent sub[2];
    char err[200];
    int goals = -1;
    if (tyr_sequent_step_parse(cand[i].text, &st, err, sizeof err))
      goals = tyr_sequent_apply(&goal, st, sub, err, sizeof err);
    if (goals < 0) {
      out->rejected++;
      report(c, &goal, cand[i].text, err);
      continue;
    }
    int a = add_app(t);
    if (a < 0) return -1;
    t->apps[a].step = st;
    t->apps[a].prior = exp(cand[i].logp - mx);
    z += t->apps[a].prior;
    t->apps[a].n_kids = goals;
    for (int g = 0; g < goals; g++) {
      int kid = add_node(t, &sub[g], depth + 1, v);
      if (kid < 0) return -1;
      if (depth + 1 > c->max_depth) t->nodes[kid].status = FAILED, t->nodes[kid].value = 0;
      t->apps[a].kids[g] = kid;
    }
    n_apps++;
  }
  for (int i = 0; i < n_apps; i++) t->apps[first + i].prior /= z;
  node *n = &t->nodes[id];
  n->expanded = true;
  n->tries++;
  n->v_est = v;
  n->first_app = first;
  n->n_apps = n_apps;
  return 0;
}

static int extract(const tree *t, int id, int depth, tyr_proof_result *r) {
  const node *n = &t->nodes[id];
  for (int i = 0; i < n->n_apps; i++) {
    const app *a = &t->apps[n->first_app + i];
    int st;
    app_value(t, a, &st);
    if (st != PROVED) continue;
    r->goals[r->n] = n->goal;
    r->steps[r->n] = a->step;
    r->depth[r->n] = depth;
    r->n++;
    for (int k = 0; k < a->n_kids; k++)
      if (extract(t, a->kids[k], depth + 1, r)) return -1;
    return 0;
  }
  return -1;
}

/* steps of the proof found below a proved goal (the one extract takes) */
static int proved_steps(const tree *t, int id) {
  const node *n = &t->nodes[id];
  if (n->status != PROVED) return 0;
  for (int i = 0; i < n->n_apps; i++) {
    const app *a = &t->apps[n->first_app + i];
    int st;
    app_value(t, a, &st);
    if (st != PROVED) continue;
    int s = 1;
    for (int k = 0; k < a->n_kids; k++) s += proved_steps(t, a->kids[k]);
    return s;
  }
  return 0;
}

/* every expanded goal with its outcome */
static int collect_labels(const tree *t, tyr_proof_result *r) {
  int n = 0;
  for (int i = 0; i < t->n_nodes; i++) n += t->nodes[i].expanded;
  r->label_goals = malloc(sizeof *r->label_goals * (size_t)(n > 0 ? n : 1));
  r->label_steps = malloc(sizeof *r->label_steps * (size_t)(n > 0 ? n : 1));
  if (!r->label_goals || !r->label_steps) return -1;
  for (int i = 0; i < t->n_nodes; i++) {
    if (!t->nodes[i].expanded) continue;
    r->label_goals[r->n_labels] = t->nodes[i].goal;
    r->label_steps[r->n_labels] = proved_steps(t, i);
    r->n_labels++;
  }
  return 0;
}

static int result_alloc(tyr_proof_result *r, int n) {
  r->goals = malloc(sizeof *r->goals * (size_t)(n > 0 ? n : 1));
  r->steps = malloc(sizeof *r->steps * (size_t)(n > 0 ? n : 1));
  r->depth = malloc(sizeof *r->depth * (size_t)(n > 0 ? n : 1));
  return r->goals && r->steps && r->depth ? 0 : -1;
}

int tyr_proof_search(const tyr_sequent *root, const tyr_proof_search_config *cfg,
                     tyr_proof_policy_fn policy, void *ctx, tyr_proof_result *out) {
  tyr_proof_search_config c = cfg ? *cfg : tyr_proof_search_defaults();
  if (c.samples < 1) c.samples = 1;
  memset(out, 0, sizeof *out);
  tree t = {0};
  tyr_proof_candidate *cand = calloc((size_t)c.samples, sizeof *cand);
  int *path = malloc(sizeof *path * (size_t)(c.max_depth + 2));
  int *path_app = malloc(sizeof *path_app * (size_t)(c.max_depth + 2));
  int rc = 0;
  if (!cand || !path || !path_app || add_node(&t, root, 0, 0.5) < 0) rc = -1;
  while (!rc && t.nodes[0].status == OPEN && out->calls < c.budget) {
    int len = 0, cur = 0;
    for (;;) {
      path[len] = cur;
      path_app[len] = -1;
      len++;
      node *n = &t.nodes[cur];
      if (!n->expanded || (n->n_apps == 0 && n->status == OPEN)) {
        rc = expand(&t, cur, &c, policy, ctx, cand, out);
        break;
      }
      if (n->status != OPEN || len > c.max_depth) break;
      int best = -1;
      double best_s = -INFINITY;
      for (int i = 0; i < n->n_apps; i++) {
        const app *a = &t.apps[n->first_app + i];
        int st;
        double q = app_value(&t, a, &st);
        if (st == FAILED) continue;
        double sc = q + c.c_puct * a->prior * sqrt((double)n->n + 1) / (1.0 + a->n);
        if (sc > best_s) best_s = sc, best = n->first_app + i;
      }
      if (best < 0) break;
      path_app[len - 1] = best;
      const app *a = &t.apps[best];
      int next = -1;
      double low = INFINITY;
      for (int k = 0; k < a->n_kids; k++) {
        const node *kid = &t.nodes[a->kids[k]];
        if (kid->status == OPEN && kid->value < low) low = kid->value, next = a->kids[k];
      }
      if (next < 0) break;
      cur = next;
    }
    for (int i = len - 1; i >= 0; i--) {
      recompute(&t, path[i], c.discount);
      t.nodes[path[i]].n++;
      if (path_app[i] >= 0) t.apps[path_app[i]].n++;
    }
  }
  if (!rc) {
    out->nodes = t.n_nodes;
    out->proved = t.nodes[0].status == PROVED;
    if (out->proved && (result_alloc(out, t.n_nodes) || extract(&t, 0, 0, out))) rc = -1;
    if (!rc && collect_labels(&t, out)) rc = -1;
  }
  free(t.nodes);
  free(t.apps);
  free(cand);
  free(path);
  free(path_app);
  if (rc) tyr_proof_result_free(out);
  return rc;
}

int tyr_proof_sample(const tyr_sequent *root, const tyr_proof_search_config *cfg,
                     tyr_proof_policy_fn policy, void *ctx, tyr_proof_result *out) {
  tyr_proof_search_config c = cfg ? *cfg : tyr_proof_search_defaults();
  memset(out, 0, sizeof *out);
  int cap = 64, sp;
  tyr_sequent *stack = malloc(sizeof *stack * (size_t)cap);
  int *sdepth = malloc(sizeof *sdepth * (size_t)cap);
  if (!stack || !sdepth || result_alloc(out, cap)) {
    free(stack), free(sdepth);
    tyr_proof_result_free(out);
    return -1;
  }
  while (out->calls < c.budget && !out->proved) {
    sp = 0;
    out->n = 0;
    stack[sp] = *root, sdepth[sp++] = 0;
    bool failed = false;
    while (sp > 0 && !failed) {
      if (out->calls >= c.budget) {
        failed = true;
        break;
      }
      tyr_sequent g = stack[--sp];
      int d = sdepth[sp];
      tyr_proof_candidate cand;
      double v;
      int k = policy(ctx, &g, 1, &cand, &v);
      out->calls++;
      if (k < 0) {
        free(stack), free(sdepth);
        tyr_proof_result_free(out);
        return -1;
      }
      tyr_sequent_step st;
      tyr_sequent sub[2];
      char err[200] = "no step proposed";
      int goals = -1;
      if (k > 0 && tyr_sequent_step_parse(cand.text, &st, err, sizeof err))
        goals = tyr_sequent_apply(&g, st, sub, err, sizeof err);
      if (goals < 0) {
        out->rejected++;
        report(&c, &g, k > 0 ? cand.text : "", err);
        failed = true;
        break;
      }
      if (d + 1 > c.max_depth && goals > 0) {
        failed = true;
        break;
      }
      if (out->n == cap || sp + 2 > cap) { /* grow the proof and the stack together */
        int ncap = 2 * cap;
        tyr_sequent *ns = realloc(stack, sizeof *ns * (size_t)ncap);
        if (ns) stack = ns;
        int *nd = realloc(sdepth, sizeof *nd * (size_t)ncap);
        if (nd) sdepth = nd;
        tyr_sequent *ng = realloc(out->goals, sizeof *ng * (size_t)ncap);
        if (ng) out->goals = ng;
        tyr_sequent_step *nst = realloc(out->steps, sizeof *nst * (size_t)ncap);
        if (nst) out->steps = nst;
        int *ndp = realloc(out->depth, sizeof *ndp * (size_t)ncap);
        if (ndp) out->depth = ndp;
        if (!ns || !nd || !ng || !nst || !ndp) {
          free(stack), free(sdepth);
          tyr_proof_result_free(out);
          return -1;
        }
        cap = ncap;
      }
      out->goals[out->n] = g;
      out->steps[out->n] = st;
      out->depth[out->n] = d;
      out->n++;
      for (int i = goals - 1; i >= 0; i--) stack[sp] = sub[i], sdepth[sp++] = d + 1;
    }
    if (!failed) out->proved = true;
  }
  if (!out->proved) out->n = 0;
  free(stack), free(sdepth);
  return 0;
}

void tyr_proof_result_free(tyr_proof_result *r) {
  free(r->goals);
  free(r->steps);
  free(r->depth);
  free(r->label_goals);
  free(r->label_steps);
  memset(r, 0, sizeof *r);
}

double tyr_proof_result_label(const tyr_proof_result *r, int i, double discount) {
  return r->label_steps[i] > 0 ? pow(discount, r->label_steps[i] - 1) : 0;
}

void tyr_proof_result_print(FILE *f, const tyr_proof_result *r) {
  char g[TYR_SEQUENT_TEXT_MAX], s[64];
  for (int i = 0; i < r->n; i++) {
    tyr_sequent_print(&r->goals[i], g, sizeof g);
    tyr_sequent_step_print(r->steps[i], s, sizeof s);
    fprintf(f, "%*s%s   [%s]\n", 2 * r->depth[i], "", g, s);
  }
}
