/* Functional ops: values against double-precision references, gradients
 * against finite differences, errors, bf16 paths, dropout masks, typed
 * forms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"     /* tyr_cpu_attention_force_rows */
#include "ops/nn_util.h" /* tyr__lce_set_chunk_bytes */
#include "gradcheck.h"

#define CPU TYR_DEVICE_CPU

/* All elements of t as doubles (row-major), in a malloc'd buffer. */
static double *values(tyr_tensor *t) {
  TYR_SCOPE;
  int64_t n = tyr_numel(t);
  double *buf = malloc((size_t)(n ? n : 1) * sizeof(double));
  tyr_tensor *d = tyr_to_dtype_e(t, TYR_F64);
  tyr_to_host_e(d, buf, (size_t)n * sizeof(double));
  return buf;
}

static tyr_tensor *randn(tyr_dtype dt, int rank, const int64_t *shape, double std) {
  return tyr_randn_at(TYR_SITE, dt, CPU, rank, shape, 0, std);
}
#define RANDN(dt, std, ...)                                                                        \
  randn((dt), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}, (std))

/* Asserts every element of t is within atol + rtol |ref| of ref[]. */
static void expect_values(tyr_tensor *t, const double *ref, double atol, double rtol,
                          const char *what) {
  double *v = values(t);
  int64_t n = tyr_numel(t);
  for (int64_t i = 0; i < n; i++) {
    if (!(fabs(v[i] - ref[i]) <= atol + rtol * fabs(ref[i]))) {
      double got = v[i];
      free(v);
      fail_msg("%s: element %lld is %.10g, expected %.10g", what, (long long)i, got, ref[i]);
    }
  }
  free(v);
}

/* ---- softmax ------------------------------------------------------------------ */
/* Reference over dim d of a [n0, n1, n2] tensor. */
static void ref_softmax3(const double *x, double *y, const int64_t *sh, int d, bool log_) {
  int64_t st[3] = {sh[1] * sh[2], sh[2], 1};
  int64_t n = sh[0] * sh[1] * sh[2];
  for (int64_t i = 0; i < n; i++) {
    int64_t idx[3] = {i / st[0], (i / st[1]) % sh[1], i % sh[2]};
    int64_t base = i - idx[d] * st[d];
    double mx = -INFINITY, sum = 0;
    for (int64_t k = 0; k < sh[d]; k++) mx = fmax(mx, x[base + k * st[d]]);
    for (int64_t k = 0; k < sh[d]; k++) sum += exp(x[base + k * st[d]] - mx);
    y[i] = log_ ? x[i] - mx - log(sum) : exp(x[i] - mx) / sum;
  }
}

static void test_softmax_values(void **state) {
  (void)state;
  int64_t sh[3] = {3, 4, 5};
  for (int dt = 0; dt < 2; dt++) {
    for (int d = -1; d < 3; d++) {
      TYR_SCOPE;
      tyr_tensor *x = randn(dt ? TYR_F64 : TYR_F32, 3, sh, 3.0);
      double *xv = values(x), ref[60];
      for (int lg = 0; lg < 2; lg++) {
        tyr_tensor *y = lg ? tyr_log_softmax_e(x, d) : tyr_softmax_e(x, d);
        assert_non_null(y);
        assert_int_equal(y->dtype, x->dtype);
        ref_softmax3(xv, ref, sh, d < 0 ? 2 : d, lg);
        expect_values(y, ref, dt ? 1e-12 : 1e-5, dt ? 1e-12 : 1e-5, lg ? "log_softmax" : "softmax");
      }
      free(xv);
    }
  }
  /* a strided input (a transposed view) and large values */
  TYR_SCOPE;
  tyr_tensor *x = tyr_full_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){2, 3}, 1000.0);
  tyr_tensor *y = tyr_softmax_e(x, 1);
  for (int64_t i = 0; i < 3; i++) ASSERT_CLOSE(tyr_get_e(y, 1, i), 1.0 / 3, 1e-6, 0);
  tyr_tensor *base = RANDN(TYR_F64, 1.0, 4, 3);
  tyr_tensor *tv = tyr_view_raw(base, 2, (int64_t[]){3, 4}, (int64_t[]){1, 3}, 0);
  tyr_tensor *ys = tyr_softmax_e(tv, 1);
  for (int64_t i = 0; i < 3; i++) {
    double sum = 0, mx = -INFINITY;
    for (int64_t j = 0; j < 4; j++) mx = fmax(mx, tyr_get_e(base, j, i));
    for (int64_t j = 0; j < 4; j++) sum += exp(tyr_get_e(base, j, i) - mx);
    for (int64_t j = 0; j < 4; j++)
      ASSERT_CLOSE(tyr_get_e(ys, i, j), exp(tyr_get_e(base, j, i) - mx) / sum, 1e-12, 1e-12);
  }
}

typedef struct {
  int dim;
  bool log_;
} softmax_ctx;
static tyr_tensor *call_softmax(tyr_tensor **in, void *ctx) {
  softmax_ctx *c = ctx;
  return c->log_ ? tyr_log_softmax_e(in[0], c->dim) : tyr_softmax_e(in[0], c->dim);
}

static void test_softmax_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-2, 2, 2, 3, 4);
  for (int d = -1; d < 3; d++)
    for (int lg = 0; lg < 2; lg++) {
      softmax_ctx c = {d, lg};
      tyr_gradcheck(lg ? "log_softmax" : "softmax", call_softmax, &c, 1, &x, 1e-6, 1e-6);
    }
  tyr_tensor_free(x);
}

static void test_softmax_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 2, 3);
  tyr_tensor *i = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){3});
  EXPECT_TYR_ERROR(tyr_softmax_e(x, 2),
                   "tyr_softmax: dim 2 is out of range for a tensor of shape [2, 3]");
  EXPECT_TYR_ERROR(tyr_log_softmax_e(x, -3), "tyr_log_softmax: dim -3 is out of range");
  EXPECT_TYR_ERROR(tyr_softmax_e(i, 0), "tyr_softmax: x must be a floating dtype, not i64");
  EXPECT_TYR_ERROR(tyr_softmax_e(NULL, 0), "tyr_softmax: x is NULL");
  /* empty tensors work */
  tyr_tensor *e = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){0, 3});
  assert_non_null(tyr_softmax_e(e, 1));
  assert_non_null(tyr_softmax_e(e, 0));
}

/* ---- cross entropy and mse ------------------------------------------------------- */
static double ref_ce(const double *lg, const int64_t *tg, int64_t N, int64_t V, int64_t ign) {
  double sum = 0;
  int64_t cnt = 0;
  for (int64_t n = 0; n < N; n++) {
    if (tg[n] == ign) continue;
    double mx = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; v++) mx = fmax(mx, lg[n * V + v]);
    for (int64_t v = 0; v < V; v++) s += exp(lg[n * V + v] - mx);
    sum += mx + log(s) - lg[n * V + tg[n]];
    cnt++;
  }
  return cnt ? sum / (double)cnt : 0;
}

static void test_cross_entropy_values(void **state) {
  (void)state;
  int64_t tg[6] = {1, 4, -100, 0, 2, -100};
  for (int dt = 0; dt < 2; dt++)
    for (int it = 0; it < 2; it++) {
      TYR_SCOPE;
      tyr_tensor *lg = RANDN(dt ? TYR_F64 : TYR_F32, 2.0, 2, 3, 5);
      tyr_tensor *t64 = tyr_from_host_at(TYR_SITE, tg, TYR_I64, CPU, 2, (int64_t[]){2, 3});
      tyr_tensor *t = it ? tyr_to_dtype_e(t64, TYR_I32) : t64;
      tyr_tensor *loss = tyr_cross_entropy_e(lg, t, -100);
      assert_non_null(loss);
      assert_int_equal(loss->rank, 0);
      assert_int_equal(loss->dtype, lg->dtype);
      double *lv = values(lg);
      ASSERT_CLOSE(tyr_item_e(loss), ref_ce(lv, tg, 6, 5, -100), dt ? 1e-12 : 1e-5, 1e-5);
      /* ignore_index inside the class range */
      int64_t tg0[6] = {1, 4, 0, 0, 2, 0}; /* -100 would be out of range: use 0 there */
      tyr_tensor *t0 = tyr_from_host_at(TYR_SITE, tg0, TYR_I64, CPU, 2, (int64_t[]){2, 3});
      tyr_tensor *l0 = tyr_cross_entropy_e(lg, t0, 0);
      ASSERT_CLOSE(tyr_item_e(l0), ref_ce(lv, tg0, 6, 5, 0), dt ? 1e-12 : 1e-5, 1e-5);
      free(lv);
    }
}

static void test_cross_entropy_all_ignored(void **state) {
  (void)state;
  tyr_tensor *lg = TYR_TEST_LEAF(-1, 1, 4, 3);
  {
    TYR_SCOPE;
    tyr_tensor *t = tyr_full_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){4}, -1);
    tyr_tensor *loss = tyr_cross_entropy_e(lg, t, -1);
    assert_true(tyr_item_e(loss) == 0.0);
    assert_int_equal(tyr_backward_e(loss), 0);
    tyr_tensor *g = tyr_grad_e(lg);
    assert_non_null(g);
    for (int64_t i = 0; i < 4; i++)
      for (int64_t j = 0; j < 3; j++) assert_true(tyr_get_e(g, i, j) == 0.0);
    /* no rows at all */
    tyr_tensor *e = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){0, 3});
    tyr_tensor *te = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){0});
    assert_true(tyr_item_e(tyr_cross_entropy_e(e, te, -100)) == 0.0);
  }
  tyr_tensor_free(lg);
}

static tyr_tensor *g_targets;
static tyr_tensor *call_ce(tyr_tensor **in, void *ctx) {
  return tyr_cross_entropy_e(in[0], g_targets, ctx ? *(int64_t *)ctx : -100);
}

static void test_cross_entropy_gradients(void **state) {
  (void)state;
  tyr_tensor *lg = TYR_TEST_LEAF(-2, 2, 2, 3, 4);
  tyr_scope_begin();
  int64_t tg[6] = {3, -100, 0, 2, 1, 1};
  g_targets = tyr_from_host_at(TYR_SITE, tg, TYR_I64, CPU, 2, (int64_t[]){2, 3});
  tyr_gradcheck("cross_entropy", call_ce, NULL, 1, &lg, 1e-6, 1e-6);
  int64_t ign = 1;
  tyr_tensor *t32 =
      tyr_from_host_at(TYR_SITE, (int32_t[]){3, 1, 0, 2, 1, 1}, TYR_I32, CPU, 2, (int64_t[]){2, 3});
  tyr_tensor *hold = g_targets;
  g_targets = t32;
  tyr_gradcheck("cross_entropy i32, ignore 1", call_ce, &ign, 1, &lg, 1e-6, 1e-6);
  g_targets = hold;
  /* a loss used twice and scaled: the gradient of 2 * loss */
  tyr_tensor *loss = tyr_cross_entropy_e(lg, g_targets, -100);
  tyr_backward_e(tyr_add_e(loss, loss));
  tyr_tensor *g2 = tyr_keep_e(tyr_clone_e(tyr_grad_e(lg)));
  tyr_zero_grad_e(lg);
  tyr_backward_e(tyr_cross_entropy_e(lg, g_targets, -100));
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 3; j++)
      for (int64_t k = 0; k < 4; k++)
        ASSERT_CLOSE(tyr_get_e(g2, i, j, k), 2 * tyr_get_e(tyr_grad_e(lg), i, j, k), 1e-12, 0);
  tyr_tensor_free(g2);
  tyr_zero_grad_e(lg);
  tyr_scope_end();
  tyr_tensor_free(lg);
}

static void test_cross_entropy_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *lg = RANDN(TYR_F32, 1.0, 2, 3, 5);
  tyr_tensor *bad = tyr_from_host_at(TYR_SITE, (int64_t[]){1, 2, 5, 0, -100, 1}, TYR_I64, CPU, 2,
                                     (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(
      tyr_cross_entropy_e(lg, bad, -100),
      "tyr_cross_entropy: target 5 at (flat) position 2 is out of range for 5 classes");
  tyr_tensor *neg = tyr_from_host_at(TYR_SITE, (int32_t[]){1, 2, 3, -7, -100, 1}, TYR_I32, CPU, 2,
                                     (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(lg, neg, -100), "target -7 at (flat) position 3");
  /* -100 is only ignored when it is the ignore_index */
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(lg, neg, -7), "target -100 at (flat) position 4");
  tyr_tensor *t23 = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 2, (int64_t[]){3, 2});
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(lg, t23, -100),
                   "tyr_cross_entropy: logits are [2, 3, 5], so targets must be [2, 3], but they "
                   "are [3, 2]");
  tyr_tensor *t6 = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){6});
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(lg, t6, -100), "but they are [6]");
  tyr_tensor *tf = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(lg, tf, -100),
                   "tyr_cross_entropy: targets must be i32 or i64, not f32");
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(t23, t23, -100),
                   "tyr_cross_entropy: logits must be a floating dtype, not i64");
  EXPECT_TYR_ERROR(tyr_cross_entropy_e(NULL, t23, -100), "tyr_cross_entropy: logits is NULL");
}

/* ---- linear + cross entropy in one op ------------------------------------------- */
/* Loss and gradients of tyr_linear_cross_entropy against tyr_linear followed
 * by tyr_cross_entropy, in f32 and f64, i64 and i32 targets, ignored rows. */
