/* CUDA graphs: a training step captured once and replayed must train the
 * way eager steps do; what cannot run during a capture is refused with a
 * clear error; a graph's memory goes back to the allocator when it is
 * freed.  Also the two pieces a captured step needs, which work on every
 * device: the optimizer's capturable mode and device-side gradient
 * clipping (checked against the ordinary paths on the CPU, and on the GPU
 * when there is one).
 *
 * Without a GPU (or in a build without the CUDA backend) it prints
 * "no CUDA GPU: skipped"; the GPU tests are skipped and the CPU ones and
 * the no-GPU error checks run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/cuda.h"
#include "tyr/tyr.h"

#define S TYR_SITE
#define CPU TYR_DEVICE_CPU
#define GPU TYR_DEVICE_CUDA(0)
#define CAPTURE_MSG "cannot run while a CUDA graph is being captured"

static bool g_gpu;

#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    if (!g_gpu) skip();                                                                            \
  } while (0)

/* ---- helpers -------------------------------------------------------------------- */
/* Largest |a - b| / (atol + rtol |b|) over two tensors of one shape (any
 * devices, read as f64); > 1 means they differ beyond the tolerance. */
static double worst_ratio(const tyr_tensor *a, const tyr_tensor *b, double atol, double rtol,
                          double *wa, double *wb) {
  int64_t n = tyr_numel(a);
  assert_int_equal(n, tyr_numel(b));
  double *ha = malloc(sizeof(double) * (size_t)(n ? n : 1));
  double *hb = malloc(sizeof(double) * (size_t)(n ? n : 1));
  assert_non_null(ha);
  assert_non_null(hb);
  {
    TYR_SCOPE;
    bool prev = tyr_set_grad_enabled(false);
    tyr_tensor *ca = tyr_to_dtype_at(S, tyr_to_device_at(S, (tyr_tensor *)a, CPU), TYR_F64);
    tyr_tensor *cb = tyr_to_dtype_at(S, tyr_to_device_at(S, (tyr_tensor *)b, CPU), TYR_F64);
    tyr_set_grad_enabled(prev);
    assert_int_equal(tyr_to_host_at(S, ca, ha, sizeof(double) * (size_t)n), 0);
    assert_int_equal(tyr_to_host_at(S, cb, hb, sizeof(double) * (size_t)n), 0);
  }
  double worst = 0;
  *wa = *wb = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs(ha[i] - hb[i]);
    double r = d == 0 ? 0 : d / (atol + rtol * fabs(hb[i]));
    if (!(r <= worst)) { /* NaN counts as worst */
      worst = isnan(r) ? INFINITY : r;
      *wa = ha[i];
      *wb = hb[i];
    }
  }
  free(ha);
  free(hb);
  return worst;
}

static void expect_params_close(const char *what, tyr_params *a, tyr_params *b, double atol,
                                double rtol) {
  assert_int_equal(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    double va, vb;
    double r = worst_ratio(a->items[i].t, b->items[i].t, atol, rtol, &va, &vb);
    if (r > 1)
      fail_msg("%s: parameter %s differs: %.9g vs %.9g (%.3g x the tolerance)", what,
               a->items[i].name, va, vb, r);
  }
}

/* A small parameter set with gradients: w [3, 5] (group 0), b [5] (group 1). */
static void toy_params(tyr_params *ps, tyr_device dev, uint64_t seed) {
  tyr_params_init(ps);
  tyr_manual_seed(seed);
  tyr_params_add_at(S, ps, "w", tyr_randn_at(S, TYR_F32, dev, 2, (int64_t[]){3, 5}, 0, 1));
  tyr_params_add_at(S, ps, "b", tyr_randn_at(S, TYR_F32, dev, 1, (int64_t[]){5}, 0, 1));
  tyr_params_group_by_rank(ps);
}

/* loss = sum((x @ w + b)^2 * k) for a fixed x: gradients that change as
 * the parameters move */
static void toy_grads(tyr_params *ps, double k) {
  TYR_SCOPE;
  tyr_tensor *w = ps->items[0].t, *b = ps->items[1].t;
  tyr_tensor *x = tyr_arange_at(S, TYR_F32, w->device, -3, 3, 0.5); /* 12 */
  x = tyr_reshape_at(S, x, 2, (int64_t[]){4, 3});
  tyr_tensor *y = tyr_add_at(S, tyr_matmul_at(S, x, w), tyr_expand_at(S, b, 2, (int64_t[]){4, 5}));
  tyr_tensor *loss = tyr_sum_at(S, tyr_mul_scalar_at(S, tyr_square_at(S, y), k));
  if (!loss) fail_msg("toy loss: %s", tyr_test_error_message());
  assert_int_equal(tyr_backward_e(loss), 0);
}

