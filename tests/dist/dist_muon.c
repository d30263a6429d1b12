/* Distributed Muon with its AdamW part sharded over the ranks (DistAdam),
 * against one process running Muon and AdamW whole, over a few steps with
 * a changing rate factor and momentum (train_nanochat's schedules) and two
 * AdamW groups of their own rates.
 *
 * Default: every rank holds the same gradients (what tyr_ddp over every
 * parameter leaves), each rank orthogonalises whole matrices dealt by shape
 * and steps its shard of the AdamW moments; parameters, Muon's state and
 * the gathered AdamW state must be bitwise those of one process.
 * --reduce-adamw: each rank holds its own gradients; tyr_ddp averages the
 * Muon matrices' and tyr_muon_step reduce-scatters the AdamW ones
 * (reduce_adamw_grads); one process steps on the averages (computed here in
 * double): parameters within relative 1e-6.
 * Both: the AdamW state a rank holds is its shard, about 1/world of the
 * whole; a fresh optimizer given the gathered state (tyr_muon_scatter_adamw)
 * takes the last step exactly as the one that made it would.
 * Prints "dist_muon: ... PASS". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <tyr/autograd.h>
#include <tyr/dist.h>
#include <tyr/muon.h>
#include <tyr/ops_create.h>

#define STEPS 5

static void build(tyr_params *ps) {
  tyr_params_init(ps);
  const int64_t shapes[6][2] = {{8, 12}, {8, 12}, {8, 12}, {16, 8}, {16, 8}, {12, 8}};
  tyr_manual_seed(3);
  for (int i = 0; i < 6; i++)
    tyr_params_addf(ps, tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, shapes[i], 0, 0.2),
                    "blocks.%d.weight", i);
  tyr_params_add(ps, "blocks.0.bias",
                 tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){8}, 0, 0.2));
  tyr_params_add(ps, "wte.weight",
                 tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){10, 8}, 0, 0.2));
  tyr_params_add(ps, "lm_head.weight",
                 tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){25, 8}, 0, 0.2));
  for (int i = 0; i < ps->n; i++) /* AdamW group 1: the embedding and the head */
    ps->items[i].group = strstr(ps->items[i].name, "wte") || strstr(ps->items[i].name, "lm_head");
}

/* rank r's gradient of parameter i at step (r < 0: the same on every rank) */
static tyr_tensor *grad_of(const tyr_tensor *p, int i, int step, int r) {
  tyr_manual_seed((uint64_t)(1000 + 10 * step + i + 100000 * (r + 1)));
  return tyr_keep_e(tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, p->rank, p->shape, 0, 1));
}

static void set_grad(tyr_tensor *p, tyr_tensor *g) {
  tyr_zero_grad_e(p);
  p->grad = g;
}

/* the average of every rank's gradient, in double */
static tyr_tensor *mean_grad(const tyr_tensor *p, int i, int step, int N) {
  int64_t n = tyr_numel(p);
  double acc[512] = {0};
  for (int r = 0; r < N; r++) {
    tyr_tensor *g = grad_of(p, i, step, r);
    const float *pg = tyr_data_ptr(g);
    for (int64_t k = 0; k < n; k++) acc[k] += pg[k];
    tyr_tensor_free(g);
  }
  tyr_tensor *g = grad_of(p, i, step, 0);
  float *pg = tyr_data_ptr(g);
  for (int64_t k = 0; k < n; k++) pg[k] = (float)(acc[k] / N);
  return g;
}

/* ||a - b|| / ||b|| */
static double rel_diff(const tyr_tensor *a, const tyr_tensor *b) {
  const float *x = tyr_data_ptr(a), *y = tyr_data_ptr(b);
  double d = 0, n = 0;
  for (int64_t k = 0; k < tyr_numel(a); k++)
    d += ((double)x[k] - y[k]) * ((double)x[k] - y[k]), n += (double)y[k] * y[k];
  return sqrt(d / (n > 0 ? n : 1));
}

static bool same(const tyr_tensor *a, const tyr_tensor *b) {
  return !memcmp(tyr_data_ptr(a), tyr_data_ptr(b), (size_t)tyr_nbytes(a));
}

static void copy_tensor(tyr_tensor *dst, const tyr_tensor *src) {
  memcpy(tyr_data_ptr(dst), tyr_data_ptr(src), (size_t)tyr_nbytes(src));
}

/* mc, made over the same parameters as ma, given ma's state as a checkpoint
 * would: Muon's momentum (whole on every rank) copied, the AdamW part
 * gathered from ma's shards into mc's whole state and scattered */
static int restore(tyr_muon *mc, tyr_muon *ma) {
  for (int k = 0; k < ma->nmuon; k++) {
    copy_tensor(mc->buf[k], ma->buf[k]);
    if (ma->v[k]) copy_tensor(mc->v[k], ma->v[k]);
  }
  tyr_optim *from = tyr_muon_gather_adamw(ma), *into = tyr_muon_gather_adamw(mc);
  if (!from || !into) return 1;
  for (int i = 0; i < into->n; i++) {
    copy_tensor(into->m[i], from->m[i]);
    copy_tensor(into->v[i], from->v[i]);
  }
  into->step = from->step;
  int st = tyr_muon_scatter_adamw(mc, into);
  tyr_muon_release_adamw(mc, into);
  tyr_muon_release_adamw(ma, from);
  return st;
}