static void test_linear_cross_entropy_values(void **state) {
  (void)state;
  int64_t tg[6] = {1, 6, -100, 0, 2, -100};
  /* whole, then in chunks of 2 rows (7 classes x 4 bytes x 2), then 1 row */
  for (int ch = 0; ch < 3; ch++)
    for (int dt = 0; dt < 2; dt++)
      for (int it = 0; it < 2; it++) {
        tyr_dtype fdt = dt ? TYR_F64 : TYR_F32;
        tyr_tensor *x = tyr_keep_e(RANDN(fdt, 1.0, 2, 3, 4)),
                   *w = tyr_keep_e(RANDN(fdt, 1.0, 7, 4));
        tyr_requires_grad_e(x, true);
        tyr_requires_grad_e(w, true);
        {
          TYR_SCOPE;
          tyr_tensor *t64 = tyr_from_host_at(TYR_SITE, tg, TYR_I64, CPU, 2, (int64_t[]){2, 3});
          tyr_tensor *t = it ? tyr_to_dtype_e(t64, TYR_I32) : t64;
          tyr_tensor *ref = tyr_cross_entropy_e(tyr_linear_e(x, w, NULL), t, -100);
          assert_int_equal(tyr_backward_e(tyr_mul_scalar_e(ref, 2.5)), 0);
          tyr_tensor *gx = tyr_clone_e(tyr_grad_e(x)), *gw = tyr_clone_e(tyr_grad_e(w));
          tyr_zero_grad_e(x);
          tyr_zero_grad_e(w);
          tyr__lce_set_chunk_bytes(ch == 0 ? 0 : ch == 1 ? 7 * 4 * 2 : 1);
          tyr_tensor *loss = tyr_linear_cross_entropy_e(x, w, t, -100);
          tyr__lce_set_chunk_bytes(0);
          assert_non_null(loss);
          assert_int_equal(loss->rank, 0);
          assert_int_equal(loss->dtype, fdt);
          double tol = dt ? 1e-12 : 1e-5;
          ASSERT_CLOSE(tyr_item_e(loss), tyr_item_e(ref), tol, tol);
          assert_int_equal(tyr_backward_e(tyr_mul_scalar_e(loss, 2.5)), 0);
          double *a = values(tyr_grad_e(x)), *b = values(tyr_grad_e(w));
          expect_values(gx, a, tol, tol, "linear_cross_entropy dx");
          expect_values(gw, b, tol, tol, "linear_cross_entropy dw");
          free(a);
          free(b);
        }
        tyr_tensor_free(x);
        tyr_tensor_free(w);
      }
}

static tyr_tensor *call_lce(tyr_tensor **in, void *ctx) {
  return tyr_linear_cross_entropy_e(in[0], in[1], g_targets, ctx ? *(int64_t *)ctx : -100);
}

static tyr_tensor *g_frozen_w;
static tyr_tensor *call_lce_frozen_w(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_linear_cross_entropy_e(in[0], g_frozen_w, g_targets, -100);
}

static void test_linear_cross_entropy_gradients(void **state) {
  (void)state;
  tyr_tensor *in[2] = {TYR_TEST_LEAF(-1, 1, 2, 3, 4), TYR_TEST_LEAF(-1, 1, 5, 4)};
  tyr_scope_begin();
  int64_t tg[6] = {3, -100, 0, 2, 4, 1};
  g_targets = tyr_from_host_at(TYR_SITE, tg, TYR_I64, CPU, 2, (int64_t[]){2, 3});
  tyr_gradcheck("linear_cross_entropy", call_lce, NULL, 2, in, 1e-6, 1e-6);
  tyr__lce_set_chunk_bytes(5 * 8 * 4); /* chunks of 4 rows of 5 f64 classes */
  tyr_gradcheck("linear_cross_entropy in chunks", call_lce, NULL, 2, in, 1e-6, 1e-6);
  tyr__lce_set_chunk_bytes(0);
  tyr_tensor *hold = g_targets;
  g_targets =
      tyr_from_host_at(TYR_SITE, (int32_t[]){3, 0, 0, 2, 4, 1}, TYR_I32, CPU, 2, (int64_t[]){2, 3});
  int64_t ign = 0;
  tyr_gradcheck("linear_cross_entropy i32, ignore 0", call_lce, &ign, 2, in, 1e-6, 1e-6);
  g_targets = hold;
  /* x alone needing a gradient (a frozen classifier) */
  tyr_requires_grad_e(in[1], false);
  g_frozen_w = in[1];
  tyr_gradcheck("linear_cross_entropy, w frozen", call_lce_frozen_w, NULL, 1, in, 1e-6, 1e-6);
  tyr_requires_grad_e(in[1], true);
  tyr_scope_end();
  tyr_tensor_free(in[0]);
  tyr_tensor_free(in[1]);
}

static void test_linear_cross_entropy_edges(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 4, 3), *w = RANDN(TYR_F32, 1.0, 5, 3);
  tyr_requires_grad_e(x, true);
  tyr_requires_grad_e(w, true);
  /* every target ignored: loss 0, zero gradients */
  tyr_tensor *ti = tyr_full_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){4}, -1);
  tyr_tensor *loss = tyr_linear_cross_entropy_e(x, w, ti, -1);
  assert_true(tyr_item_e(loss) == 0.0);
  assert_int_equal(tyr_backward_e(loss), 0);
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 3; j++) assert_true(tyr_get_e(tyr_grad_e(x), i, j) == 0.0);
  /* no rows */
  tyr_tensor *e = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){0, 3});
  tyr_tensor *te = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){0});
  assert_true(tyr_item_e(tyr_linear_cross_entropy_e(e, w, te, -100)) == 0.0);
  /* without grad mode: the same loss, nothing recorded */
  tyr_tensor *t =
      tyr_from_host_at(TYR_SITE, (int64_t[]){0, 4, 2, 1}, TYR_I64, CPU, 1, (int64_t[]){4});
  double with = tyr_item_e(tyr_linear_cross_entropy_e(x, w, t, -100));
  {
    TYR_NO_GRAD;
    tyr_tensor *l = tyr_linear_cross_entropy_e(x, w, t, -100);
    assert_false(l->requires_grad);
    assert_true(tyr_item_e(l) == with);
  }
  /* bf16 operands (computed in f32 on the CPU): an f32 loss close to f32's */
  tyr_tensor *xb = tyr_to_dtype_e(x, TYR_BF16), *wb = tyr_to_dtype_e(w, TYR_BF16);
  tyr_tensor *lb = tyr_linear_cross_entropy_e(xb, wb, t, -100);
  assert_int_equal(lb->dtype, TYR_F32);
  ASSERT_CLOSE(tyr_item_e(lb), with, 2e-2, 2e-2);
  /* its gradients reach the f32 leaves through the casts: close to f32's */
  tyr_zero_grad_e(x);
  tyr_zero_grad_e(w);
  assert_int_equal(tyr_backward_e(tyr_linear_cross_entropy_e(x, w, t, -100)), 0);
  double *gx = values(tyr_grad_e(x)), *gw = values(tyr_grad_e(w));
  tyr_zero_grad_e(x);
  tyr_zero_grad_e(w);
  assert_int_equal(tyr_backward_e(lb), 0);
  expect_values(tyr_grad_e(x), gx, 2e-2, 5e-2, "linear_cross_entropy bf16 dx");
  expect_values(tyr_grad_e(w), gw, 2e-2, 5e-2, "linear_cross_entropy bf16 dw");
  free(gx);
  free(gw);
}

/* tyr_linear_cross_entropy_softcap against tyr_linear, tyr_softcap (in the
 * loss's dtype) and tyr_cross_entropy: loss and gradients, whole and in
 * chunks, f32 and f64; finite differences; bf16 operands; bad caps. */
static tyr_tensor *call_lce_cap(tyr_tensor **in, void *ctx) {
  return tyr_linear_cross_entropy_softcap_e(in[0], in[1], g_targets, -100, *(double *)ctx);
}

static void test_linear_cross_entropy_softcap(void **state) {
  (void)state;
  int64_t tg[6] = {1, 6, -100, 0, 2, -100};
  for (int ch = 0; ch < 3; ch++)
    for (int dt = 0; dt < 2; dt++) {
      tyr_dtype fdt = dt ? TYR_F64 : TYR_F32;
      tyr_tensor *x = tyr_keep_e(RANDN(fdt, 2.0, 2, 3, 4)), *w = tyr_keep_e(RANDN(fdt, 2.0, 7, 4));
      tyr_requires_grad_e(x, true);
      tyr_requires_grad_e(w, true);
      {
        TYR_SCOPE;
        tyr_tensor *t = tyr_from_host_at(TYR_SITE, tg, TYR_I64, CPU, 2, (int64_t[]){2, 3});
        tyr_tensor *ref =
            tyr_cross_entropy_e(tyr_softcap_e(tyr_linear_e(x, w, NULL), 3.0), t, -100);
        assert_int_equal(tyr_backward_e(tyr_mul_scalar_e(ref, 2.5)), 0);
        tyr_tensor *gx = tyr_clone_e(tyr_grad_e(x)), *gw = tyr_clone_e(tyr_grad_e(w));
        tyr_zero_grad_e(x);
        tyr_zero_grad_e(w);
        tyr__lce_set_chunk_bytes(ch == 0 ? 0 : ch == 1 ? 7 * 4 * 2 : 1);
        tyr_tensor *loss = tyr_linear_cross_entropy_softcap_e(x, w, t, -100, 3.0);
        tyr__lce_set_chunk_bytes(0);
        assert_non_null(loss);
        assert_int_equal(loss->dtype, fdt);
        double tol = dt ? 1e-12 : 1e-5;
        ASSERT_CLOSE(tyr_item_e(loss), tyr_item_e(ref), tol, tol);
        /* the cap matters here: uncapped, the loss is another */
        assert_true(fabs(tyr_item_e(tyr_linear_cross_entropy_e(x, w, t, -100)) - tyr_item_e(ref)) >
                    1e-3);
        assert_int_equal(tyr_backward_e(tyr_mul_scalar_e(loss, 2.5)), 0);
        double *a = values(tyr_grad_e(x)), *b = values(tyr_grad_e(w));
        expect_values(gx, a, tol, tol, "linear_cross_entropy_softcap dx");
        expect_values(gw, b, tol, tol, "linear_cross_entropy_softcap dw");
        free(a);
        free(b);
      }
      tyr_tensor_free(x);
      tyr_tensor_free(w);
    }
  /* finite differences, whole and in chunks of 4 rows */
  tyr_tensor *in[2] = {TYR_TEST_LEAF(-1, 1, 2, 3, 4), TYR_TEST_LEAF(-1, 1, 5, 4)};
  tyr_scope_begin();
  int64_t tg2[6] = {3, -100, 0, 2, 4, 1};
  g_targets = tyr_from_host_at(TYR_SITE, tg2, TYR_I64, CPU, 2, (int64_t[]){2, 3});
  double cap = 0.7;
  tyr_gradcheck("linear_cross_entropy_softcap", call_lce_cap, &cap, 2, in, 1e-6, 1e-6);
  tyr__lce_set_chunk_bytes(5 * 8 * 4);
  tyr_gradcheck("linear_cross_entropy_softcap in chunks", call_lce_cap, &cap, 2, in, 1e-6, 1e-6);
  tyr__lce_set_chunk_bytes(0);
  /* bf16 operands: an f32 loss close to the f32 one */
  tyr_tensor *xf = tyr_to_dtype_e(in[0], TYR_F32), *wf = tyr_to_dtype_e(in[1], TYR_F32);
  tyr_tensor *lf = tyr_linear_cross_entropy_softcap_e(xf, wf, g_targets, -100, cap);
  tyr_tensor *lb = tyr_linear_cross_entropy_softcap_e(
      tyr_to_dtype_e(xf, TYR_BF16), tyr_to_dtype_e(wf, TYR_BF16), g_targets, -100, cap);
  assert_int_equal(lb->dtype, TYR_F32);
  ASSERT_CLOSE(tyr_item_e(lb), tyr_item_e(lf), 2e-2, 2e-2);
  /* a cap of 0 is no cap; negative and non-finite caps are refused */
  ASSERT_CLOSE(tyr_item_e(tyr_linear_cross_entropy_softcap_e(xf, wf, g_targets, -100, 0.0)),
               tyr_item_e(tyr_linear_cross_entropy_e(xf, wf, g_targets, -100)), 0, 0);
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_softcap_e(xf, wf, g_targets, -100, -1.0),
                   "tyr_linear_cross_entropy_softcap: the softcap must be finite and >= 0 (0: "
                   "none), got -1");
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_softcap_e(xf, wf, g_targets, -100, NAN),
                   "tyr_linear_cross_entropy_softcap: the softcap must be finite");
  EXPECT_TYR_ERROR(
      tyr_linear_cross_entropy_softcap_e(xf, tyr_to_dtype_e(wf, TYR_F64), g_targets, -100, 2.0),
      "tyr_linear_cross_entropy_softcap");
  tyr_scope_end();
  tyr_tensor_free(in[0]);
  tyr_tensor_free(in[1]);
}

static void test_linear_cross_entropy_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 2, 3, 4), *w = RANDN(TYR_F32, 1.0, 5, 4);
  tyr_tensor *t = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 2, (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_e(x, RANDN(TYR_F32, 1.0, 5, 3), t, -100),
                   "tyr_linear_cross_entropy: x is [2, 3, 4] and w is [5, 3]: the weight must "
                   "be [V, C] with C equal to the last dim of x");
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_e(
                       x, w, tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 2, (int64_t[]){3, 2}), -100),
                   "tyr_linear_cross_entropy: x is [2, 3, 4], so targets must be [2, 3], but "
                   "they are [3, 2]");
  tyr_tensor *bad = tyr_from_host_at(TYR_SITE, (int64_t[]){1, 2, 5, 0, -100, 1}, TYR_I64, CPU, 2,
                                     (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(
      tyr_linear_cross_entropy_e(x, w, bad, -100),
      "tyr_linear_cross_entropy: target 5 at (flat) position 2 is out of range for 5 classes");
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_e(x, tyr_to_dtype_e(w, TYR_F64), t, -100),
                   "tyr_linear_cross_entropy");
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_e(x, w, tyr_to_dtype_e(t, TYR_F32), -100),
                   "tyr_linear_cross_entropy: targets must be i32 or i64, not f32");
  EXPECT_TYR_ERROR(tyr_linear_cross_entropy_e(NULL, w, t, -100),
                   "tyr_linear_cross_entropy: x is NULL");
}

/* ---- tyr_mlp_gelu_tanh: the values of the three ops it stands for, their
 * gradients (through the CPU's fused epilogues), errors */