static tyr_optim_config toy_adamw(void) {
  tyr_optim_config oc = tyr_adamw_config(0.05);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){0.5, 0.0};
  return oc;
}

/* ---- no GPU ----------------------------------------------------------------------- */
static void test_without_gpu(void **state) {
  (void)state;
  if (g_gpu) return;
  EXPECT_TYR_ERROR(tyr_cuda_graph_begin(0), "tyr_cuda_graph_begin");
  EXPECT_TYR_ERROR(tyr_cuda_graph_end(NULL), "tyr_cuda_graph_end");
  EXPECT_TYR_ERROR(tyr_cuda_graph_launch(NULL), "tyr_cuda_graph_launch");
  tyr_cuda_graph_free(NULL);
}

/* ---- capturable AdamW and device clipping against the ordinary paths -------------- */
static void check_capturable_optim(tyr_device dev) {
  tyr_params a, b;
  toy_params(&a, dev, 7);
  toy_params(&b, dev, 7);
  tyr_optim oa, ob;
  assert_int_equal(tyr_optim_init(&oa, &a, toy_adamw()), 0);
  assert_int_equal(tyr_optim_init(&ob, &b, toy_adamw()), 0);
  EXPECT_TYR_ERROR(tyr_optim_prepare_step(&ob, 0.01), "not in capturable mode");
  assert_int_equal(tyr_optim_set_capturable(&ob, true), 0);
  const double lrs[] = {0.05, 0.02, -1, 0.01, 0.03};
  for (int k = 0; k < 5; k++) {
    toy_grads(&a, 0.1 * (k + 1));
    toy_grads(&b, 0.1 * (k + 1));
    assert_int_equal(tyr_optim_step(&oa, lrs[k]), 0);
    assert_int_equal(tyr_optim_step(&ob, lrs[k]), 0); /* prepares itself outside a capture */
    tyr_optim_zero_grad(&oa);
    tyr_optim_zero_grad(&ob);
    assert_int_equal(oa.step, ob.step);
  }
  expect_params_close("capturable AdamW", &b, &a, 0, 0); /* bit for bit */
  tyr_optim_free(&oa);
  tyr_optim_free(&ob);
  tyr_params_free(&a);
  tyr_params_free(&b);

  /* SGD has no capturable mode */
  tyr_params c;
  toy_params(&c, dev, 1);
  tyr_optim oc;
  tyr_optim_config sgd = tyr_sgd_config(0.1, 0.9);
  sgd.ngroups = 2;
  sgd.groups[0] = sgd.groups[1] = (tyr_param_group){1.0, 0.0};
  assert_int_equal(tyr_optim_init(&oc, &c, sgd), 0);
  EXPECT_TYR_ERROR(tyr_optim_set_capturable(&oc, true), "AdamW only");
  tyr_optim_free(&oc);
  tyr_params_free(&c);
}

static void check_clip_dev(tyr_device dev) {
  const double max_norms[] = {0.5, 1e9, 0}; /* clipping, no clipping, off */
  for (int k = 0; k < 3; k++) {
    tyr_params a, b;
    toy_params(&a, dev, 3);
    toy_params(&b, dev, 3);
    toy_grads(&a, 1.0);
    toy_grads(&b, 1.0);
    double na = tyr_params_clip_grad_norm(&a, max_norms[k]);
    tyr_tensor *nb = tyr_params_clip_grad_norm_dev(&b, max_norms[k]);
    assert_non_null(nb);
    assert_true(tyr_device_eq(nb->device, dev));
    assert_int_equal(nb->dtype, TYR_F64);
    double vb = tyr_item_e(nb);
    if (na != vb) fail_msg("max_norm %g: norm %.17g on the host path, %.17g", max_norms[k], na, vb);
    for (int i = 0; i < a.n; i++) {
      double wa, wb;
      double r = worst_ratio(b.items[i].t->grad, a.items[i].t->grad, 0, 0, &wa, &wb);
      if (r > 1)
        fail_msg("max_norm %g: clipped gradient of %s: %.9g vs %.9g", max_norms[k], a.items[i].name,
                 wb, wa);
    }
    tyr_tensor_free(nb);
    tyr_params_free(&a);
    tyr_params_free(&b);
  }
  /* no gradients: the norm is 0 */
  tyr_params e;
  toy_params(&e, dev, 3);
  tyr_tensor *n0 = tyr_params_clip_grad_norm_dev(&e, 1.0);
  assert_non_null(n0);
  assert_true(tyr_item_e(n0) == 0.0);
  tyr_tensor_free(n0);
  tyr_params_free(&e);
}