int main(int argc, char **argv) {
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  int R = tyr_dist_rank(pg), N = tyr_dist_world_size(pg);
  int64_t live = tyr_live_tensors();
  bool reduce = false;
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-2);
  cfg.weight_decay = 0.1;
  cfg.adamw.ngroups = 2;
  cfg.adamw.groups[0] = (tyr_param_group){1.0, 0.01};
  cfg.adamw.groups[1] = (tyr_param_group){3.0, 0};
  for (int k = 1; k < argc; k++) {
    if (!strcmp(argv[k], "--polar-express")) cfg.ortho = TYR_MUON_POLAR_EXPRESS;
    if (!strcmp(argv[k], "--normuon")) cfg.normuon = true;
    if (!strcmp(argv[k], "--reduce-adamw")) reduce = true;
  }
  cfg.reduce_adamw_grads = reduce;
  tyr_params a, b;
  build(&a);
  build(&b);
  tyr_muon ma, mb, mc;
  memset(&mc, 0, sizeof mc);
  if (tyr_muon_init(&ma, &a, &cfg, pg) || tyr_muon_init(&mb, &b, &cfg, NULL)) return 1;
  tyr_ddp *ddp = NULL;
  if (reduce && !(ddp = tyr_ddp_init(pg, &ma.matrices, NULL))) return 1;
  int bad = 0;
  if (N > 1 && !ma.adamw_zero) bad++, fprintf(stderr, "dist_muon: the AdamW part is whole\n");
  tyr_muon *m = &ma;
  for (int step = 0; step <= STEPS; step++) {
    if (step == STEPS) { /* the last step by a copy made from the state */
      if (tyr_muon_init(&mc, &a, &cfg, pg) || restore(&mc, &ma)) return 1;
      if (ddp) {
        tyr_ddp_free(ddp);
        if (!(ddp = tyr_ddp_init(pg, &mc.matrices, NULL))) return 1;
      }
      m = &mc;
    }
    for (int i = 0; i < a.n; i++) {
      tyr_tensor *pa = a.items[i].t, *pb = b.items[i].t;
      set_grad(pa, grad_of(pa, i, step, reduce ? R : -1));
      set_grad(pb, reduce ? mean_grad(pb, i, step, N) : grad_of(pb, i, step, -1));
    }
    if (ddp && tyr_ddp_finish(ddp)) return 1;
    /* the schedules: a falling rate factor, a rising momentum */
    double f = 1.0 - 0.15 * step;
    m->cfg.momentum = mb.cfg.momentum = 0.85 + 0.02 * step;
    if (tyr_muon_step(m, f) || tyr_muon_step(&mb, f)) return 1;
  }
  double worst = 0;
  for (int i = 0; i < a.n; i++) {
    const tyr_tensor *pa = a.items[i].t, *pb = b.items[i].t;
    double d = rel_diff(pa, pb);
    worst = fmax(worst, d);
    if (reduce ? !(d <= 1e-6) : !same(pa, pb))
      bad++, fprintf(stderr, "dist_muon: rank %d: '%s' differs from one process (%.3g)\n", R,
                     a.items[i].name, d);
  }
  if (!reduce) {
    for (int k = 0; k < m->nmuon; k++) /* state too: what a checkpoint holds */
      if (!same(m->buf[k], mb.buf[k]) || (m->v[k] && !same(m->v[k], mb.v[k])))
        bad++, fprintf(stderr, "dist_muon: rank %d: Muon state %d differs\n", R, k);
    tyr_optim *whole = tyr_muon_gather_adamw(m);
    if (!whole) return 1;
    for (int i = 0; i < whole->n; i++)
      if (!same(whole->m[i], mb.adamw.m[i]) || !same(whole->v[i], mb.adamw.v[i]))
        bad++, fprintf(stderr, "dist_muon: rank %d: AdamW state of '%s' differs\n", R,
                       m->rest.items[i].name);
    if (whole->step != mb.adamw.step)
      bad++, fprintf(stderr, "dist_muon: rank %d: AdamW step %lld, one process %lld\n", R,
                     (long long)whole->step, (long long)mb.adamw.step);
    tyr_muon_release_adamw(m, whole);
  }
  /* the AdamW state a rank holds: its shard */
  int64_t held = tyr_muon_adamw_state_bytes(m), whole = tyr_muon_adamw_state_bytes(&mb);
  int64_t rest = 0;
  for (int i = 0; i < m->rest.n; i++) rest += tyr_numel(m->rest.items[i].t);
  if (whole != 8 * rest || held > (whole + 8 * (N - 1)) / N + 8 || held * N < whole ||
      tyr_muon_state_bytes(m) - held != tyr_muon_state_bytes(&mb) - whole)
    bad++, fprintf(stderr,
                   "dist_muon: rank %d holds %lld bytes of AdamW state, %lld whole (%lld in all)\n",
                   R, (long long)held, (long long)whole, (long long)tyr_muon_state_bytes(m));
  int nmuon = ma.nmuon;
  tyr_ddp_free(ddp);
  tyr_muon_free(&mc);
  tyr_muon_free(&ma);
  tyr_muon_free(&mb);
  tyr_params_free(&a);
  tyr_params_free(&b);
  if (tyr_live_tensors() != live)
    bad++, fprintf(stderr, "dist_muon: rank %d: %lld tensors leaked\n", R,
                   (long long)(tyr_live_tensors() - live));
  bad = (int)tyr_dist_reduce_scalar(pg, bad, TYR_DIST_SUM);
  worst = tyr_dist_reduce_scalar(pg, worst, TYR_DIST_MAX);
  if (R == 0)
    printf("dist_muon: %d ranks, %s, %d Muon matrices, AdamW state per rank %lld of %lld bytes, "
           "largest relative difference %.3g, %d differing from one process: %s\n",
           N, reduce ? "AdamW gradients reduce-scattered" : "gradients averaged", nmuon,
           (long long)held, (long long)whole, worst, bad, bad ? "FAIL" : "PASS");
  tyr_dist_free(pg);
  return bad ? 1 : 0;
}