static tyr_tensor *call_mlp(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_mlp_gelu_tanh_e(in[0], in[1], in[2], in[3], in[4]);
}
static tyr_tensor *call_mlp_no_bias(tyr_tensor **in, void *ctx) { /* x, w1, w2 */
  (void)ctx;
  return tyr_mlp_gelu_tanh_e(in[0], in[1], NULL, in[2], NULL);
}

/* tyr_mlp with every activation: on the CPU one node whose epilogues apply
 * the activation and its derivative (f32, f64), with the values and
 * gradients of tyr_linear, the activation and tyr_linear; a strided x
 * takes the composed ops. */
static tyr_act_kind mlp_act;
static tyr_tensor *call_mlp_act(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_mlp_e(in[0], in[1], in[2], in[3], in[4], mlp_act);
}

static void test_mlp_act(void **state) {
  (void)state;
  const char *names[] = {"gelu", "gelu_tanh", "relu2", "relu", "silu"};
  for (int a = 0; a < 5; a++) {
    tyr_act_kind act;
    assert_true(tyr_act_kind_parse(names[a], &act));
    for (int dt = 0; dt < 2; dt++) {
      TYR_SCOPE;
      tyr_dtype t = dt ? TYR_F64 : TYR_F32;
      /* 128 x 200 hidden values: a product of 2.5 MFLOP, split between the
         threads (each applies the epilogue to its block) */
      tyr_tensor *in[5] = {RANDN(t, 1.0, 2, 64, 48), RANDN(t, 0.3, 200, 48), RANDN(t, 0.3, 200),
                           RANDN(t, 0.3, 7, 200), RANDN(t, 0.3, 7)};
      for (int i = 0; i < 5; i++) tyr_requires_grad_e(in[i], true);
      tyr_tensor *gy = RANDN(t, 1.0, 2, 64, 7);
      tyr_tensor *y[2] = {NULL, NULL};
      double *g[2][5];
      for (int k = 0; k < 2; k++) { /* the op, then the three ops */
        y[k] = k ? tyr_linear_e(tyr_nn_act_at(TYR_SITE, act, tyr_linear_e(in[0], in[1], in[2])),
                                in[3], in[4])
                 : tyr_mlp_e(in[0], in[1], in[2], in[3], in[4], act);
        assert_non_null(y[k]);
        if (!k) assert_string_equal(y[k]->grad_fn->op, "tyr_mlp");
        assert_int_equal(tyr_backward_with_at(TYR_SITE, y[k], gy), 0);
        for (int i = 0; i < 5; i++) {
          g[k][i] = values(tyr_grad_e(in[i]));
          tyr_zero_grad_e(in[i]);
        }
      }
      double *v0 = values(y[0]), *v1 = values(y[1]);
      int64_t n[5] = {2 * 64 * 48, 200 * 48, 200, 7 * 200, 7};
      double tol = dt ? 1e-13 : 1e-5;
      for (int64_t i = 0; i < 2 * 64 * 7; i++) ASSERT_CLOSE(v0[i], v1[i], tol, tol);
      for (int i = 0; i < 5; i++) {
        for (int64_t j = 0; j < n[i]; j++) ASSERT_CLOSE(g[0][i][j], g[1][i][j], tol, tol);
        free(g[0][i]);
        free(g[1][i]);
      }
      free(v0);
      free(v1);
    }
    tyr_tensor *x = TYR_TEST_LEAF(-1.5, 1.5, 2, 3, 4);
    tyr_tensor *gin[5] = {x, TYR_TEST_LEAF(-1, 1, 6, 4), TYR_TEST_LEAF(-1, 1, 6),
                          TYR_TEST_LEAF(-1, 1, 5, 6), TYR_TEST_LEAF(-1, 1, 5)};
    mlp_act = act;
    char name[64];
    snprintf(name, sizeof name, "mlp %s", names[a]);
    tyr_gradcheck(name, call_mlp_act, NULL, 5, gin, 1e-6, 1e-6);
    /* only some inputs requiring gradients (frozen w2, only x, only b2):
       those gradients and no others, as the three ops give them */
    const unsigned masks[] = {0x17, 0x01, 0x10}; /* bit i: input i requires grad */
    for (int m = 0; m < 3; m++) {
      TYR_SCOPE;
      double *g[2][5] = {{NULL}};
      for (int k = 0; k < 2; k++) {
        tyr_tensor *in[5];
        for (int i = 0; i < 5; i++) {
          in[i] = tyr_detach_e(gin[i]);
          if (masks[m] >> i & 1) tyr_requires_grad_e(in[i], true);
        }
        tyr_tensor *y =
            k ? tyr_linear_e(tyr_nn_act_at(TYR_SITE, act, tyr_linear_e(in[0], in[1], in[2])), in[3],
                             in[4])
              : tyr_mlp_e(in[0], in[1], in[2], in[3], in[4], act);
        assert_non_null(y);
        assert_int_equal(
            tyr_backward_with_at(TYR_SITE, y,
                                 tyr_ones_at(TYR_SITE, y->dtype, y->device, y->rank, y->shape)),
            0);
        for (int i = 0; i < 5; i++) {
          tyr_tensor *gi = in[i]->requires_grad ? tyr_grad_e(in[i]) : NULL;
          if ((gi != NULL) != (masks[m] >> i & 1))
            fail_msg("mlp %s, gradients of 0x%x: input %d %s a gradient", names[a], masks[m], i,
                     gi ? "has" : "lacks");
          g[k][i] = gi ? values(gi) : NULL;
        }
      }
      for (int i = 0; i < 5; i++) {
        if (!g[0][i]) continue;
        for (int64_t j = 0; j < tyr_numel(gin[i]); j++)
          ASSERT_CLOSE(g[0][i][j], g[1][i][j], 1e-13, 1e-13);
        free(g[0][i]);
        free(g[1][i]);
      }
    }
    for (int i = 0; i < 5; i++) tyr_tensor_free(gin[i]);
  }
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F64, 1.0, 3, 4), *w = RANDN(TYR_F64, 1.0, 4, 4);
  EXPECT_TYR_ERROR(tyr_mlp_e(x, w, NULL, w, NULL, (tyr_act_kind)17),
                   "tyr_mlp: act 17 is not a tyr_act_kind");
  EXPECT_TYR_ERROR(tyr_mlp_e(x, RANDN(TYR_F64, 1.0, 4, 3), NULL, w, NULL, TYR_ACT_RELU),
                   "tyr_mlp: x is [3, 4] and w1 is [4, 3]: w1 must be [hidden, in] with in the "
                   "last dim of x");
  /* x transposed: not a contiguous [M, C] operand, so the three ops */
  tyr_tensor *xt = tyr_transpose_e(RANDN(TYR_F64, 1.0, 4, 3), 0, 1);
  tyr_requires_grad_e(w, true);
  tyr_tensor *yt = tyr_mlp_e(xt, w, NULL, w, NULL, TYR_ACT_SILU);
  assert_string_equal(yt->grad_fn->op, "tyr_linear");
  tyr_tensor *rt = tyr_linear_e(tyr_silu_e(tyr_linear_e(xt, w, NULL)), w, NULL);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++)
      ASSERT_CLOSE(tyr_get_e(yt, i, j), tyr_get_e(rt, i, j), 1e-15, 1e-15);
}

static void test_mlp_gelu_tanh(void **state) {
  (void)state;
  tyr_tensor *in[5] = {TYR_TEST_LEAF(-1, 1, 2, 3, 4), TYR_TEST_LEAF(-1, 1, 6, 4),
                       TYR_TEST_LEAF(-1, 1, 6), TYR_TEST_LEAF(-1, 1, 5, 6),
                       TYR_TEST_LEAF(-1, 1, 5)};
  {
    TYR_SCOPE;
    tyr_tensor *y = tyr_mlp_gelu_tanh_e(in[0], in[1], in[2], in[3], in[4]);
    tyr_tensor *h = tyr_gelu_tanh_e(tyr_linear_e(in[0], in[1], in[2]));
    tyr_tensor *ref = tyr_linear_e(h, in[3], in[4]);
    assert_int_equal(y->rank, 3);
    assert_int_equal(y->shape[2], 5);
    for (int64_t i = 0; i < 2; i++)
      for (int64_t j = 0; j < 3; j++)
        for (int64_t k = 0; k < 5; k++)
          ASSERT_CLOSE(tyr_get_e(y, i, j, k), tyr_get_e(ref, i, j, k), 1e-15, 1e-15);
    /* errors name the op and the shapes */
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(in[0], in[3], NULL, in[3], NULL),
                     "tyr_mlp_gelu_tanh: x is [2, 3, 4] and w1 is [5, 6]: w1 must be [hidden, "
                     "in] with in the last dim of x");
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(in[0], in[1], NULL, in[1], NULL),
                     "tyr_mlp_gelu_tanh: w1 is [6, 4] and w2 is [6, 4]: w2 must be [out, hidden]");
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(in[0], in[1], in[4], in[3], NULL),
                     "tyr_mlp_gelu_tanh: b1 is [5]: it must be [6]");
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(in[0], in[1], in[2], in[3], in[2]),
                     "tyr_mlp_gelu_tanh: b2 is [6]: it must be [5]");
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(in[0], tyr_to_dtype_e(in[1], TYR_F32), NULL, in[3], NULL),
                     "tyr_mlp_gelu_tanh");
    EXPECT_TYR_ERROR(tyr_mlp_gelu_tanh_e(NULL, in[1], NULL, in[3], NULL),
                     "tyr_mlp_gelu_tanh: x is NULL");
  }
  tyr_gradcheck("mlp_gelu_tanh", call_mlp, NULL, 5, in, 1e-6, 1e-6);
  tyr_tensor *nb[3] = {in[0], in[1], in[3]};
  tyr_gradcheck("mlp_gelu_tanh, no biases", call_mlp_no_bias, NULL, 3, nb, 1e-6, 1e-6);
  for (int i = 0; i < 5; i++) tyr_tensor_free(in[i]);
}

static tyr_tensor *call_mse(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_mse_loss_e(in[0], in[1]);
}

static void test_mse_loss(void **state) {
  (void)state;
  tyr_tensor *in[2] = {TYR_TEST_LEAF(-1, 1, 3, 4), TYR_TEST_LEAF(-1, 1, 3, 4)};
  {
    TYR_SCOPE;
    tyr_tensor *l = tyr_mse_loss_e(in[0], in[1]);
    assert_int_equal(l->rank, 0);
    double ref = 0;
    for (int64_t i = 0; i < 3; i++)
      for (int64_t j = 0; j < 4; j++) {
        double d = tyr_get_e(in[0], i, j) - tyr_get_e(in[1], i, j);
        ref += d * d / 12;
      }
    ASSERT_CLOSE(tyr_item_e(l), ref, 1e-12, 1e-12);
    tyr_tensor *o = tyr_zeros_at(TYR_SITE, TYR_F64, CPU, 2, (int64_t[]){4, 3});
    EXPECT_TYR_ERROR(tyr_mse_loss_e(in[0], o),
                     "tyr_mse_loss: operands have different shapes [3, 4] and [4, 3]");
    tyr_tensor *f = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){3, 4});
    EXPECT_TYR_ERROR(tyr_mse_loss_e(in[0], f), "tyr_mse_loss: operands have different dtypes");
  }
  tyr_gradcheck("mse_loss", call_mse, NULL, 2, in, 1e-6, 1e-6);
  tyr_tensor_free(in[0]);
  tyr_tensor_free(in[1]);
}

/* ---- layer norm, rms norm ---------------------------------------------------------- */
static void ref_norm(const double *x, const double *w, const double *b, double *y, int64_t rows,
                     int64_t C, double eps, bool rms) {
  for (int64_t r = 0; r < rows; r++) {
    double mu = 0, var = 0;
    if (!rms) {
      for (int64_t c = 0; c < C; c++) mu += x[r * C + c];
      mu /= (double)C;
    }
    for (int64_t c = 0; c < C; c++) var += (x[r * C + c] - mu) * (x[r * C + c] - mu);
    var /= (double)C;
    for (int64_t c = 0; c < C; c++)
      y[r * C + c] = (x[r * C + c] - mu) / sqrt(var + eps) * (w ? w[c] : 1) + (b ? b[c] : 0);
  }
}

static void test_norm_values(void **state) {
  (void)state;
  for (int dt = 0; dt < 2; dt++)
    for (int variant = 0; variant < 4; variant++) {
      TYR_SCOPE;
      tyr_dtype d = dt ? TYR_F64 : TYR_F32;
      tyr_tensor *x = RANDN(d, 2.0, 2, 3, 7), *w = RANDN(d, 1.0, 7), *b = RANDN(d, 1.0, 7);
      x = tyr_add_scalar_e(x, 0.5);
      double *xv = values(x), *wv = values(w), *bv = values(b), ref[42];
      bool rms = variant >= 2, params = variant % 2;
      tyr_tensor *y = rms ? tyr_rms_norm_e(x, params ? w : NULL, 1e-5)
                          : tyr_layer_norm_e(x, params ? w : NULL, params ? b : NULL, 1e-5);
      assert_non_null(y);
      ref_norm(xv, params ? wv : NULL, params && !rms ? bv : NULL, ref, 6, 7, 1e-5, rms);
      expect_values(y, ref, dt ? 1e-12 : 1e-5, dt ? 1e-10 : 1e-5, rms ? "rms_norm" : "layer_norm");
      free(xv);
      free(wv);
      free(bv);
    }
  /* w only, b only */
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F64, 1.0, 4, 5), *b = RANDN(TYR_F64, 1.0, 5);
  double *xv = values(x), *bv = values(b), ref[20];
  ref_norm(xv, NULL, bv, ref, 4, 5, 1e-6, false);
  expect_values(tyr_layer_norm_e(x, NULL, b, 1e-6), ref, 1e-12, 1e-10, "layer_norm b only");
  free(xv);
  free(bv);
}