static void test_capturable_optim_cpu(void **state) {
  (void)state;
  check_capturable_optim(CPU);
}
static void test_clip_dev_cpu(void **state) {
  (void)state;
  check_clip_dev(CPU);
}
static void test_capturable_optim_gpu(void **state) {
  (void)state;
  REQUIRE_GPU();
  check_capturable_optim(GPU);
}
static void test_clip_dev_gpu(void **state) {
  (void)state;
  REQUIRE_GPU();
  check_clip_dev(GPU);
}

/* ---- a simple graph: y = 2x + 1 over an input refreshed before each replay -------- */
static void test_replay_simple(void **state) {
  (void)state;
  REQUIRE_GPU();
  enum { N = 1000 };
  float host[N], out[N];
  tyr_tensor *x = tyr_keep_e(tyr_zeros_at(S, TYR_F32, GPU, 1, (int64_t[]){N}));
  assert_non_null(x);
  tyr_cuda_graph *g = tyr_cuda_graph_begin(0);
  assert_non_null(g);
  tyr_tensor *y;
  {
    TYR_SCOPE;
    y = tyr_keep_e(tyr_add_scalar_at(S, tyr_mul_scalar_at(S, x, 2.0), 1.0));
  }
  assert_non_null(y);
  assert_int_equal(tyr_cuda_graph_end(g), 0);
  for (int rep = 0; rep < 3; rep++) {
    for (int i = 0; i < N; i++) host[i] = (float)(i * (rep + 1)) * 0.25f - 7;
    tyr_tensor *c = tyr_from_host_at(S, host, TYR_F32, CPU, 1, (int64_t[]){N});
    assert_int_equal(tyr_copy_at(S, x, c), 0);
    tyr_tensor_free(c);
    assert_int_equal(tyr_cuda_graph_launch(g), 0);
    assert_int_equal(tyr_to_host_at(S, y, out, sizeof out), 0);
    for (int i = 0; i < N; i++)
      if (out[i] != host[i] * 2.0f + 1.0f)
        fail_msg("replay %d: y[%d] = %g, expected %g", rep, i, out[i], host[i] * 2.0f + 1.0f);
  }
  assert_int_equal(tyr_cuda_synchronize(), 0);
  tyr_tensor_free(y);
  tyr_tensor_free(x);
  tyr_cuda_graph_free(g);
}

/* ---- the graph's pool: a freed block split for smaller requests ------------------------ */
/* During a capture a block freed by one tensor serves two smaller ones (the
   pool splits it: src/cuda/graph_pool.h, whose logic tests/unit/test_graph_pool.c
   checks on any machine); a block still held when its graph is freed stays
   graph memory until its last tensor goes, then returns to the cache whole. */
static size_t chunk_bytes(size_t nbytes) { /* a request rounded to the pool's 512 bytes */
  return (nbytes + 511) / 512 * 512;
}

static void check_totals(const tyr_cuda_mem_stats *m) {
  if (m->reserved != m->allocated + m->cached + m->graph_idle)
    fail_msg("reserved %zu != allocated %zu + cached %zu + graph idle %zu", m->reserved,
             m->allocated, m->cached, m->graph_idle);
}