typedef struct {
  int variant; /* 0 ln(x, w, b), 1 ln(x), 2 ln(x, NULL, b), 3 rms(x, w), 4 rms(x) */
} norm_ctx;
static tyr_tensor *call_norm(tyr_tensor **in, void *ctx) {
  switch (((norm_ctx *)ctx)->variant) {
  case 0:
    return tyr_layer_norm_e(in[0], in[1], in[2], 1e-5);
  case 1:
    return tyr_layer_norm_e(in[0], NULL, NULL, 1e-5);
  case 2:
    return tyr_layer_norm_e(in[0], NULL, in[2], 1e-5);
  case 3:
    return tyr_rms_norm_e(in[0], in[1], 1e-5);
  default:
    return tyr_rms_norm_e(in[0], NULL, 1e-5);
  }
}

static void test_norm_gradients(void **state) {
  (void)state;
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-2, 2, 2, 3, 5), TYR_TEST_LEAF(0.5, 1.5, 5),
                       TYR_TEST_LEAF(-1, 1, 5)};
  const char *names[] = {"layer_norm(x, w, b)", "layer_norm(x)", "layer_norm(x, NULL, b)",
                         "rms_norm(x, w)", "rms_norm(x)"};
  /* which of x, w, b each variant uses */
  const bool uses[5][3] = {{1, 1, 1}, {1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {1, 0, 0}};
  for (int v = 0; v < 5; v++) {
    norm_ctx c = {v};
    for (int i = 1; i < 3; i++) tyr_requires_grad_e(in[i], uses[v][i]);
    tyr_gradcheck(names[v], call_norm, &c, 3, in, 1e-6, 1e-5);
  }
  for (int i = 1; i < 3; i++) tyr_requires_grad_e(in[i], true);
  /* only w needs a gradient */
  tyr_requires_grad_e(in[0], false);
  norm_ctx c = {0};
  tyr_gradcheck("layer_norm, grad of w and b only", call_norm, &c, 3, in, 1e-6, 1e-5);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
}

/* Layer norm's weight and bias gradients at a size whose column sums the
 * CPU splits between threads by runs of columns (130 columns: three runs):
 * gb = gy summed over rows, gw = gy x^ summed over rows, x^ the plain
 * normalised x, in f64 and f32. */
static void test_norm_param_grads_parallel(void **state) {
  (void)state;
  for (int dt = 0; dt < 2; dt++) {
    TYR_SCOPE;
    tyr_dtype fdt = dt ? TYR_F64 : TYR_F32;
    double tol = dt ? 1e-10 : 1e-4;
    tyr_tensor *x = RANDN(fdt, 1.0, 4, 50, 130), *gy = RANDN(fdt, 1.0, 4, 50, 130);
    tyr_tensor *w = RANDN(fdt, 1.0, 130), *b = RANDN(fdt, 1.0, 130);
    tyr_requires_grad_e(w, true);
    tyr_requires_grad_e(b, true);
    tyr_tensor *y = tyr_layer_norm_e(x, w, b, 1e-5);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(y, gy))), 0);
    tyr_tensor *xh = tyr_reshape_e(tyr_layer_norm_e(x, NULL, NULL, 1e-5), 200, 130);
    tyr_tensor *g2 = tyr_reshape_e(gy, 200, 130);
    double *gw = values(tyr_sum_dim_e(tyr_mul_e(g2, xh), 0, false));
    double *gb = values(tyr_sum_dim_e(g2, 0, false));
    expect_values(tyr_grad_e(w), gw, tol, tol, "layer_norm dw, parallel");
    expect_values(tyr_grad_e(b), gb, tol, tol, "layer_norm db, parallel");
    free(gw);
    free(gb);
  }
}

static void test_norm_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 2, 3, 4), *w3 = RANDN(TYR_F32, 1.0, 3),
             *w4 = RANDN(TYR_F32, 1.0, 4);
  tyr_tensor *w4d = RANDN(TYR_F64, 1.0, 4);
  EXPECT_TYR_ERROR(tyr_layer_norm_e(x, w3, NULL, 1e-5),
                   "tyr_layer_norm: x is [2, 3, 4], so w must be [4], but it is [3]");
  EXPECT_TYR_ERROR(tyr_layer_norm_e(x, w4, w3, 1e-5),
                   "tyr_layer_norm: x is [2, 3, 4], so b must be [4], but it is [3]");
  EXPECT_TYR_ERROR(tyr_rms_norm_e(x, w3, 1e-5), "tyr_rms_norm: x is [2, 3, 4], so w must be [4]");
  EXPECT_TYR_ERROR(tyr_rms_norm_e(x, w4d, 1e-5), "tyr_rms_norm: operands have different dtypes");
  EXPECT_TYR_ERROR(tyr_layer_norm_e(x, w4, NULL, -1),
                   "tyr_layer_norm: eps must be finite and >= 0");
  EXPECT_TYR_ERROR(tyr_rms_norm_e(x, NULL, NAN), "tyr_rms_norm: eps must be finite and >= 0");
  tyr_tensor *sc = tyr_full_at(TYR_SITE, TYR_F32, CPU, 0, NULL, 1.0);
  EXPECT_TYR_ERROR(tyr_layer_norm_e(sc, NULL, NULL, 1e-5), "tyr_layer_norm: x must have rank >= 1");
}

/* tyr_layer_norm_to and tyr_rms_norm_to equal the norm (in f32 for 16-bit
 * x) followed by tyr_to_dtype bit for bit, values and the gradients of x, w
 * and b (CUDA's fused store is checked against its own composition in
 * test_cuda_ops). */
static void expect_same_bits(tyr_tensor *got, tyr_tensor *want, const char *what) {
  assert_int_equal(got->dtype, want->dtype);
  assert_int_equal(tyr_numel(got), tyr_numel(want));
  double *a = values(got), *b = values(want);
  for (int64_t i = 0; i < tyr_numel(got); i++)
    if (a[i] != b[i]) {
      double av = a[i], bv = b[i];
      free(a);
      free(b);
      fail_msg("%s: element %lld is %.9g, the composition's %.9g", what, (long long)i, av, bv);
    }
  free(a);
  free(b);
}

static void test_norm_to(void **state) {
  (void)state;
  const tyr_dtype pairs[][2] = {{TYR_F32, TYR_BF16}, {TYR_F32, TYR_F16},  {TYR_F64, TYR_F32},
                                {TYR_F32, TYR_F32},  {TYR_BF16, TYR_F32}, {TYR_BF16, TYR_F16},
                                {TYR_F16, TYR_F64}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
    for (int rms = 0; rms < 2; rms++) {
      TYR_SCOPE;
      tyr_dtype xdt = pairs[k][0], odt = pairs[k][1];
      tyr_tensor *in1[3] = {RANDN(xdt, 2.0, 2, 3, 40), RANDN(xdt, 1.0, 40), RANDN(xdt, 1.0, 40)};
      tyr_tensor *in2[3];
      for (int i = 0; i < 3; i++) {
        in2[i] = tyr_requires_grad_e(tyr_clone_e(in1[i]), true);
        tyr_requires_grad_e(in1[i], true);
      }
      tyr_tensor *y1 = rms ? tyr_rms_norm_to_e(in1[0], in1[1], 1e-5, odt)
                           : tyr_layer_norm_to_e(in1[0], in1[1], in1[2], 1e-5, odt);
      /* the composition in the kernels' dtype: f32 for 16-bit x */
      tyr_dtype kdt = xdt == TYR_BF16 || xdt == TYR_F16 ? TYR_F32 : xdt;
      tyr_tensor *k2[3];
      for (int i = 0; i < 3; i++) k2[i] = tyr_to_dtype_e(in2[i], kdt);
      tyr_tensor *y2 = tyr_to_dtype_e(rms ? tyr_rms_norm_e(k2[0], k2[1], 1e-5)
                                          : tyr_layer_norm_e(k2[0], k2[1], k2[2], 1e-5),
                                      odt);
      char what[96];
      snprintf(what, sizeof what, "%s_to %s -> %s", rms ? "rms_norm" : "layer_norm",
               tyr_dtype_name(xdt), tyr_dtype_name(odt));
      expect_same_bits(y1, y2, what);
      tyr_tensor *g = RANDN(odt, 1.0, 2, 3, 40);
      assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(y1, g))), 0);
      assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(y2, g))), 0);
      const char *names[3] = {"dx", "dw", "db"};
      for (int i = 0; i < 3 - rms; i++) {
        char w2[128];
        snprintf(w2, sizeof w2, "%s, %s", what, names[i]);
        expect_same_bits(tyr_grad_e(in1[i]), tyr_grad_e(in2[i]), w2);
      }
    }
  /* the module form, and errors naming the op */
  TYR_SCOPE;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_norm ln;
  assert_int_equal(
      tyr_nn_norm_init_at(TYR_SITE, &ln, &ps, "ln", TYR_NORM_LAYER, 4, true, true, 1e-5), 0);
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 2, 3, 4), *w3 = RANDN(TYR_F32, 1.0, 3);
  tyr_tensor *h = tyr_nn_norm_forward_to(&ln, x, TYR_BF16);
  assert_int_equal(h->dtype, TYR_BF16);
  expect_same_bits(h, tyr_to_dtype_e(tyr_nn_norm_forward(&ln, x), TYR_BF16), "module norm_to");
  EXPECT_TYR_ERROR(tyr_layer_norm_to_e(x, NULL, NULL, 1e-5, TYR_I64),
                   "tyr_layer_norm_to: the result's dtype must be a float dtype, got i64");
  EXPECT_TYR_ERROR(tyr_rms_norm_to_e(x, NULL, 1e-5, (tyr_dtype)99),
                   "tyr_rms_norm_to: the result's dtype must be a float dtype, got invalid-dtype");
  EXPECT_TYR_ERROR(tyr_layer_norm_to_e(x, w3, NULL, 1e-5, TYR_BF16),
                   "tyr_layer_norm_to: x is [2, 3, 4], so w must be [4], but it is [3]");
  EXPECT_TYR_ERROR(tyr_rms_norm_to_e(x, NULL, -1, TYR_BF16),
                   "tyr_rms_norm_to: eps must be finite and >= 0");
  /* the typed forms */
  enum { N = 3, C = 4 };
  tyr_T(N, C) xt = tyr_randn(N, C);
  tyr_T(C) wt = tyr_ones(C);
  tyr_T(N, C) a = tyr_layer_norm_to(xt, wt, NULL, 1e-5, TYR_BF16);
  tyr_T(N, C) r = tyr_rms_norm_to(xt, NULL, 1e-6, TYR_F16);
  assert_int_equal(tyr_erase(a)->dtype, TYR_BF16);
  assert_int_equal(tyr_erase(r)->dtype, TYR_F16);
  tyr_params_free(&ps);
}

/* Calls of the forward phase's kernel `kernel` ("binary add", "layer_norm")
   in the profiler's table. */
static double forward_calls(const char *kernel) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  tyr_profile_print(f, 1);
  fclose(f);
  double calls = 0;
  bool in_forward = false;
  size_t kl = strlen(kernel);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char name[64];
    double ms, pct, c;
    if (sscanf(line, " %63s", name) == 1 && line[2] != ' ') in_forward = !strcmp(name, "forward");
    const char *t = line + strspn(line, " ");
    if (in_forward && !strncmp(t, kernel, kl) && t[kl] == ' ' &&
        sscanf(t + kl, " %lf %lf %lf", &ms, &pct, &c) == 3)
      calls += c;
  }
  free(buf);
  return calls;
}

/* tyr_residual_add_layer_norm_to and tyr_residual_add_rms_norm_to against
 * tyr_residual_add followed by the norm: the sum, the norm's result and
 * the gradients of x, y, w and b (both results used, as a residual stream
 * uses them) bit for bit, for x, y and the result in every dtype mix a
 * model meets (16-bit y beside f32 x is widened as the addition would;
 * 16-bit x, which the CPU normalises in f32, takes the addition first);
 * one layer_norm call and no addition in the forward where the kernel
 * makes the sum; a size the CPU splits between threads. */
static void test_residual_add_norm(void **state) {
  (void)state;
  const tyr_dtype mixes[][3] = {{TYR_F32, TYR_F32, TYR_F32},   {TYR_F32, TYR_F32, TYR_BF16},
                                {TYR_F32, TYR_BF16, TYR_BF16}, {TYR_F64, TYR_F64, TYR_F32},
                                {TYR_F64, TYR_F32, TYR_F64},   {TYR_BF16, TYR_BF16, TYR_F32},
                                {TYR_F16, TYR_F16, TYR_F16}};
  const int64_t shapes[][3] = {{2, 3, 40}, {4, 64, 72}};
  for (size_t k = 0; k < sizeof mixes / sizeof mixes[0]; k++)
    for (int sh = 0; sh < 2; sh++)
      for (int v = 0; v < 3; v++) { /* layer norm with w and b, without, RMS norm with w */
        TYR_SCOPE;
        tyr_dtype xdt = mixes[k][0], ydt = mixes[k][1], odt = mixes[k][2];
        const int64_t *S = shapes[sh];
        bool rms = v == 2, affine = v != 1;
        tyr_tensor *in1[4] = {randn(xdt, 3, S, 2.0), randn(ydt, 3, S, 1.0),
                              randn(xdt, 1, &S[2], 1.0), randn(xdt, 1, &S[2], 1.0)};
        tyr_tensor *in2[4];
        for (int i = 0; i < 4; i++) {
          in2[i] = tyr_requires_grad_e(tyr_clone_e(in1[i]), true);
          tyr_requires_grad_e(in1[i], true);
        }
        tyr_tensor *w1 = affine ? in1[2] : NULL, *b1 = affine && !rms ? in1[3] : NULL;
        tyr_tensor *w2 = affine ? in2[2] : NULL, *b2 = affine && !rms ? in2[3] : NULL;
        tyr_profile_enable(true);
        tyr_profile_reset();
        tyr_tensor *sum1 = NULL;
        tyr_tensor *h1 =
            rms ? tyr_residual_add_rms_norm_to_e(in1[0], in1[1], w1, 1e-5, odt, &sum1)
                : tyr_residual_add_layer_norm_to_e(in1[0], in1[1], w1, b1, 1e-5, odt, &sum1);
        double adds = forward_calls("binary add"), norms = forward_calls("layer_norm");
        tyr_profile_enable(false);
        assert_non_null(h1);
        assert_non_null(sum1);
        tyr_tensor *sum2 = tyr_residual_add_e(in2[0], in2[1]);
        tyr_tensor *h2 = rms ? tyr_rms_norm_to_e(sum2, w2, 1e-5, odt)
                             : tyr_layer_norm_to_e(sum2, w2, b2, 1e-5, odt);
        char what[128];
        snprintf(what, sizeof what, "residual_add_%s_norm_to x %s y %s -> %s, [%lld, %lld, %lld]%s",
                 rms ? "rms" : "layer", tyr_dtype_name(xdt), tyr_dtype_name(ydt),
                 tyr_dtype_name(odt), (long long)S[0], (long long)S[1], (long long)S[2],
                 affine ? "" : " without w, b");
        expect_same_bits(sum1, sum2, what);
        expect_same_bits(h1, h2, what);
        bool fused = xdt == TYR_F32 || xdt == TYR_F64; /* the CPU normalises 16-bit x in f32 */
        if (norms != 1 || adds != (fused ? 0 : 1))
          fail_msg("%s: %g layer_norm and %g binary add calls in the forward, expected 1 and %d",
                   what, norms, adds, fused ? 0 : 1);
        tyr_tensor *gh = randn(odt, 3, S, 1.0), *gs = randn(xdt, 3, S, 1.0);
        assert_int_equal(
            tyr_backward_e(tyr_add_e(tyr_sum_e(tyr_to_dtype_e(tyr_mul_e(h1, gh), TYR_F64)),
                                     tyr_sum_e(tyr_to_dtype_e(tyr_mul_e(sum1, gs), TYR_F64)))),
            0);
        assert_int_equal(
            tyr_backward_e(tyr_add_e(tyr_sum_e(tyr_to_dtype_e(tyr_mul_e(h2, gh), TYR_F64)),
                                     tyr_sum_e(tyr_to_dtype_e(tyr_mul_e(sum2, gs), TYR_F64)))),
            0);
        const char *names[4] = {"dx", "dy", "dw", "db"};
        for (int i = 0; i < 4; i++) {
          if ((i == 2 && !w1) || (i == 3 && !b1)) continue;
          char w2n[160];
          snprintf(w2n, sizeof w2n, "%s, %s", what, names[i]);
          expect_same_bits(tyr_grad_e(in1[i]), tyr_grad_e(in2[i]), w2n);
        }
      }
  /* the module form, the typed form, and errors naming the op */
  TYR_SCOPE;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_norm ln;
  assert_int_equal(
      tyr_nn_norm_init_at(TYR_SITE, &ln, &ps, "ln", TYR_NORM_RMS, 4, true, false, 1e-6), 0);
  tyr_tensor *x = RANDN(TYR_F32, 1.0, 2, 3, 4), *y = RANDN(TYR_F32, 1.0, 2, 3, 4);
  tyr_tensor *sum = NULL, *h = tyr_nn_norm_residual_forward_to(&ln, x, y, TYR_BF16, &sum);
  tyr_tensor *xy = tyr_residual_add_e(x, y);
  expect_same_bits(sum, xy, "module norm_residual_to, sum");
  expect_same_bits(h, tyr_nn_norm_forward_to(&ln, xy, TYR_BF16), "module norm_residual_to");
  tyr_tensor *y3 = RANDN(TYR_F32, 1.0, 2, 4, 3), *w3 = RANDN(TYR_F32, 1.0, 3);
  tyr_tensor *yi = tyr_zeros_at(TYR_SITE, TYR_I32, CPU, 3, (int64_t[]){2, 3, 4});
  sum = x;
  EXPECT_TYR_ERROR(tyr_residual_add_layer_norm_to_e(x, y3, NULL, NULL, 1e-5, TYR_F32, &sum),
                   "tyr_residual_add_layer_norm_to: operands have different shapes");
  assert_null(sum);
  EXPECT_TYR_ERROR(tyr_residual_add_rms_norm_to_e(x, yi, NULL, 1e-5, TYR_F32, &sum),
                   "tyr_residual_add_rms_norm_to: y must be a floating dtype, not i32");
  EXPECT_TYR_ERROR(
      tyr_residual_add_layer_norm_to_e(x, y, w3, NULL, 1e-5, TYR_F32, &sum),
      "tyr_residual_add_layer_norm_to: x is [2, 3, 4], so w must be [4], but it is [3]");
  EXPECT_TYR_ERROR(tyr_residual_add_rms_norm_to_e(x, y, NULL, 1e-5, TYR_F32, NULL),
                   "tyr_residual_add_rms_norm_to: sum (where x + y is returned) is NULL");
  EXPECT_TYR_ERROR(tyr_residual_add_layer_norm_to_e(x, NULL, NULL, NULL, 1e-5, TYR_F32, &sum),
                   "tyr_residual_add_layer_norm_to: y is NULL");
  enum { N = 3, C = 4 };
  tyr_T(N, C) xt = tyr_randn(N, C), yt = tyr_randn(N, C), st;
  tyr_T(C) wt = tyr_ones(C);
  tyr_T(N, C) a = tyr_residual_add_layer_norm_to(xt, yt, wt, NULL, 1e-5, TYR_BF16, &st);
  assert_int_equal(tyr_erase(a)->dtype, TYR_BF16);
  expect_same_bits(tyr_erase(st), tyr_residual_add_e(tyr_erase(xt), tyr_erase(yt)), "typed sum");
  tyr_T(N, C) r = tyr_residual_add_rms_norm_to(xt, yt, NULL, 1e-6, TYR_F32, &st);
  expect_same_bits(tyr_erase(r), tyr_rms_norm_e(tyr_erase(st), NULL, 1e-6), "typed rms");
  tyr_params_free(&ps);
}

/* ---- dropout ------------------------------------------------------------------------- */
static void test_dropout_mask(void **state) {
  (void)state;
  TYR_SCOPE;
  const int64_t n = 20000;
  const double p = 0.3;
  tyr_tensor *x = tyr_ones_at(TYR_SITE, TYR_F32, CPU, 1, &n);
  tyr_manual_seed(42);
  tyr_tensor *y1 = tyr_dropout_e(x, p, true);
  tyr_manual_seed(42);
  tyr_set_num_threads(1);
  tyr_tensor *y2 = tyr_dropout_e(x, p, true);
  tyr_set_num_threads(2);
  tyr_tensor *y3 = tyr_dropout_e(x, p, true); /* the generator moved on: another mask */
  double *v1 = values(y1), *v2 = values(y2), *v3 = values(y3);
  int64_t zeros = 0, differ = 0;
  for (int64_t i = 0; i < n; i++) {
    assert_true(v1[i] == v2[i]); /* same seed, any thread count: same mask */
    if (v1[i] != v3[i]) differ++;
    if (v1[i] == 0) {
      zeros++;
    } else {
      ASSERT_CLOSE(v1[i], 1.0 / (1 - p), 1e-6, 0);
    }
    /* the mask is the documented function of (seed, counter): every backend
       that draws it from the same Philox stream gives the same one */
    bool keep = (double)tyr_philox_uniform(42, (uint64_t)i) > p;
    assert_int_equal(keep, v1[i] != 0);
  }
  double rate = (double)zeros / (double)n;
  if (fabs(rate - p) > 0.015) fail_msg("dropout rate %.4f, expected %.2f", rate, p);
  assert_true(differ > n / 10);
  free(v1);
  free(v2);
  free(v3);
  /* not training, or p == 0: the input itself */
  tyr_tensor *r = RANDN(TYR_F64, 1.0, 3, 4);
  tyr_tensor *e1 = tyr_dropout_e(r, 0.5, false), *e2 = tyr_dropout_e(r, 0.0, true);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++) {
      assert_true(tyr_get_e(e1, i, j) == tyr_get_e(r, i, j));
      assert_true(tyr_get_e(e2, i, j) == tyr_get_e(r, i, j));
    }
  EXPECT_TYR_ERROR(tyr_dropout_e(r, 1.0, true), "tyr_dropout: p must be in [0, 1), got 1");
  EXPECT_TYR_ERROR(tyr_dropout_e(r, -0.1, true), "tyr_dropout: p must be in [0, 1), got -0.1");
  EXPECT_TYR_ERROR(tyr_dropout_e(r, NAN, false), "tyr_dropout: p must be in [0, 1)");
}

static tyr_tensor *call_dropout(tyr_tensor **in, void *ctx) {
  tyr_manual_seed(7); /* the same mask on every call */
  return tyr_dropout_e(in[0], *(double *)ctx, true);
}
static tyr_tensor *call_dropout_eval(tyr_tensor **in, void *ctx) {
  return tyr_dropout_e(in[0], *(double *)ctx, false);
}

static void test_dropout_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 4, 5);
  double p = 0.4;
  tyr_gradcheck("dropout", call_dropout, &p, 1, &x, 1e-6, 1e-6);
  tyr_gradcheck("dropout (eval)", call_dropout_eval, &p, 1, &x, 1e-6, 1e-6);
  /* the gradient is the mask itself */
  {
    TYR_SCOPE;
    tyr_manual_seed(3);
    tyr_tensor *y = tyr_dropout_e(x, p, true);
    tyr_backward_e(tyr_sum_e(y));
    for (int64_t i = 0; i < 4; i++)
      for (int64_t j = 0; j < 5; j++) {
        double yv = tyr_get_e(y, i, j), xv = tyr_get_e(x, i, j);
        ASSERT_CLOSE(tyr_get_e(tyr_grad_e(x), i, j), yv == 0 ? 0 : 1 / (1 - p), 1e-12, 0);
        if (yv != 0) ASSERT_CLOSE(yv, xv / (1 - p), 1e-12, 1e-12);
      }
    tyr_zero_grad_e(x);
  }
  tyr_tensor_free(x);
}

/* ---- rotary -------------------------------------------------------------------------- */
static void test_rotary_values(void **state) {
  (void)state;
  enum { B = 2, H = 3, T = 5, D = 8 };
  for (int dt = 0; dt < 2; dt++) {
    TYR_SCOPE;
    tyr_dtype d = dt ? TYR_F64 : TYR_F32;
    tyr_tensor *c, *s;
    assert_int_equal(tyr_rotary_tables_at(TYR_SITE, T, D, 0, d, CPU, &c, &s), 0);
    assert_int_equal(c->rank, 2);
    assert_int_equal(c->shape[0], T);
    assert_int_equal(c->shape[1], D / 2);
    for (int64_t t = 0; t < T; t++)
      for (int64_t i = 0; i < D / 2; i++) {
        double ang = (double)t * pow(10000.0, -2.0 * (double)i / D);
        ASSERT_CLOSE(tyr_get_e(c, t, i), cos(ang), dt ? 1e-15 : 1e-7, 0);
        ASSERT_CLOSE(tyr_get_e(s, t, i), sin(ang), dt ? 1e-15 : 1e-7, 0);
      }
    tyr_tensor *x = RANDN(d, 1.0, B, H, T, D);
    tyr_tensor *y = tyr_rotary_e(x, c, s);
    assert_non_null(y);
    double *xv = values(x), *yv = values(y), *cv = values(c), *sv = values(s);
    for (int64_t r = 0; r < B * H * T; r++) {
      int64_t t = r % T;
      for (int64_t i = 0; i < D / 2; i++) {
        double x1 = xv[r * D + i], x2 = xv[r * D + i + D / 2];
        double cc = cv[t * D / 2 + i], ss = sv[t * D / 2 + i];
        ASSERT_CLOSE(yv[r * D + i], x1 * cc - x2 * ss, dt ? 1e-12 : 1e-6, 0);
        ASSERT_CLOSE(yv[r * D + i + D / 2], x2 * cc + x1 * ss, dt ? 1e-12 : 1e-6, 0);
      }
    }
    free(xv);
    free(yv);
    free(cv);
    free(sv);
    /* another base */
    tyr_tensor *c2, *s2;
    assert_int_equal(tyr_rotary_tables_at(TYR_SITE, 3, 4, 500.0, d, CPU, &c2, &s2), 0);
    ASSERT_CLOSE(tyr_get_e(s2, 2, 1), sin(2 * pow(500.0, -0.5)), 1e-7, 0);
  }
}

static tyr_tensor *g_cos, *g_sin;
static tyr_tensor *call_rotary(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_rotary_e(in[0], g_cos, g_sin);
}