static void test_graph_pool_split(void **state) {
  (void)state;
  REQUIRE_GPU();
  enum { NA = 3000000, NB = 2600000, NC = 500000 }; /* floats */
  const size_t RA = 12582912;                       /* a's class size: 12 MiB */
  const size_t CB = chunk_bytes(4 * NB), CC = chunk_bytes(4 * NC);
  tyr_cuda_mem_stats m0, m1, m2, m3, m4, m5;
  tyr_cuda_empty_cache(); /* no cached block of a's class */
  assert_int_equal(tyr_cuda_memory_stats(0, &m0), 0);
  tyr_cuda_graph *g = tyr_cuda_graph_begin(0);
  assert_non_null(g);
  tyr_tensor *a = tyr_keep_e(tyr_zeros_at(S, TYR_F32, GPU, 1, (int64_t[]){NA}));
  assert_non_null(a);
  assert_int_equal(tyr_cuda_memory_stats(0, &m1), 0);
  assert_int_equal(m1.graph_reserved - m0.graph_reserved, RA);
  assert_int_equal(m1.allocated - m0.allocated, chunk_bytes(4 * NA));
  tyr_tensor_free(a);
  tyr_tensor *b = tyr_keep_e(tyr_full_at(S, TYR_F32, GPU, 1, (int64_t[]){NB}, 2.0));
  tyr_tensor *c = tyr_keep_e(tyr_full_at(S, TYR_F32, GPU, 1, (int64_t[]){NC}, 3.0));
  assert_non_null(b);
  assert_non_null(c);
  assert_int_equal(tyr_cuda_memory_stats(0, &m2), 0);
  if (m2.graph_reserved != m1.graph_reserved || m2.allocated != m0.allocated + CB + CC ||
      m2.graph_idle != m0.graph_idle + RA - CB - CC)
    fail_msg("requests of %zu and %zu bytes after a %zu-byte block was freed in the capture: "
             "graph reserved %zu -> %zu, idle %zu, allocated %zu (expected the freed block to "
             "serve both)",
             CB, CC, RA, m1.graph_reserved, m2.graph_reserved, m2.graph_idle, m2.allocated);
  check_totals(&m2);
  assert_int_equal(tyr_cuda_graph_end(g), 0);
  assert_int_equal(tyr_cuda_graph_launch(g), 0);
  {
    TYR_SCOPE;
    assert_true(tyr_item_e(tyr_sum_at(S, b)) == 2.0 * NB);
    assert_true(tyr_item_e(tyr_sum_at(S, c)) == 3.0 * NC);
  }
  tyr_cuda_graph_free(g); /* b and c are still held: their block outlives the graph */
  assert_int_equal(tyr_cuda_memory_stats(0, &m3), 0);
  assert_int_equal(m3.graph_reserved, m0.graph_reserved + RA);
  assert_int_equal(m3.allocated, m0.allocated + CB + CC);
  check_totals(&m3);
  tyr_tensor_free(b); /* c still holds the block */
  assert_int_equal(tyr_cuda_memory_stats(0, &m4), 0);
  assert_int_equal(m4.graph_reserved, m3.graph_reserved);
  assert_int_equal(m4.cached, m3.cached);
  check_totals(&m4);
  tyr_tensor_free(c); /* the last: the whole 12 MiB go back to the cache */
  assert_int_equal(tyr_cuda_memory_stats(0, &m5), 0);
  assert_int_equal(m5.allocated, m0.allocated);
  assert_int_equal(m5.graph_reserved, m0.graph_reserved);
  assert_int_equal(m5.cached - m4.cached, RA);
  check_totals(&m5);
}

/* ---- a GPT trained eagerly and by replaying a captured step ------------------------- */
enum { GB = 4, GT = 32, GV = 65, GSTEPS = 6, GWARM = 2 };
#define GCLIP 0.5

static tyr_gpt_config small_gpt(void) {
  tyr_gpt_config cfg = tyr_gpt_config_gpt2(GV, GT, 2, 4, 64);
  cfg.dropout = 0;
  return cfg;
}

static tyr_optim_config gpt_adamw(void) {
  tyr_optim_config oc = tyr_adamw_config(1e-3);
  oc.beta2 = 0.95;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  return oc;
}

static double step_lr(int k) {
  return 1e-3 * (k + 1) / 3.0; /* a schedule: every step has its own rate */
}

/* One step; the loss (and the norm) stay allocated for the caller. */
static tyr_tensor *gpt_step(tyr_gpt *g, tyr_optim *opt, tyr_tensor *x, tyr_tensor *y, bool dev_clip,
                            double lr, tyr_tensor **norm) {
  tyr_tensor *loss = NULL;
  {
    TYR_SCOPE;
    loss = tyr_gpt_loss(g, x, y, true);
    assert_non_null(loss);
    tyr_keep_e(loss);
    assert_int_equal(tyr_backward_e(loss), 0);
    if (dev_clip) {
      *norm = tyr_params_clip_grad_norm_dev(&g->params, GCLIP);
      assert_non_null(*norm);
      tyr_keep_e(*norm);
    } else {
      tyr_params_clip_grad_norm(&g->params, GCLIP);
    }
    assert_int_equal(tyr_optim_step(opt, lr), 0);
    tyr_optim_zero_grad(opt);
  }
  return loss;
}