static void test_rotary_gradients_and_errors(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 1, 2, 3, 4);
  tyr_scope_begin();
  assert_int_equal(tyr_rotary_tables_at(TYR_SITE, 3, 4, 0, TYR_F64, CPU, &g_cos, &g_sin), 0);
  tyr_gradcheck("rotary", call_rotary, NULL, 1, &x, 1e-6, 1e-6);
  /* a rotation keeps norms, and the backward undoes the forward */
  {
    TYR_SCOPE;
    tyr_tensor *y = tyr_rotary_e(x, g_cos, g_sin);
    ASSERT_CLOSE(tyr_item_e(tyr_sum_e(tyr_square_e(y))), tyr_item_e(tyr_sum_e(tyr_square_e(x))),
                 1e-12, 1e-12);
    tyr_backward_with_at(TYR_SITE, y, y);
    tyr_tensor *g = tyr_grad_e(x);
    for (int64_t i = 0; i < 24; i++)
      ASSERT_CLOSE(((double *)tyr_data_ptr(g))[i], ((double *)tyr_data_ptr(x))[i], 1e-12, 0);
    tyr_zero_grad_e(x);
  }
  tyr_tensor *c, *s, *xf = RANDN(TYR_F32, 1.0, 1, 2, 3, 6), *x3 = RANDN(TYR_F64, 1.0, 2, 3, 4);
  tyr_tensor *x5 = RANDN(TYR_F64, 1.0, 1, 1, 3, 5);
  EXPECT_TYR_ERROR(tyr_rotary_e(x3, g_cos, g_sin),
                   "tyr_rotary: x must be [B, H, T, D] with D even, but it is [2, 3, 4]");
  EXPECT_TYR_ERROR(tyr_rotary_e(x5, g_cos, g_sin), "with D even, but it is [1, 1, 3, 5]");
  EXPECT_TYR_ERROR(tyr_rotary_e(xf, g_cos, g_sin), "tyr_rotary: operands have different dtypes");
  tyr_rotary_tables_at(TYR_SITE, 3, 4, 0, TYR_F32, CPU, &c, &s);
  EXPECT_TYR_ERROR(
      tyr_rotary_e(xf, c, s),
      "tyr_rotary: x is [1, 2, 3, 6], so cos and sin must be [3, 3], but cos is [3, 2]");
  tyr_tensor *x4 = RANDN(TYR_F64, 1.0, 1, 1, 4, 4);
  EXPECT_TYR_ERROR(tyr_rotary_e(x4, g_cos, g_sin),
                   "so cos and sin must be [4, 2], but cos is [3, 2]");
  tyr_tensor *lc = TYR_TEST_LEAF(-1, 1, 3, 2);
  EXPECT_TYR_ERROR(tyr_rotary_e(x, lc, g_sin),
                   "tyr_rotary: the cos and sin tables take no gradient, but cos requires grad");
  tyr_tensor_free(lc);
  tyr_tensor *c0 = NULL, *s0 = NULL;
  EXPECT_TYR_ERROR(tyr_rotary_tables_at(TYR_SITE, 3, 5, 0, TYR_F32, CPU, &c0, &s0),
                   "tyr_rotary_tables: need T >= 0 and an even D > 0, got T 3, D 5");
  assert_null(c0);
  EXPECT_TYR_ERROR(tyr_rotary_tables_at(TYR_SITE, 3, 4, 0, TYR_I32, CPU, &c0, &s0),
                   "tyr_rotary_tables: dtype must be floating, not i32");
  tyr_scope_end();
  tyr_tensor_free(x);
}

/* ---- attention ------------------------------------------------------------------------ */
/* Naive reference in double: softmax(q k^T * scale + masks) v. */
static void ref_sdpa(const double *q, const double *k, const double *v, const uint8_t *mask,
                     double *out, int64_t B, int64_t Hq, int64_t Hkv, int64_t T, int64_t S,
                     int64_t D, bool causal, int64_t window, double scale) {
  int64_t G = Hq / Hkv;
  double *p = malloc((size_t)S * sizeof(double));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t i = 0; i < T; i++) {
        const double *qi = q + ((b * Hq + h) * T + i) * D;
        const double *K = k + (b * Hkv + h / G) * S * D, *V = v + (b * Hkv + h / G) * S * D;
        double *o = out + ((b * Hq + h) * T + i) * D;
        int64_t pos = i + S - T;
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; j++) {
          bool ok = (!mask || mask[i * S + j]) && (!(causal || window > 0) || j <= pos) &&
                    (window <= 0 || j > pos - window);
          p[j] = -INFINITY;
          if (!ok) continue;
          double sc = 0;
          for (int64_t d = 0; d < D; d++) sc += qi[d] * K[j * D + d];
          p[j] = sc * scale;
          mx = fmax(mx, p[j]);
        }
        for (int64_t d = 0; d < D; d++) o[d] = 0;
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (int64_t j = 0; j < S; j++) sum += p[j] == -INFINITY ? 0 : exp(p[j] - mx);
        for (int64_t j = 0; j < S; j++) {
          if (p[j] == -INFINITY) continue;
          double w = exp(p[j] - mx) / sum;
          for (int64_t d = 0; d < D; d++) o[d] += w * V[j * D + d];
        }
      }
  free(p);
}

typedef struct {
  int64_t B, Hq, Hkv, T, S, D;
} attn_dims;

/* A random [T, S] mask with every k-th entry false, and some rows empty. */
static tyr_tensor *make_mask(int64_t T, int64_t S, uint8_t *buf, bool empty_row) {
  for (int64_t i = 0; i < T * S; i++) buf[i] = (i * 7 + 3) % 5 != 0;
  if (empty_row)
    for (int64_t j = 0; j < S; j++) buf[(T - 1) * S + j] = 0;
  return tyr_from_host_at(TYR_SITE, buf, TYR_BOOL, CPU, 2, (int64_t[]){T, S});
}

static void check_sdpa(tyr_dtype dt, attn_dims a, bool causal, bool use_mask, int64_t window,
                       double scale, bool empty_row) {
  TYR_SCOPE;
  tyr_tensor *q = RANDN(dt, 1.0, a.B, a.Hq, a.T, a.D);
  tyr_tensor *k = RANDN(dt, 1.0, a.B, a.Hkv, a.S, a.D);
  tyr_tensor *v = RANDN(dt, 1.0, a.B, a.Hkv, a.S, a.D);
  uint8_t *mb = malloc((size_t)(a.T * a.S));
  tyr_tensor *mask = use_mask ? make_mask(a.T, a.S, mb, empty_row) : NULL;
  tyr_sdpa_opts o = {causal, mask, window, scale, NULL};
  tyr_tensor *out = tyr_sdpa_e(q, k, v, &o);
  assert_non_null(out);
  assert_int_equal(out->dtype, dt);
  double *qv = values(q), *kv = values(k), *vv = values(v);
  int64_t n = tyr_numel(out);
  double *ref = malloc((size_t)n * sizeof(double));
  ref_sdpa(qv, kv, vv, use_mask ? mb : NULL, ref, a.B, a.Hq, a.Hkv, a.T, a.S, a.D, causal, window,
           scale ? scale : 1 / sqrt((double)a.D));
  char what[200];
  snprintf(what, sizeof what,
           "sdpa %s B%lld Hq%lld Hkv%lld T%lld S%lld D%lld causal %d mask %d "
           "window %lld scale %g",
           tyr_dtype_name(dt), (long long)a.B, (long long)a.Hq, (long long)a.Hkv, (long long)a.T,
           (long long)a.S, (long long)a.D, causal, use_mask, (long long)window, scale);
  expect_values(out, ref, dt == TYR_F64 ? 1e-12 : 2e-5, dt == TYR_F64 ? 1e-10 : 1e-4, what);
  double *ov = values(out);
  for (int64_t i = 0; i < n; i++)
    if (isnan(ov[i])) fail_msg("%s: NaN at %lld", what, (long long)i);
  free(ov);
  free(ref);
  free(qv);
  free(kv);
  free(vv);
  free(mb);
}

static void test_sdpa_values(void **state) {
  (void)state;
  attn_dims shapes[] = {
      {2, 2, 2, 5, 5, 4},    /* plain */
      {1, 4, 2, 6, 6, 8},    /* grouped KV heads */
      {2, 3, 1, 3, 7, 4},    /* multi-query, T < S */
      {1, 2, 2, 6, 4, 3},    /* T > S: the first causal rows see nothing */
      {1, 2, 1, 9, 150, 16}, /* more keys than one chunk of the kernel */
      {2, 4, 2, 70, 70, 16}, /* large enough for the parallel path */
  };
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (int dt = 0; dt < 2; dt++)
      for (int opt = 0; opt < 8; opt++) {
        bool causal = opt & 1, mask = opt & 2;
        int64_t window = (opt & 4) ? 3 : 0;
        check_sdpa(dt ? TYR_F64 : TYR_F32, shapes[c], causal, mask, window, 0, false);
      }
  /* the kernels' row-at-a-time fallback (used when scratch memory cannot be
     had) gives the same results */
  tyr_cpu_attention_force_rows = true;
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (int opt = 0; opt < 8; opt++)
      check_sdpa(TYR_F32, shapes[c], opt & 1, opt & 2, (opt & 4) ? 3 : 0, 0, c == 3);
  tyr_cpu_attention_force_rows = false;
  attn_dims a = {1, 2, 1, 4, 6, 4};
  check_sdpa(TYR_F64, a, false, false, 0, 0.3, false); /* explicit scale */
  check_sdpa(TYR_F64, a, true, true, 2, -0.7, true);   /* an empty row: zeros */
  check_sdpa(TYR_F32, a, false, true, 0, 0, true);
  check_sdpa(TYR_F64, a, false, false, 1, 0, false); /* window 1: only the diagonal */
  check_sdpa(TYR_F64, (attn_dims){1, 1, 1, 3, 3, 2}, false, false, 100, 0, false);
}

typedef struct {
  tyr_sdpa_opts o;
} sdpa_ctx;
static tyr_tensor *call_sdpa(tyr_tensor **in, void *ctx) {
  return tyr_sdpa_e(in[0], in[1], in[2], &((sdpa_ctx *)ctx)->o);
}

static void test_sdpa_gradients(void **state) {
  (void)state;
  attn_dims shapes[] = {
      {1, 2, 2, 3, 3, 2},
      {2, 4, 2, 3, 4, 3}, /* GQA, T < S */
      {1, 2, 1, 4, 3, 2}, /* T > S */
  };
  uint8_t mb[64];
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    attn_dims a = shapes[c];
    tyr_tensor *in[3] = {tyr_test_leaf(4, (int64_t[]){a.B, a.Hq, a.T, a.D}, -1.5, 1.5),
                         tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5),
                         tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5)};
    tyr_scope_begin();
    tyr_tensor *mask = make_mask(a.T, a.S, mb, true);
    /* the backward in one pass per key/value head and in two passes */
    for (int opt = 0; opt < 16; opt++) {
      sdpa_ctx ctx = {{opt & 1, (opt & 2) ? mask : NULL, (opt & 4) ? 2 : 0, 0, NULL}};
      char name[96];
      tyr_cpu_attention_bw_passes = (opt & 8) ? 2 : 1;
      snprintf(name, sizeof name, "sdpa shape %zu causal %d mask %d window %d, %d passes", c,
               opt & 1, (opt & 2) != 0, (opt & 4) ? 2 : 0, tyr_cpu_attention_bw_passes);
      tyr_gradcheck(name, call_sdpa, &ctx, 3, in, 1e-6, 1e-6);
    }
    tyr_cpu_attention_bw_passes = 0;
    sdpa_ctx sc = {{false, NULL, 0, 0.8, NULL}};
    tyr_gradcheck("sdpa scale 0.8", call_sdpa, &sc, 3, in, 1e-6, 1e-6);
    tyr_scope_end();
    for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  }
  /* the row-at-a-time fallback of the kernels */
  {
    attn_dims a = shapes[1];
    tyr_tensor *in[3] = {tyr_test_leaf(4, (int64_t[]){a.B, a.Hq, a.T, a.D}, -1.5, 1.5),
                         tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5),
                         tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5)};
    tyr_scope_begin();
    tyr_tensor *mask = make_mask(a.T, a.S, mb, true);
    tyr_cpu_attention_force_rows = true;
    for (int opt = 0; opt < 8; opt++) {
      sdpa_ctx ctx = {{opt & 1, (opt & 2) ? mask : NULL, (opt & 4) ? 2 : 0, 0, NULL}};
      tyr_gradcheck("sdpa, row at a time", call_sdpa, &ctx, 3, in, 1e-6, 1e-6);
    }
    tyr_cpu_attention_force_rows = false;
    tyr_scope_end();
    for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  }
  /* a larger case through the tiled kernels: several blocks of queries and
     keys, the backward in one and in two passes, compared with the
     row-at-a-time results */
  {
    TYR_SCOPE;
    tyr_tensor *q = RANDN(TYR_F64, 1.0, 1, 4, 70, 8), *k = RANDN(TYR_F64, 1.0, 1, 2, 90, 8),
               *v = RANDN(TYR_F64, 1.0, 1, 2, 90, 8), *go = RANDN(TYR_F64, 1.0, 1, 4, 70, 8);
    tyr_requires_grad_e(q, true);
    tyr_requires_grad_e(k, true);
    tyr_requires_grad_e(v, true);
    double *g[3][3];
    for (int run = 0; run < 3; run++) { /* rows, one pass, two passes */
      int rows = run == 0;
      tyr_cpu_attention_force_rows = rows;
      tyr_cpu_attention_bw_passes = run;
      tyr_tensor *y = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .window = 40});
      tyr_backward_with_at(TYR_SITE, y, go);
      g[run][0] = values(tyr_grad_e(q));
      g[run][1] = values(tyr_grad_e(k));
      g[run][2] = values(tyr_grad_e(v));
      tyr_zero_grad_e(q);
      tyr_zero_grad_e(k);
      tyr_zero_grad_e(v);
    }
    tyr_cpu_attention_force_rows = false;
    tyr_cpu_attention_bw_passes = 0;
    int64_t n[3] = {4 * 70 * 8, 2 * 90 * 8, 2 * 90 * 8};
    for (int t = 0; t < 3; t++) {
      for (int run = 1; run < 3; run++)
        for (int64_t i = 0; i < n[t]; i++) ASSERT_CLOSE(g[run][t][i], g[0][t][i], 1e-12, 1e-10);
      for (int run = 0; run < 3; run++) free(g[run][t]);
    }
  }
  /* the same in f32 (whose kernels have their own vector code where the CPU
     has AVX-512: the products of P with V, the transposes and the row
     maxima), against the f64 results of the same inputs; blocks of 16 that
     the shape fills only partly (70 queries, 90 keys, head dim 20, and 84 =
     64 + 16 + 4 for the wider products), with a window, a mask with an
     empty row and GQA */
  for (int opt = 0; opt < 8; opt++) {
    TYR_SCOPE;
    const int64_t D = (opt & 4) ? 84 : 20;
    tyr_tensor *q64 = RANDN(TYR_F64, 1.0, 1, 4, 70, D), *k64 = RANDN(TYR_F64, 1.0, 1, 2, 90, D),
               *v64 = RANDN(TYR_F64, 1.0, 1, 2, 90, D), *go64 = RANDN(TYR_F64, 1.0, 1, 4, 70, D);
    uint8_t mbits[70 * 90];
    tyr_tensor *m = make_mask(70, 90, mbits, true); /* its last row sees no key */
    tyr_sdpa_opts o = {.causal = true, .window = (opt & 1) ? 40 : 0, .mask = (opt & 2) ? m : NULL};
    tyr_tensor *leaf[2][3];
    double *g[3][3];
    for (int run = 0; run < 3; run++) { /* f64 one pass, f32 one pass, f32 two passes */
      tyr_dtype dt = run == 0 ? TYR_F64 : TYR_F32;
      tyr_tensor *src[3] = {q64, k64, v64};
      for (int t = 0; t < 3; t++) {
        leaf[run > 0][t] = tyr_to_dtype_e(src[t], dt);
        tyr_requires_grad_e(leaf[run > 0][t], true);
      }
      tyr_cpu_attention_bw_passes = run == 2 ? 2 : 1;
      tyr_tensor *y = tyr_sdpa_e(leaf[run > 0][0], leaf[run > 0][1], leaf[run > 0][2], &o);
      if (run > 0) {
        double *yv = values(y);
        tyr_tensor *yr = tyr_sdpa_e(q64, k64, v64, &o);
        double *yrv = values(yr);
        for (int64_t i = 0; i < 4 * 70 * D; i++) ASSERT_CLOSE(yv[i], yrv[i], 2e-5, 1e-4);
        free(yv);
        free(yrv);
      }
      tyr_backward_with_at(TYR_SITE, y, tyr_to_dtype_e(go64, dt));
      for (int t = 0; t < 3; t++) g[run][t] = values(tyr_grad_e(leaf[run > 0][t]));
    }
    tyr_cpu_attention_bw_passes = 0;
    int64_t n[3] = {4 * 70 * D, 2 * 90 * D, 2 * 90 * D};
    for (int t = 0; t < 3; t++) {
      for (int run = 1; run < 3; run++)
        for (int64_t i = 0; i < n[t]; i++) ASSERT_CLOSE(g[run][t][i], g[0][t][i], 1e-4, 1e-3);
      for (int run = 0; run < 3; run++) free(g[run][t]);
    }
  }
  /* self-attention with one tensor as q, k and v: the three gradients add */
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 1, 2, 3, 2);
  tyr_tensor *in[3] = {x, x, x};
  sdpa_ctx ctx = {{true, NULL, 0, 0, NULL}};
  tyr_gradcheck("sdpa q = k = v", call_sdpa, &ctx, 3, in, 1e-6, 1e-6);
  tyr_tensor_free(x);
}