static void upload(tyr_tensor *dst, const int64_t *host) {
  tyr_tensor *c = tyr_from_host_at(S, host, TYR_I64, CPU, 2, (int64_t[]){GB, GT});
  assert_int_equal(tyr_copy_at(S, dst, c), 0);
  tyr_tensor_free(c);
}

/* GSTEPS eager steps against GWARM eager steps and replays of one captured
 * step, from the same start, with the blocks in `compute` (f32: the same
 * arithmetic; bf16: mixed precision).  Returns the first step's loss. */
static double check_gpt_graph(tyr_dtype compute) {
  static int64_t bx[GSTEPS][GB * GT], by[GSTEPS][GB * GT];
  tyr_manual_seed(123);
  for (int k = 0; k < GSTEPS; k++) {
    TYR_SCOPE;
    tyr_tensor *x = tyr_randint_at(S, TYR_I64, CPU, 2, (int64_t[]){GB, GT}, 0, GV);
    tyr_tensor *y = tyr_randint_at(S, TYR_I64, CPU, 2, (int64_t[]){GB, GT}, 0, GV);
    assert_int_equal(tyr_to_host_at(S, x, bx[k], sizeof bx[k]), 0);
    assert_int_equal(tyr_to_host_at(S, y, by[k], sizeof by[k]), 0);
  }
  tyr_gpt_config cfg = small_gpt();
  cfg.compute_dtype = compute;
  /* bf16: eager and replayed steps round the same values, but the
     embedding gradient's atomics may order f32 sums differently, and a
     different last bit can round a bf16 activation the other way */
  bool half = compute == TYR_BF16;
  double ltol = half ? 1e-3 : 1e-5, patol = half ? 2e-3 : 2e-5, prtol = half ? 1e-2 : 1e-4;
  double loss_e[GSTEPS], loss_g[GSTEPS], norm_g[GSTEPS];

  /* eager, with the ordinary clipping and optimizer */
  tyr_gpt ge;
  tyr_manual_seed(0);
  assert_int_equal(tyr_gpt_init(&ge, &cfg, GPU), 0);
  tyr_params_group_by_rank(&ge.params);
  tyr_optim oe;
  assert_int_equal(tyr_optim_init(&oe, &ge.params, gpt_adamw()), 0);
  for (int k = 0; k < GSTEPS; k++) {
    tyr_tensor *x = tyr_from_host_at(S, bx[k], TYR_I64, GPU, 2, (int64_t[]){GB, GT});
    tyr_tensor *y = tyr_from_host_at(S, by[k], TYR_I64, GPU, 2, (int64_t[]){GB, GT});
    tyr_tensor *loss = gpt_step(&ge, &oe, x, y, false, step_lr(k), NULL);
    loss_e[k] = tyr_item_e(loss);
    tyr_tensor_free(loss);
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }

  /* the same from the same start: GWARM eager steps, then one captured step
     replayed for the rest */
  tyr_cuda_mem_stats m0, m1, m2, m3;
  assert_int_equal(tyr_cuda_memory_stats(0, &m0), 0);
  tyr_gpt gg;
  tyr_manual_seed(0);
  assert_int_equal(tyr_gpt_init(&gg, &cfg, GPU), 0);
  tyr_params_group_by_rank(&gg.params);
  tyr_optim og;
  assert_int_equal(tyr_optim_init(&og, &gg.params, gpt_adamw()), 0);
  assert_int_equal(tyr_optim_set_capturable(&og, true), 0);
  tyr_tensor *x = tyr_keep_e(tyr_zeros_at(S, TYR_I64, GPU, 2, (int64_t[]){GB, GT}));
  tyr_tensor *y = tyr_keep_e(tyr_zeros_at(S, TYR_I64, GPU, 2, (int64_t[]){GB, GT}));
  for (int k = 0; k < GWARM; k++) {
    upload(x, bx[k]);
    upload(y, by[k]);
    tyr_tensor *norm = NULL;
    tyr_tensor *loss = gpt_step(&gg, &og, x, y, true, step_lr(k), &norm);
    loss_g[k] = tyr_item_e(loss);
    norm_g[k] = tyr_item_e(norm);
    tyr_tensor_free(loss);
    tyr_tensor_free(norm);
  }
  assert_int_equal(tyr_cuda_memory_stats(0, &m1), 0);
  tyr_cuda_graph *graph = tyr_cuda_graph_begin(0);
  assert_non_null(graph);
  tyr_tensor *norm = NULL;
  tyr_tensor *loss = gpt_step(&gg, &og, x, y, true, -1, &norm);
  assert_int_equal(tyr_cuda_graph_end(graph), 0);
  assert_int_equal(og.step, GWARM); /* the capture ran nothing */
  for (int k = GWARM; k < GSTEPS; k++) {
    upload(x, bx[k]);
    upload(y, by[k]);
    assert_int_equal(tyr_optim_prepare_step(&og, step_lr(k)), 0);
    assert_int_equal(tyr_cuda_graph_launch(graph), 0);
    loss_g[k] = tyr_item_e(loss);
    norm_g[k] = tyr_item_e(norm);
  }
  for (int k = 0; k < GSTEPS; k++) {
    printf("  step %d: eager loss %.9f, graph loss %.9f (grad norm %.6f)%s\n", k + 1, loss_e[k],
           loss_g[k], norm_g[k], k < GWARM ? " eager warm-up" : "");
    if (!(fabs(loss_g[k] - loss_e[k]) <= ltol * fabs(loss_e[k])))
      fail_msg("step %d: loss %.9f with graph replay, %.9f eagerly", k + 1, loss_g[k], loss_e[k]);
  }
  /* not bit for bit: the embedding backward adds with atomics */
  expect_params_close("graph vs eager after 6 steps", &gg.params, &ge.params, patol, prtol);
  for (int i = 0; i < og.n; i++) {
    double va, vb;
    if (worst_ratio(og.m[i], oe.m[i], half ? 1e-6 : 1e-8, half ? 3e-2 : 1e-3, &va, &vb) > 1)
      fail_msg("AdamW m of %s: %.9g vs %.9g", gg.params.items[i].name, va, vb);
  }

  /* memory: the graph holds its working memory until it is freed */
  assert_int_equal(tyr_cuda_memory_stats(0, &m2), 0);
  printf("  graph memory: %zu bytes reserved, %zu idle; allocator reserved %zu, cached %zu\n",
         m2.graph_reserved, m2.graph_idle, m2.reserved, m2.cached);
  assert_true(m2.graph_reserved > 0);
  assert_true(m2.graph_idle > 0);
  assert_true(m2.graph_idle <= m2.graph_reserved);
  assert_int_equal(m2.reserved, m2.allocated + m2.cached + m2.graph_idle);
  tyr_tensor_free(loss);
  tyr_tensor_free(norm);
  assert_int_equal(tyr_cuda_memory_stats(0, &m3), 0);
  if (m3.graph_idle <= m2.graph_idle || m3.allocated >= m2.allocated)
    fail_msg("freeing the graph's loss: graph_idle %zu -> %zu, allocated %zu -> %zu", m2.graph_idle,
             m3.graph_idle, m2.allocated, m3.allocated);
  tyr_cuda_graph_free(graph);
  assert_int_equal(tyr_cuda_memory_stats(0, &m3), 0);
  if (m3.graph_reserved != 0 || m3.graph_idle != 0 || m3.reserved != m2.reserved ||
      m3.cached != m2.cached + m2.graph_idle + (m2.allocated - m3.allocated))
    fail_msg("after tyr_cuda_graph_free: graph_reserved %zu, graph_idle %zu, reserved %zu (was "
             "%zu), cached %zu (was %zu + %zu idle + %zu freed)",
             m3.graph_reserved, m3.graph_idle, m3.reserved, m2.reserved, m3.cached, m2.cached,
             m2.graph_idle, m2.allocated - m3.allocated);
  /* what the graph used is ordinary memory again: the model's tensors only */
  if (m3.allocated != m1.allocated)
    fail_msg("allocated %zu after the graph is gone, %zu before the capture", m3.allocated,
             m1.allocated);
  (void)m0;

  tyr_tensor_free(x);
  tyr_tensor_free(y);
  tyr_optim_free(&og);
  tyr_gpt_free(&gg);
  tyr_optim_free(&oe);
  tyr_gpt_free(&ge);
  return loss_e[0];
}