/* Views whose last dim is contiguous (a head inside a wider tensor, the
 * [B, T, H, D] -> [B, H, T, D] transpose) are read in place by the CPU
 * kernels, others (a strided last dim) copied first: both give the values
 * and gradients of contiguous operands. */
static void test_sdpa_strided_operands(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *qc = RANDN(TYR_F64, 1.0, 2, 3, 40, 8), *kc = RANDN(TYR_F64, 1.0, 2, 3, 40, 8),
             *vc = RANDN(TYR_F64, 1.0, 2, 3, 40, 8), *go = RANDN(TYR_F64, 1.0, 2, 3, 40, 8);
  /* the same values as [B, H, D, T] transposed, and inside a wider tensor */
  tyr_tensor *qt = tyr_contiguous_e(tyr_transpose_e(qc, 2, 3));
  tyr_tensor *kw = tyr_cat_e(2, ((tyr_tensor *[]){kc, kc}), 3);
  tyr_tensor *vt = tyr_contiguous_e(tyr_transpose_e(vc, 1, 2)); /* [B, T, H, D] */
  tyr_tensor *in[2][3] = {
      {qc, kc, vc},
      {tyr_transpose_e(qt, 2, 3), tyr_narrow_e(kw, 3, 8, 8), tyr_transpose_e(vt, 1, 2)}};
  assert_int_not_equal(in[1][0]->stride[3], 1);
  assert_int_equal(in[1][1]->stride[3], 1);
  assert_int_equal(in[1][2]->stride[2], 3 * 8);
  double *y[2], *g[2][3];
  for (int c = 0; c < 2; c++) {
    tyr_tensor *leaf[3];
    for (int i = 0; i < 3; i++) {
      leaf[i] = c ? tyr_detach_e(in[c][i]) : tyr_contiguous_e(in[c][i]);
      tyr_requires_grad_e(leaf[i], true);
    }
    tyr_tensor *o = tyr_sdpa_e(leaf[0], leaf[1], leaf[2], &(tyr_sdpa_opts){.causal = true});
    assert_int_equal(tyr_backward_with_at(TYR_SITE, o, go), 0);
    y[c] = values(o);
    for (int i = 0; i < 3; i++) g[c][i] = values(tyr_grad_e(leaf[i]));
  }
  for (int64_t e = 0; e < 2 * 3 * 40 * 8; e++) {
    ASSERT_CLOSE(y[1][e], y[0][e], 1e-14, 1e-12);
    for (int i = 0; i < 3; i++) ASSERT_CLOSE(g[1][i][e], g[0][i][e], 1e-14, 1e-12);
  }
  for (int c = 0; c < 2; c++) {
    free(y[c]);
    for (int i = 0; i < 3; i++) free(g[c][i]);
  }
}

/* tyr_sdpa_qkv on the CPU (the packed views, gathered by the backend):
 * values against splitting by hand, gradients against finite differences,
 * errors */
static tyr_tensor *call_sdpa_qkv(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_sdpa_qkv_e(in[0], 2, 1, &(tyr_sdpa_opts){.causal = true, .window = 3});
}

static void test_sdpa_qkv(void **state) {
  (void)state;
  tyr_tensor *qkv = TYR_TEST_LEAF(-1, 1, 2, 5, 12); /* 2 query heads, 1 kv head, D 3 */
  {
    TYR_SCOPE;
    tyr_tensor *y = tyr_sdpa_qkv_e(qkv, 2, 1, &(tyr_sdpa_opts){.causal = true});
    assert_non_null(y);
    assert_int_equal(y->rank, 3);
    assert_int_equal(y->shape[2], 6);
    tyr_tensor *q = tyr_transpose_e(tyr_reshape_e(tyr_narrow_e(qkv, 2, 0, 6), 2, 5, 2, 3), 1, 2);
    tyr_tensor *k = tyr_transpose_e(tyr_reshape_e(tyr_narrow_e(qkv, 2, 6, 3), 2, 5, 1, 3), 1, 2);
    tyr_tensor *v = tyr_transpose_e(tyr_reshape_e(tyr_narrow_e(qkv, 2, 9, 3), 2, 5, 1, 3), 1, 2);
    tyr_tensor *r = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true});
    r = tyr_reshape_e(tyr_transpose_e(r, 1, 2), 2, 5, 6);
    double *want = values(r);
    expect_values(y, want, 1e-15, 0, "sdpa_qkv");
    free(want);
    tyr_gradcheck("sdpa_qkv", call_sdpa_qkv, NULL, 1, &qkv, 1e-6, 1e-6);
    EXPECT_TYR_ERROR(tyr_sdpa_qkv_e(qkv, 3, 1, NULL),
                     "tyr_sdpa_qkv: qkv must be [B, T, (n_head + 2 n_kv_head) D] = [B, T, 5 D] "
                     "with D >= 1, got [2, 5, 12]");
    EXPECT_TYR_ERROR(tyr_sdpa_qkv_e(qkv, 2, 3, NULL), "tyr_sdpa_qkv: n_head (2) must be");
    EXPECT_TYR_ERROR(tyr_sdpa_qkv_e(NULL, 2, 1, NULL), "tyr_sdpa_qkv: qkv is NULL");
  }
  tyr_tensor_free(qkv);
}

/* The packed route at sizes where the CPU's gathers, scatters and kernels
 * run in parallel, in f32 and f64: the output and the gradient of qkv are
 * the layout-op route's (narrow, transpose, tyr_sdpa) bit for bit. */
static void test_sdpa_qkv_packed_parallel(void **state) {
  (void)state;
  const int64_t B = 3, T = 70, Hq = 4, Hkv = 2, D = 16, W = (Hq + 2 * Hkv) * D;
  for (int dt = 0; dt < 2; dt++) {
    tyr_dtype fdt = dt ? TYR_F64 : TYR_F32;
    tyr_tensor *qkv = tyr_keep_e(RANDN(fdt, 1.0, B, T, W));
    tyr_tensor *go = tyr_keep_e(RANDN(fdt, 1.0, B, T, Hq * D));
    tyr_requires_grad_e(qkv, true);
    {
      TYR_SCOPE;
      tyr_sdpa_opts o = {.causal = true};
      tyr_tensor *y = tyr_sdpa_qkv_e(qkv, Hq, Hkv, &o);
      assert_non_null(y);
      assert_int_equal(tyr_backward_with_at(TYR_SITE, y, go), 0);
      tyr_tensor *g = tyr_clone_e(tyr_grad_e(qkv));
      tyr_zero_grad_e(qkv);
      tyr_tensor *q = tyr_narrow_e(qkv, 2, 0, Hq * D), *k = tyr_narrow_e(qkv, 2, Hq * D, Hkv * D);
      tyr_tensor *v = tyr_narrow_e(qkv, 2, (Hq + Hkv) * D, Hkv * D);
      q = tyr_transpose_e(tyr_reshape_e(q, B, T, Hq, D), 1, 2);
      k = tyr_transpose_e(tyr_reshape_e(k, B, T, Hkv, D), 1, 2);
      v = tyr_transpose_e(tyr_reshape_e(v, B, T, Hkv, D), 1, 2);
      tyr_tensor *r = tyr_reshape_e(tyr_transpose_e(tyr_sdpa_e(q, k, v, &o), 1, 2), B, T, Hq * D);
      assert_int_equal(tyr_backward_with_at(TYR_SITE, r, go), 0);
      double *want = values(r), *gwant = values(tyr_grad_e(qkv));
      expect_values(y, want, 0, 0, "sdpa_qkv packed: out");
      expect_values(g, gwant, 0, 0, "sdpa_qkv packed: dqkv");
      free(want);
      free(gwant);
    }
    tyr_tensor_free(qkv);
    tyr_tensor_free(go);
  }
}

static void test_sdpa_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *q = RANDN(TYR_F32, 1.0, 2, 4, 5, 8), *k = RANDN(TYR_F32, 1.0, 2, 2, 6, 8),
             *v = RANDN(TYR_F32, 1.0, 2, 2, 6, 8);
  tyr_tensor *k3 = RANDN(TYR_F32, 1.0, 2, 3, 6, 8), *v3 = RANDN(TYR_F32, 1.0, 2, 3, 6, 8);
  tyr_tensor *kd = RANDN(TYR_F32, 1.0, 2, 2, 6, 4), *vs = RANDN(TYR_F32, 1.0, 2, 2, 7, 8);
  tyr_tensor *kb = RANDN(TYR_F32, 1.0, 1, 2, 6, 8), *q3 = RANDN(TYR_F32, 1.0, 4, 5, 8);
  tyr_tensor *kf = RANDN(TYR_F64, 1.0, 2, 2, 6, 8);
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k3, v3, NULL),
                   "tyr_sdpa: the number of query heads is not a multiple of the number of "
                   "key/value heads: q is [2, 4, 5, 8], k is [2, 3, 6, 8], v is [2, 3, 6, 8]");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, kd, v, NULL),
                   "tyr_sdpa: head dims differ: q is [2, 4, 5, 8], k is [2, 2, 6, 4]");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, vs, NULL), "tyr_sdpa: k and v have different shapes");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, kb, kb, NULL), "tyr_sdpa: batch sizes differ");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q3, k, v, NULL), "tyr_sdpa: q, k and v must have rank 4");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, kf, v, NULL),
                   "tyr_sdpa: operands have different dtypes (f32 and f64)");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, NULL, NULL), "tyr_sdpa: v is NULL");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.window = -1}),
                   "tyr_sdpa: window must be >= 0 (0: none), got -1");
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.scale = NAN}),
                   "tyr_sdpa: scale must be finite");
  tyr_tensor *m = tyr_ones_at(TYR_SITE, TYR_BOOL, CPU, 2, (int64_t[]){6, 5});
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.mask = m}),
                   "tyr_sdpa: q is [2, 4, 5, 8] and k is [2, 2, 6, 8], so mask must be [5, 6], "
                   "but it is [6, 5]");
  tyr_tensor *mf = tyr_ones_at(TYR_SITE, TYR_F32, CPU, 2, (int64_t[]){5, 6});
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.mask = mf}),
                   "tyr_sdpa: mask must be bool or u8, not f32");
  /* u8 masks work; a mask of all zeros gives zeros */
  tyr_tensor *mu = tyr_zeros_at(TYR_SITE, TYR_U8, CPU, 2, (int64_t[]){5, 6});
  tyr_tensor *z = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.mask = mu, .causal = true});
  assert_true(tyr_item_e(tyr_sum_e(tyr_abs_e(z))) == 0.0);
}

/* A fully masked row gives zero output and zero gradients, never NaN. */
static void test_sdpa_empty_rows_backward(void **state) {
  (void)state;
  tyr_tensor *q = TYR_TEST_LEAF(-1, 1, 1, 1, 4, 2), *k = TYR_TEST_LEAF(-1, 1, 1, 1, 2, 2),
             *v = TYR_TEST_LEAF(-1, 1, 1, 1, 2, 2);
  {
    TYR_SCOPE;
    /* T = 4 > S = 2 and causal: rows 0 and 1 see no key */
    tyr_tensor *y = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true});
    tyr_backward_e(tyr_sum_e(y));
    for (int64_t d = 0; d < 2; d++) {
      assert_true(tyr_get_e(y, 0, 0, 0, d) == 0.0 && tyr_get_e(y, 0, 0, 1, d) == 0.0);
      assert_true(tyr_get_e(tyr_grad_e(q), 0, 0, 0, d) == 0.0);
      assert_true(tyr_get_e(tyr_grad_e(q), 0, 0, 1, d) == 0.0);
    }
    double *g = values(tyr_grad_e(k));
    for (int i = 0; i < 4; i++) assert_false(isnan(g[i]));
    free(g);
    for (int i = 0; i < 3; i++) tyr_zero_grad_e(i == 0 ? q : i == 1 ? k : v);
  }
  tyr_tensor_free(q);
  tyr_tensor_free(k);
  tyr_tensor_free(v);
}