static void test_gpt_graph_matches_eager(void **state) {
  (void)state;
  REQUIRE_GPU();
  check_gpt_graph(TYR_F32);
}

/* mixed precision: the same under capture, and a first loss close to f32's */
static void test_gpt_bf16_graph_matches_eager(void **state) {
  (void)state;
  REQUIRE_GPU();
  double f32 = check_gpt_graph(TYR_F32), bf16 = check_gpt_graph(TYR_BF16);
  printf("  first loss: f32 %.6f, bf16 compute %.6f\n", f32, bf16);
  if (!(fabs(bf16 - f32) <= 1e-2 * f32))
    fail_msg("first loss %.6f in bf16, %.6f in f32", bf16, f32);
}

/* ---- cross entropy with ignored targets under capture: the count is the replay's ---- */
/* fused: tyr_linear_cross_entropy of lg and a weight w [V, V] */
static tyr_tensor *ce_loss(tyr_tensor *lg, tyr_tensor *w, tyr_tensor *t) {
  return w ? tyr_linear_cross_entropy_at(S, lg, w, t, -100) : tyr_cross_entropy_at(S, lg, t, -100);
}

static void check_ce_capture(bool fused) {
  enum { N = 37, V = 11 };
  int64_t tg[2][N];
  for (int i = 0; i < N; i++) {
    tg[0][i] = i % 5 == 0 ? -100 : i % V;       /* 8 ignored */
    tg[1][i] = i % 3 == 0 ? -100 : (i * 7) % V; /* 13 ignored */
  }
  tyr_manual_seed(5);
  tyr_tensor *lg = tyr_keep_e(tyr_randn_at(S, TYR_F32, GPU, 2, (int64_t[]){N, V}, 0, 1));
  tyr_requires_grad_at(S, lg, true);
  tyr_tensor *w =
      fused ? tyr_keep_e(tyr_randn_at(S, TYR_F32, GPU, 2, (int64_t[]){V, V}, 0, 1)) : NULL;
  tyr_tensor *t = tyr_keep_e(tyr_zeros_at(S, TYR_I64, GPU, 1, (int64_t[]){N}));
  tyr_cuda_graph *g = tyr_cuda_graph_begin(0);
  assert_non_null(g);
  tyr_tensor *loss;
  {
    TYR_SCOPE;
    loss = tyr_keep_e(ce_loss(lg, w, t));
    assert_int_equal(tyr_backward_e(loss), 0);
  }
  assert_int_equal(tyr_cuda_graph_end(g), 0);
  tyr_tensor *gcap = lg->grad; /* graph memory, rewritten at each replay */
  lg->grad = NULL;
  for (int k = 0; k < 2; k++) {
    tyr_tensor *c = tyr_from_host_at(S, tg[k], TYR_I64, CPU, 1, (int64_t[]){N});
    assert_int_equal(tyr_copy_at(S, t, c), 0);
    tyr_tensor_free(c);
    assert_int_equal(tyr_cuda_graph_launch(g), 0);
    /* eager reference */
    tyr_tensor *le;
    {
      TYR_SCOPE;
      le = tyr_keep_e(ce_loss(lg, w, t));
      assert_int_equal(tyr_backward_e(le), 0);
    }
    double a = tyr_item_e(loss), b = tyr_item_e(le);
    if (a != b) fail_msg("targets %d: loss %.9g replayed, %.9g eagerly", k, a, b);
    double va, vb;
    if (worst_ratio(gcap, lg->grad, 0, 0, &va, &vb) > 1)
      fail_msg("targets %d: gradient %.9g replayed, %.9g eagerly", k, va, vb);
    tyr_zero_grad_e(lg);
    tyr_tensor_free(le);
  }
  tyr_tensor_free(gcap);
  tyr_tensor_free(loss);
  tyr_cuda_graph_free(g);
  tyr_tensor_free(t);
  tyr_tensor_free(lg);
  tyr_tensor_free(w);
}

static void test_cross_entropy_capture(void **state) {
  (void)state;
  REQUIRE_GPU();
  check_ce_capture(false);
  check_ce_capture(true);
}

/* ---- refused during a capture ---------------------------------------------------------- */
static void test_capture_errors(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_params ps;
  toy_params(&ps, GPU, 9);
  toy_grads(&ps, 1.0);
  tyr_optim plain, cap;
  assert_int_equal(tyr_optim_init(&plain, &ps, toy_adamw()), 0);
  assert_int_equal(tyr_optim_init(&cap, &ps, toy_adamw()), 0);
  assert_int_equal(tyr_optim_set_capturable(&cap, true), 0);
  tyr_tensor *x = tyr_keep_e(tyr_ones_at(S, TYR_F32, GPU, 1, (int64_t[]){8}));
  float host[8] = {0};

  tyr_cuda_graph *g = tyr_cuda_graph_begin(0);
  assert_non_null(g);
  EXPECT_TYR_ERROR(tyr_cuda_graph_begin(0), "already being captured");
  {
    TYR_SCOPE;
    tyr_tensor *s = tyr_sum_at(S, x);
    assert_non_null(s);
    EXPECT_TYR_ERROR(tyr_item_e(s), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_to_host_at(S, x, host, sizeof host), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_to_device_at(S, x, CPU), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_from_host_at(S, host, TYR_F32, GPU, 1, (int64_t[]){8}), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_cuda_synchronize(), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_cuda_empty_cache(), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_rand_at(S, TYR_F32, GPU, 1, (int64_t[]){8}, 0, 1), "random numbers");
    EXPECT_TYR_ERROR(tyr_params_clip_grad_norm(&ps, 1.0), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_optim_step(&plain, -1), "capturable mode");
    EXPECT_TYR_ERROR(tyr_optim_prepare_step(&cap, -1), CAPTURE_MSG);
    EXPECT_TYR_ERROR(tyr_cuda_graph_launch(g), "still being captured");
    /* what is allowed: device-side clipping and a capturable step */
    assert_non_null(tyr_params_clip_grad_norm_dev(&ps, 1.0));
    assert_int_equal(tyr_optim_step(&cap, -1), 0);
  }
  /* nothing that was refused reached CUDA: the capture is still valid */
  assert_int_equal(tyr_cuda_graph_end(g), 0);
  EXPECT_TYR_ERROR(tyr_cuda_graph_end(g), "not being captured");
  assert_int_equal(tyr_optim_prepare_step(&cap, -1), 0);
  assert_int_equal(tyr_cuda_graph_launch(g), 0);
  assert_int_equal(tyr_cuda_synchronize(), 0);
  tyr_cuda_graph_free(g);

  /* an abandoned capture is ended by tyr_cuda_graph_free */
  g = tyr_cuda_graph_begin(0);
  assert_non_null(g);
  {
    TYR_SCOPE;
    assert_non_null(tyr_mul_scalar_at(S, x, 3.0));
  }
  tyr_cuda_graph_free(g);
  tyr_cuda_mem_stats ms;
  assert_int_equal(tyr_cuda_memory_stats(0, &ms), 0);
  assert_int_equal(ms.graph_reserved, 0);
  {
    TYR_SCOPE;
    assert_int_equal(tyr_item_e(tyr_sum_at(S, x)), 8); /* the device works as before */
  }
  EXPECT_TYR_ERROR(tyr_cuda_graph_begin(tyr_cuda_device_count()), "out of range");

  tyr_tensor_free(x);
  tyr_optim_free(&plain);
  tyr_optim_free(&cap);
  tyr_params_free(&ps);
}

int main(void) {
  tyr_test_record_errors();
  g_gpu = tyr_cuda_available();
  if (!g_gpu)
    printf("no CUDA GPU: skipped\n");
  else
    printf("test_cuda_graph: testing cuda:0\n");
  fflush(stdout);
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_without_gpu),
      TYR_TEST(test_capturable_optim_cpu),
      TYR_TEST(test_clip_dev_cpu),
      TYR_TEST(test_capturable_optim_gpu),
      TYR_TEST(test_clip_dev_gpu),
      TYR_TEST(test_replay_simple),
      TYR_TEST(test_graph_pool_split),
      TYR_TEST(test_cross_entropy_capture),
      TYR_TEST(test_capture_errors),
      TYR_TEST(test_gpt_graph_matches_eager),
      TYR_TEST(test_gpt_bf16_graph_matches_eager),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  tyr_cuda_empty_cache();
  return failed;
}