/* ---- bf16 / f16 paths ---------------------------------------------------------------- */
static void test_half_precision(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int h = 0; h < 2; h++) {
    tyr_dtype dt = h ? TYR_F16 : TYR_BF16;
    double tol = h ? 5e-3 : 3e-2;
    tyr_tensor *xf = RANDN(TYR_F32, 1.0, 2, 3, 6, 8);
    tyr_tensor *x = tyr_to_dtype_e(xf, dt), *xr = tyr_to_dtype_e(x, TYR_F32); /* rounded */
    /* softmax */
    tyr_tensor *y = tyr_softmax_e(x, 2), *yr = tyr_softmax_e(xr, 2);
    assert_int_equal(y->dtype, dt);
    double *ref = values(yr);
    expect_values(y, ref, tol, tol, "half softmax");
    free(ref);
    /* layer norm with params */
    tyr_tensor *w = tyr_to_dtype_e(RANDN(TYR_F32, 1.0, 8), dt),
               *b = tyr_to_dtype_e(RANDN(TYR_F32, 1.0, 8), dt);
    tyr_tensor *ln = tyr_layer_norm_e(x, w, b, 1e-5);
    tyr_tensor *lr =
        tyr_layer_norm_e(xr, tyr_to_dtype_e(w, TYR_F32), tyr_to_dtype_e(b, TYR_F32), 1e-5);
    ref = values(lr);
    expect_values(ln, ref, 4 * tol, 4 * tol, "half layer_norm");
    free(ref);
    /* attention */
    tyr_tensor *k = tyr_to_dtype_e(RANDN(TYR_F32, 1.0, 2, 3, 6, 8), dt);
    tyr_tensor *a = tyr_sdpa_e(x, k, k, &(tyr_sdpa_opts){.causal = true});
    tyr_tensor *kr = tyr_to_dtype_e(k, TYR_F32);
    tyr_tensor *ar = tyr_sdpa_e(xr, kr, kr, &(tyr_sdpa_opts){.causal = true});
    assert_int_equal(a->dtype, dt);
    ref = values(ar);
    expect_values(a, ref, 2 * tol, 2 * tol, "half sdpa");
    free(ref);
    /* rotary */
    tyr_tensor *c, *s;
    tyr_rotary_tables_at(TYR_SITE, 6, 8, 0, dt, CPU, &c, &s);
    tyr_tensor *ro = tyr_rotary_e(x, c, s);
    tyr_tensor *rr = tyr_rotary_e(xr, tyr_to_dtype_e(c, TYR_F32), tyr_to_dtype_e(s, TYR_F32));
    ref = values(rr);
    expect_values(ro, ref, 2 * tol, 2 * tol, "half rotary");
    free(ref);
    /* cross entropy and dropout */
    tyr_tensor *t =
        tyr_from_host_at(TYR_SITE, (int64_t[]){1, 7, 0}, TYR_I64, CPU, 1, (int64_t[]){3});
    tyr_tensor *lg = tyr_to_dtype_e(RANDN(TYR_F32, 1.0, 3, 8), dt);
    tyr_tensor *ce = tyr_cross_entropy_e(lg, t, -100);
    assert_int_equal(ce->dtype, dt);
    ASSERT_CLOSE(tyr_item_e(ce),
                 tyr_item_e(tyr_cross_entropy_e(tyr_to_dtype_e(lg, TYR_F32), t, -100)), tol, tol);
    tyr_tensor *dr = tyr_dropout_e(x, 0.5, true);
    assert_int_equal(dr->dtype, dt);
  }
  /* gradients through the half paths */
  tyr_tensor *leaf = tyr_keep_e(tyr_to_dtype_e(RANDN(TYR_F32, 1.0, 1, 2, 4, 4), TYR_BF16));
  tyr_tensor *lf = tyr_keep_e(tyr_to_dtype_e(leaf, TYR_F32));
  tyr_requires_grad_e(leaf, true);
  tyr_requires_grad_e(lf, true);
  {
    TYR_SCOPE;
    tyr_tensor *c, *s;
    tyr_rotary_tables_at(TYR_SITE, 4, 4, 0, TYR_BF16, CPU, &c, &s);
    tyr_tensor *cf = tyr_to_dtype_e(c, TYR_F32), *sf = tyr_to_dtype_e(s, TYR_F32);
    tyr_tensor *w = tyr_full_at(TYR_SITE, TYR_BF16, CPU, 1, (int64_t[]){4}, 1.5);
    tyr_tensor *wf = tyr_full_at(TYR_SITE, TYR_F32, CPU, 1, (int64_t[]){4}, 1.5);
    tyr_tensor *l1 = tyr_sum_e(
        tyr_mul_e(tyr_sdpa_e(tyr_rms_norm_e(leaf, w, 1e-5), tyr_rotary_e(leaf, c, s), leaf, NULL),
                  tyr_log_softmax_e(leaf, 1)));
    tyr_tensor *l2 = tyr_sum_e(
        tyr_mul_e(tyr_sdpa_e(tyr_rms_norm_e(lf, wf, 1e-5), tyr_rotary_e(lf, cf, sf), lf, NULL),
                  tyr_log_softmax_e(lf, 1)));
    assert_int_equal(tyr_backward_e(l1), 0);
    assert_int_equal(tyr_backward_e(l2), 0);
    tyr_tensor *g1 = tyr_grad_e(leaf);
    assert_int_equal(g1->dtype, TYR_BF16);
    double *a = values(g1), *b = values(tyr_grad_e(lf));
    for (int i = 0; i < 32; i++) ASSERT_CLOSE(a[i], b[i], 0.1, 0.05);
    free(a);
    free(b);
  }
  tyr_tensor_free(lf);
  tyr_tensor_free(leaf);
}

/* ---- lifetimes ------------------------------------------------------------------------ */
/* Results kept out of the scope that made them still backpropagate: the
 * ops' internal temporaries live as long as the graph needs them. */
static void test_results_outlive_their_scope(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 1, 2, 4, 4), *w = TYR_TEST_LEAF(0.5, 1.5, 4),
             *b = TYR_TEST_LEAF(-1, 1, 4);
  tyr_tensor *kept[9];
  {
    TYR_SCOPE;
    tyr_tensor *c, *s;
    tyr_rotary_tables_at(TYR_SITE, 4, 4, 0, TYR_F64, CPU, &c, &s);
    tyr_tensor *t = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 3, (int64_t[]){1, 2, 4});
    uint8_t mb[16];
    tyr_tensor *m = make_mask(4, 4, mb, false);
    /* the half paths keep f32 copies (one conversion per result: a backward
       frees the graph it went through) */
    tyr_tensor *xf = tyr_to_dtype_e(x, TYR_BF16), *xf2 = tyr_to_dtype_e(x, TYR_BF16);
    kept[0] = tyr_softmax_e(x, 1);
    kept[1] = tyr_cross_entropy_e(x, t, -100);
    kept[2] = tyr_mse_loss_e(x, tyr_mul_scalar_e(x, 0.5));
    kept[3] = tyr_layer_norm_e(x, w, b, 1e-5);
    kept[4] = tyr_rms_norm_e(x, w, 1e-5);
    kept[5] = tyr_dropout_e(xf, 0.5, true);
    kept[6] = tyr_rotary_e(tyr_mul_scalar_e(x, 2.0), c, s);
    kept[7] = tyr_sdpa_e(xf2, xf2, xf2, &(tyr_sdpa_opts){.mask = m, .causal = true});
    kept[8] = tyr_dropout_e(x, 0.2, false);
    for (int i = 0; i < 9; i++) tyr_keep_e(kept[i]);
  }
  for (int i = 0; i < 9; i++) {
    TYR_SCOPE;
    tyr_tensor *l = tyr_sum_e(tyr_to_dtype_e(kept[i], TYR_F64));
    assert_int_equal(tyr_backward_e(l), 0);
    if (!tyr_grad_e(x)) fail_msg("result %d: no gradient reached x", i);
    tyr_zero_grad_e(x);
    tyr_tensor_free(kept[i]);
  }
  tyr_zero_grad_e(w);
  tyr_zero_grad_e(b);
  tyr_tensor_free(x);
  tyr_tensor_free(w);
  tyr_tensor_free(b);
}

/* ---- typed forms ---------------------------------------------------------------------- */
static void test_typed_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { B = 2, H = 4, HKV = 2, T = 5, D = 8, V = 6 };
  tyr_T(B, T, V) logits = tyr_randn(B, T, V);
  tyr_T(B, T, V) p = tyr_softmax(logits, -1);
  tyr_T(B, T, V) lp = tyr_log_softmax(logits, 1);
  tyr_T(B, T) tg = (tyr_T(B, T))tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 2, (int64_t[]){B, T});
  tyr_T0 loss = tyr_cross_entropy(logits, tg, -100);
  tyr_T0 mse = tyr_mse_loss(p, lp);
  ASSERT_CLOSE(tyr_item(loss),
               tyr_item_e(tyr_cross_entropy_e(tyr_erase(logits), tyr_erase(tg), -100)), 0, 0);
  ASSERT_CLOSE(tyr_item(mse), tyr_item_e(tyr_mse_loss_e(tyr_erase(p), tyr_erase(lp))), 0, 0);
  tyr_T(V) w = tyr_ones(V);
  tyr_T(V) b = tyr_zeros(V);
  tyr_T(B, T, V) n1 = tyr_layer_norm(logits, w, b, 1e-5);
  tyr_T(B, T, V) n2 = tyr_layer_norm(logits, NULL, NULL, 1e-5);
  tyr_T(B, T, V) n3 = tyr_rms_norm(tyr_dropout(n1, 0.1, true), w, 1e-5);
  tyr_T(B, T, V) n4 = tyr_rms_norm(n2, NULL, 1e-5);
  ASSERT_CLOSE(tyr_get(n1, 1, 2, 3), tyr_get(n2, 1, 2, 3), 1e-6, 0);
  (void)n3, (void)n4;
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(B, HKV, T, D) k = tyr_randn(B, HKV, T, D);
  tyr_T(T, D / 2) c;
  tyr_T(T, D / 2) s;
  assert_int_equal(tyr_rotary_tables(T, D, 10000.0, &c, &s), 0);
  tyr_T(B, H, T, D) qr = tyr_rotary(q, c, s);
  tyr_T(B, H, T, D) o =
      tyr_sdpa(qr, tyr_rotary(k, c, s), k, &(tyr_sdpa_opts){.causal = true, .window = 2});
  tyr_T(B, H, T, D) o2 = tyr_sdpa(q, k, k, NULL);
  _Static_assert(tyr_rank(o) == 4 && tyr_dim(o, 1) == H, "typed dims");
  (void)o2;
  /* run-time dims: checked at run time (volatile, so that no optimiser can
     turn them into constants and the check into a compile-time one) */
  volatile int rt_t = T, rt_hk = 3, rt_v2 = V + 1;
  int t = rt_t, hk = rt_hk;
  tyr_T(B, hk, t, D) k3 = tyr_randn(B, hk, t, D);
  EXPECT_TYR_ERROR(tyr_sdpa(q, k3, k3, NULL),
                   "tyr_sdpa: the number of query heads is not a multiple of the number of "
                   "key/value heads");
  tyr_T(t, V) l2 = tyr_randn(t, V);
  tyr_T(t) t2 = (tyr_T(t))tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 1, (int64_t[]){T});
  tyr_T0 ce2 = tyr_cross_entropy(l2, t2, -100);
  assert_non_null(ce2);
  int v2 = rt_v2;
  tyr_T(v2) wbad = tyr_ones(v2);
  EXPECT_TYR_ERROR(tyr_layer_norm(l2, wbad, NULL, 1e-5),
                   "tyr_layer_norm: x is [5, 6], so w must be [6], but it is [7]");
  /* a handle whose type lies about its tensor */
  tyr_T(B, H, T, D) liar = (tyr_T(B, H, T, D))tyr_erase(tyr_randn(B, H, T, 4));
  EXPECT_TYR_ERROR(tyr_rotary(liar, c, s),
                   "tyr_rotary: x is declared [2, 4, 5, 8] but the tensor is [2, 4, 5, 4]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_softmax_values),
      TYR_TEST(test_softmax_gradients),
      TYR_TEST(test_softmax_errors),
      TYR_TEST(test_cross_entropy_values),
      TYR_TEST(test_cross_entropy_all_ignored),
      TYR_TEST(test_cross_entropy_gradients),
      TYR_TEST(test_cross_entropy_errors),
      TYR_TEST(test_linear_cross_entropy_values),
      TYR_TEST(test_linear_cross_entropy_gradients),
      TYR_TEST(test_linear_cross_entropy_edges),
      TYR_TEST(test_linear_cross_entropy_errors),
      TYR_TEST(test_linear_cross_entropy_softcap),
      TYR_TEST(test_mlp_gelu_tanh),
      TYR_TEST(test_mlp_act),
      TYR_TEST(test_sdpa_strided_operands),
      TYR_TEST(test_mse_loss),
      TYR_TEST(test_norm_values),
      TYR_TEST(test_norm_gradients),
      TYR_TEST(test_norm_param_grads_parallel),
      TYR_TEST(test_norm_errors),
      TYR_TEST(test_norm_to),
      TYR_TEST(test_residual_add_norm),
      TYR_TEST(test_dropout_mask),
      TYR_TEST(test_dropout_gradients),
      TYR_TEST(test_rotary_values),
      TYR_TEST(test_rotary_gradients_and_errors),
      TYR_TEST(test_sdpa_values),
      TYR_TEST(test_sdpa_gradients),
      TYR_TEST(test_sdpa_errors),
      TYR_TEST(test_sdpa_qkv),
      TYR_TEST(test_sdpa_qkv_packed_parallel),
      TYR_TEST(test_sdpa_empty_rows_backward),
      TYR_TEST(test_half_precision),
      TYR_TEST(test_results_outlive_their_scope),
      TYR_TEST(test_typed_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
