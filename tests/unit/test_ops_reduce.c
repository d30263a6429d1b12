/* Reductions: max/min/argmax/argmin/var (and sum/mean) against naive
 * double-precision references, gradients against finite differences,
 * ties, NaN, non-contiguous and half-precision inputs, errors, typed forms. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>

#include "gradcheck.h"

enum { D0 = 3, D1 = 4, D2 = 5 };

/* Reference over dim d of a [D0, D1, D2] tensor at the output position
 * (i, j) of the two kept dims: kind 0 max, 1 min, 2 argmax, 3 argmin,
 * 4 var (biased), 5 var (unbiased), 6 sum, 7 mean. */
static double ref_dim(const tyr_tensor *x, int d, int64_t i, int64_t j, int kind) {
  int64_t n = x->shape[d];
  double best = 0, sum = 0, sq = 0;
  int64_t bi = 0;
  for (int64_t k = 0; k < n; k++) {
    int64_t idx[3];
    int64_t o[2] = {i, j};
    for (int a = 0, b = 0; a < 3; a++) idx[a] = a == d ? k : o[b++];
    double v = tyr_get_e(x, idx[0], idx[1], idx[2]);
    sum += v;
    if (k == 0 || (kind == 0 || kind == 2 ? v > best : v < best)) {
      best = v;
      bi = k;
    }
  }
  double mean = sum / (double)n;
  for (int64_t k = 0; k < n; k++) {
    int64_t idx[3];
    int64_t o[2] = {i, j};
    for (int a = 0, b = 0; a < 3; a++) idx[a] = a == d ? k : o[b++];
    double v = tyr_get_e(x, idx[0], idx[1], idx[2]) - mean;
    sq += v * v;
  }
  switch (kind) {
  case 0:
  case 1:
    return best;
  case 2:
  case 3:
    return (double)bi;
  case 4:
    return sq / (double)n;
  case 5:
    return sq / (double)(n - 1);
  case 6:
    return sum;
  default:
    return mean;
  }
}

/* Reference over all elements (row-major): same kinds. */
static double ref_all(const tyr_tensor *x, int kind) {
  int64_t n = tyr_numel(x), bi = 0;
  double best = 0, sum = 0, sq = 0;
  for (int64_t f = 0; f < n; f++) {
    double v = tyr_get_e(x, f / (D1 * D2), (f / D2) % D1, f % D2);
    sum += v;
    if (f == 0 || (kind == 0 || kind == 2 ? v > best : v < best)) {
      best = v;
      bi = f;
    }
  }
  double mean = sum / (double)n;
  for (int64_t f = 0; f < n; f++) {
    double v = tyr_get_e(x, f / (D1 * D2), (f / D2) % D1, f % D2) - mean;
    sq += v * v;
  }
  return kind < 2    ? best
         : kind < 4  ? (double)bi
         : kind == 4 ? sq / (double)n
                     : sq / (double)(n - 1);
}

/* out (reduced over d, keepdim or not) against ref_dim */
static void check_dim(const tyr_tensor *x, const tyr_tensor *out, int d, bool keep, int kind,
                      double tol) {
  assert_non_null(out);
  assert_int_equal(out->rank, keep ? 3 : 2);
  int64_t o0 = x->shape[d == 0 ? 1 : 0], o1 = x->shape[d == 2 ? 1 : 2];
  for (int64_t i = 0; i < o0; i++)
    for (int64_t j = 0; j < o1; j++) {
      double got;
      if (keep) {
        int64_t idx[3], o[2] = {i, j};
        for (int a = 0, b = 0; a < 3; a++) idx[a] = a == d ? 0 : o[b++];
        got = tyr_get_e(out, idx[0], idx[1], idx[2]);
      } else {
        got = tyr_get_e(out, i, j);
      }
      ASSERT_CLOSE(got, ref_dim(x, d, i, j, kind), tol, tol);
    }
}

typedef tyr_tensor *(*dim_fn)(tyr_site, tyr_tensor *, int, bool);
static tyr_tensor *var_b(tyr_site s, tyr_tensor *x, int d, bool k) {
  return tyr_var_at(s, x, d, k, false);
}
static tyr_tensor *var_u(tyr_site s, tyr_tensor *x, int d, bool k) {
  return tyr_var_at(s, x, d, k, true);
}
static const struct {
  const char *name;
  dim_fn fn;
  int kind;
} DIM_OPS[] = {
    {"max_dim", tyr_max_dim_at, 0},
    {"min_dim", tyr_min_dim_at, 1},
    {"argmax", tyr_argmax_at, 2},
    {"argmin", tyr_argmin_at, 3},
    {"var", var_b, 4},
    {"var unbiased", var_u, 5},
    {"sum_dim", tyr_sum_dim_at, 6},
    {"mean_dim", tyr_mean_dim_at, 7},
};
#define NDIM_OPS (sizeof DIM_OPS / sizeof DIM_OPS[0])

static void test_dim_values(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int dt = 0; dt < 2; dt++) {
    tyr_dtype dtype = dt ? TYR_F64 : TYR_F32;
    double tol = dt ? 1e-12 : 1e-5;
    tyr_tensor *x = tyr_randn_at(TYR_SITE, dtype, TYR_DEVICE_CPU, 3, (int64_t[]){D0, D1, D2}, 0, 1);
    /* the same values through a non-contiguous view: xt = transpose(transpose(x)) copied
     * into a permuted layout */
    tyr_tensor *base = tyr_contiguous_e(tyr_permute_e(x, 2, 0, 1)); /* [D2, D0, D1] */
    tyr_tensor *xv = tyr_permute_e(base, 1, 2, 0);                  /* [D0, D1, D2], strided */
    assert_false(tyr_is_contiguous(xv));
    for (size_t c = 0; c < NDIM_OPS; c++) {
      for (int d = -1; d < 3; d++) {
        int dn = d < 0 ? 2 : d;
        for (int keep = 0; keep < 2; keep++) {
          tyr_tensor *y = DIM_OPS[c].fn(TYR_SITE, x, d, keep);
          check_dim(x, y, dn, keep, DIM_OPS[c].kind, tol);
          tyr_tensor *yv = DIM_OPS[c].fn(TYR_SITE, xv, d, keep);
          check_dim(x, yv, dn, keep, DIM_OPS[c].kind, tol);
          tyr_dtype want = DIM_OPS[c].kind == 2 || DIM_OPS[c].kind == 3 ? TYR_I64 : dtype;
          assert_int_equal(y->dtype, want);
        }
      }
    }
  }
}

/* Sums over a dim with elements after it (the CPU adds whole rows into
 * double accumulators, in blocks of columns split between threads): the
 * double sum of each column in row order, rounded once, for shapes with
 * several column blocks and with one outer index; exact in f32 and f64
 * (f64 inputs make a different order of the additions visible), within
 * bf16's rounding in bf16. */
static void test_sum_dim_rows(void **state) {
  (void)state;
  const int64_t shapes[][3] = {{3, 300, 1100}, {1, 700, 130}, {2, 5, 17}};
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16};
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
      TYR_SCOPE;
      int64_t O = shapes[c][0], n = shapes[c][1], I = shapes[c][2];
      tyr_tensor *x = tyr_to_dtype_e(
          tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 3, (int64_t[]){O, n, I}, 0, 1), dts[d]);
      double *xv = malloc((size_t)(O * n * I) * sizeof(double));
      double *sv = malloc((size_t)(O * I) * sizeof(double));
      double *mv = malloc((size_t)(O * I) * sizeof(double));
      tyr_to_host_e(tyr_to_dtype_e(x, TYR_F64), xv, (size_t)(O * n * I) * sizeof(double));
      tyr_to_host_e(tyr_to_dtype_e(tyr_sum_dim_e(x, 1, false), TYR_F64), sv,
                    (size_t)(O * I) * sizeof(double));
      tyr_to_host_e(tyr_to_dtype_e(tyr_mean_dim_e(x, 1, false), TYR_F64), mv,
                    (size_t)(O * I) * sizeof(double));
      for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
          double acc = 0;
          for (int64_t k = 0; k < n; k++) acc += xv[(o * n + k) * I + i];
          double mean = acc / (double)n, s = sv[o * I + i], m = mv[o * I + i];
          if (dts[d] == TYR_F64) {
            assert_true(s == acc && m == mean);
          } else if (dts[d] == TYR_F32) {
            assert_true(s == (double)(float)acc && m == (double)(float)mean);
          } else {
            ASSERT_CLOSE(s, acc, 1e-6, 1.0 / 128);
            ASSERT_CLOSE(m, mean, 1e-6, 1.0 / 128);
          }
        }
      free(xv);
      free(sv);
      free(mv);
    }
}

static void test_all_values(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int dt = 0; dt < 2; dt++) {
    tyr_dtype dtype = dt ? TYR_F64 : TYR_F32;
    double tol = dt ? 1e-12 : 1e-5;
    tyr_tensor *x = tyr_randn_at(TYR_SITE, dtype, TYR_DEVICE_CPU, 3, (int64_t[]){D0, D1, D2}, 0, 1);
    tyr_tensor *xv = tyr_permute_e(tyr_contiguous_e(tyr_permute_e(x, 2, 0, 1)), 1, 2, 0);
    tyr_tensor *ins[2] = {x, xv};
    for (int v = 0; v < 2; v++) {
      tyr_tensor *in = ins[v];
      tyr_tensor *mx = tyr_max_e(in), *mn = tyr_min_e(in);
      tyr_tensor *am = tyr_argmax_all_e(in), *an = tyr_argmin_all_e(in);
      tyr_tensor *vb = tyr_var_all_e(in, false), *vu = tyr_var_all_e(in, true);
      assert_int_equal(mx->rank, 0);
      assert_int_equal(am->dtype, TYR_I64);
      ASSERT_CLOSE(tyr_item_e(mx), ref_all(x, 0), 0, 0);
      ASSERT_CLOSE(tyr_item_e(mn), ref_all(x, 1), 0, 0);
      ASSERT_CLOSE(tyr_item_e(am), ref_all(x, 2), 0, 0);
      ASSERT_CLOSE(tyr_item_e(an), ref_all(x, 3), 0, 0);
      ASSERT_CLOSE(tyr_item_e(vb), ref_all(x, 4), tol, tol);
      ASSERT_CLOSE(tyr_item_e(vu), ref_all(x, 5), tol, tol);
    }
  }
}

static void test_ties_nan_and_integers(void **state) {
  (void)state;
  TYR_SCOPE;
  /* ties: the first index wins, for the value and for the gradient */
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, (double[]){1, 3, 3, 2, 0, 0, -1, 0}, TYR_F64,
                                   TYR_DEVICE_CPU, 2, (int64_t[]){2, 4});
  tyr_tensor *am = tyr_argmax_e(x, 1, false), *an = tyr_argmin_e(x, 1, false);
  assert_int_equal((int)tyr_get_e(am, 0), 1);
  assert_int_equal((int)tyr_get_e(am, 1), 0);
  assert_int_equal((int)tyr_get_e(an, 0), 0);
  assert_int_equal((int)tyr_get_e(an, 1), 2);
  assert_int_equal((int)tyr_item_e(tyr_argmax_all_e(x)), 1);
  tyr_tensor *leaf = tyr_keep_e(tyr_clone_e(x));
  tyr_requires_grad_e(leaf, true);
  assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_max_dim_e(leaf, 1, false))), 0);
  double want[8] = {0, 1, 0, 0, 1, 0, 0, 0};
  for (int64_t k = 0; k < 8; k++)
    ASSERT_CLOSE(tyr_get_e(tyr_grad_e(leaf), k / 4, k % 4), want[k], 0, 0);
  tyr_zero_grad_e(leaf);
  assert_int_equal(tyr_backward_e(tyr_min_e(leaf)), 0); /* -1 at (1, 2) */
  for (int64_t k = 0; k < 8; k++)
    ASSERT_CLOSE(tyr_get_e(tyr_grad_e(leaf), k / 4, k % 4), k == 6 ? 1 : 0, 0, 0);
  tyr_zero_grad_e(leaf);
  assert_int_equal(tyr_backward_e(tyr_max_e(leaf)), 0); /* 3 at (0, 1) and (0, 2): the first */
  for (int64_t k = 0; k < 8; k++)
    ASSERT_CLOSE(tyr_get_e(tyr_grad_e(leaf), k / 4, k % 4), k == 1 ? 1 : 0, 0, 0);
  tyr_tensor_free(leaf);
  /* NaN is selected by max and min (the first one) */
  tyr_tensor *n = tyr_from_host_at(TYR_SITE, (float[]){1, NAN, 5, NAN}, TYR_F32, TYR_DEVICE_CPU, 1,
                                   (int64_t[]){4});
  assert_true(isnan(tyr_item_e(tyr_max_e(n))));
  assert_true(isnan(tyr_item_e(tyr_min_e(n))));
  assert_int_equal((int)tyr_item_e(tyr_argmax_all_e(n)), 1);
  /* integer inputs: max keeps the dtype, argmax works, var refuses */
  tyr_tensor *iv = tyr_from_host_at(TYR_SITE, (int32_t[]){4, -7, 9, 9, 2, 0}, TYR_I32,
                                    TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  tyr_tensor *imax = tyr_max_dim_e(iv, 0, false);
  assert_int_equal(imax->dtype, TYR_I32);
  assert_int_equal((int)tyr_get_e(imax, 0), 9);
  assert_int_equal((int)tyr_get_e(imax, 1), 2);
  assert_int_equal((int)tyr_get_e(imax, 2), 9);
  assert_int_equal((int)tyr_item_e(tyr_min_e(iv)), -7);
  assert_int_equal((int)tyr_item_e(tyr_argmax_all_e(iv)), 2);
  EXPECT_TYR_ERROR(tyr_var_all_e(iv, true), "tyr_var_all: x must be a floating dtype, not i32");
  /* a divisor of 0 gives NaN */
  tyr_tensor *one = tyr_ones_e(3, 1);
  tyr_tensor *v1 = tyr_var_e(one, 1, false, true);
  assert_true(isnan(tyr_get_e(v1, 0)));
  ASSERT_CLOSE(tyr_get_e(tyr_var_e(one, 1, false, false), 0), 0, 0, 0);
}

/* ---- gradients ----------------------------------------------------------- */
typedef struct {
  int op; /* index into DIM_OPS, or -1..-4 for max/min/var_all(b/u) */
  int dim;
  bool keep;
} gctx;
static tyr_tensor *call_reduce(tyr_tensor **in, void *vctx) {
  gctx *c = vctx;
  switch (c->op) {
  case -1:
    return tyr_max_e(in[0]);
  case -2:
    return tyr_min_e(in[0]);
  case -3:
    return tyr_var_all_e(in[0], false);
  case -4:
    return tyr_var_all_e(in[0], true);
  default:
    return DIM_OPS[c->op].fn(TYR_SITE, in[0], c->dim, c->keep);
  }
}
/* through a transposed view of the input, so the gradient passes a view */
static tyr_tensor *call_reduce_t(tyr_tensor **in, void *vctx) {
  tyr_tensor *t = tyr_transpose_e(in[0], 0, 2);
  return call_reduce(&t, vctx);
}

static void test_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-2, 2, D0, D1, D2);
  for (size_t c = 0; c < NDIM_OPS; c++) {
    if (DIM_OPS[c].kind == 2 || DIM_OPS[c].kind == 3) continue; /* indices */
    for (int d = -1; d < 3; d++)
      for (int keep = 0; keep < 2; keep++) {
        gctx ctx = {(int)c, d, keep};
        char name[64];
        snprintf(name, sizeof name, "%s dim %d keep %d", DIM_OPS[c].name, d, keep);
        tyr_gradcheck(name, call_reduce, &ctx, 1, &x, 1e-6, 1e-6);
        tyr_gradcheck(name, call_reduce_t, &ctx, 1, &x, 1e-6, 1e-6);
      }
  }
  for (int op = -4; op <= -1; op++) {
    gctx ctx = {op, 0, false};
    tyr_gradcheck("all-element reduction", call_reduce, &ctx, 1, &x, 1e-6, 1e-6);
    tyr_gradcheck("all-element reduction of a view", call_reduce_t, &ctx, 1, &x, 1e-6, 1e-6);
  }
  tyr_tensor_free(x);
}

/* argmax is not differentiable; the graph ends there without an error */
static void test_argmax_no_grad(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 2, 3);
  tyr_tensor *a = tyr_argmax_e(x, 1, true);
  assert_false(a->requires_grad);
  tyr_tensor_free(x);
}

static void test_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = tyr_zeros_e(2, 3, 4);
  EXPECT_TYR_ERROR(tyr_max_dim_e(x, 3, false),
                   "tyr_max_dim: dim 3 is out of range for a tensor of shape [2, 3, 4]");
  EXPECT_TYR_ERROR(tyr_min_dim_e(x, -4, true),
                   "tyr_min_dim: dim -4 is out of range for a tensor of shape [2, 3, 4]");
  EXPECT_TYR_ERROR(tyr_argmax_e(x, 5, false), "tyr_argmax: dim 5 is out of range");
  EXPECT_TYR_ERROR(tyr_argmin_e(x, -9, false), "tyr_argmin: dim -9 is out of range");
  EXPECT_TYR_ERROR(tyr_var_e(x, 3, false, true), "tyr_var: dim 3 is out of range");
  EXPECT_TYR_ERROR(tyr_max_e(NULL), "tyr_max: x is NULL");
  tyr_tensor *empty = tyr_zeros_e(0, 3);
  EXPECT_TYR_ERROR(tyr_max_e(empty), "tyr_max: x [0, 3] has no elements");
  EXPECT_TYR_ERROR(tyr_argmin_all_e(empty), "tyr_argmin_all: x [0, 3] has no elements");
  EXPECT_TYR_ERROR(tyr_min_dim_e(empty, 0, false), "tyr_min_dim: dim 0 of x [0, 3] is empty");
  /* over a non-empty dim of an empty tensor: an empty result */
  tyr_tensor *e1 = tyr_max_dim_e(empty, 1, false);
  assert_int_equal(e1->rank, 1);
  assert_int_equal(e1->shape[0], 0);
  /* the message names this file */
  EXPECT_TYR_ERROR(tyr_argmax_e(x, 7, true), "test_ops_reduce.c:");
}

static void test_half_precision(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int k = 0; k < 2; k++) {
    tyr_dtype dt = k ? TYR_F16 : TYR_BF16;
    tyr_tensor *x = tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 3, (int64_t[]){D0, D1, D2}, 0, 1);
    tyr_tensor *xd = tyr_to_dtype_e(x, TYR_F64); /* the exact values */
    tyr_tensor *mx = tyr_max_dim_e(x, 1, false), *am = tyr_argmax_e(x, 2, false);
    tyr_tensor *v = tyr_var_e(x, 0, true, true);
    assert_int_equal(mx->dtype, dt);
    assert_int_equal(v->dtype, dt);
    check_dim(xd, mx, 1, false, 0, 0);
    check_dim(xd, am, 2, false, 2, 0);
    check_dim(xd, v, 0, true, 5, 2e-2);
    ASSERT_CLOSE(tyr_item_e(tyr_min_e(x)), ref_all(xd, 1), 0, 0);
    /* the gradient of max reaches the half-precision leaf */
    tyr_tensor *leaf = tyr_keep_e(tyr_clone_e(x));
    tyr_requires_grad_e(leaf, true);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_max_dim_e(leaf, 2, true))), 0);
    tyr_tensor *g = tyr_grad_e(leaf);
    assert_int_equal(g->dtype, dt);
    for (int64_t i = 0; i < D0; i++)
      for (int64_t j = 0; j < D1; j++) {
        int64_t sel = (int64_t)tyr_get_e(am, i, j);
        for (int64_t l = 0; l < D2; l++) ASSERT_CLOSE(tyr_get_e(g, i, j, l), l == sel, 0, 0);
      }
    tyr_tensor_free(leaf);
  }
}

static void test_typed_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { B = 3, T = 4, C = 5 };
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T0 m = tyr_max(x);
  tyr_T0 mn = tyr_min(x);
  tyr_T0 va = tyr_var_all(x, true);
  tyr_T0 ai = tyr_argmax_all(x);
  tyr_T0 an = tyr_argmin_all(x);
  tyr_T(B, C) md = tyr_max_dim(x, 1);
  tyr_T(B, 1, C) mk = tyr_max_keepdim(x, 1);
  tyr_T(T, C) nd = tyr_min_dim(x, 0);
  tyr_T(B, T, 1) nk = tyr_min_keepdim(x, -1);
  tyr_T(B, T) am = tyr_argmax(x, 2);
  tyr_T(B, 1, C) ak = tyr_argmax_keepdim(x, 1);
  tyr_T(B, C) im = tyr_argmin(x, -2);
  tyr_T(1, T, C) ik = tyr_argmin_keepdim(x, 0);
  tyr_T(B, T) v = tyr_var(x, -1, false);
  tyr_T(B, T, 1) vk = tyr_var_keepdim(x, 2, true);
  tyr_T(B, C) sd = tyr_sum_dim(x, 1);
  tyr_T(B, T, 1) mk2 = tyr_mean_keepdim(x, 2);
  _Static_assert(tyr_rank(md) == 2 && tyr_dim(md, 1) == C, "typed dims");
  _Static_assert(tyr_rank(m) == 0, "scalar");
  ASSERT_CLOSE(tyr_item(m), tyr_item(tyr_max(md)), 0, 0);
  ASSERT_CLOSE(tyr_item(mn), tyr_item(tyr_min(nd)), 0, 0);
  assert_true(tyr_item(mn) <= tyr_item(m));
  assert_true(tyr_item(va) >= 0);
  assert_true(tyr_item(ai) >= 0 && tyr_item(an) >= 0);
  assert_int_equal(tyr_erase(mk)->shape[1], 1);
  assert_int_equal(tyr_erase(nd)->shape[0], T);
  assert_int_equal(tyr_erase(nk)->shape[2], 1);
  assert_int_equal(tyr_erase(am)->dtype, TYR_I64);
  assert_int_equal(tyr_erase(ak)->rank, 3);
  assert_int_equal(tyr_erase(im)->shape[1], C);
  assert_int_equal(tyr_erase(ik)->shape[0], 1);
  assert_int_equal(tyr_erase(v)->rank, 2);
  assert_int_equal(tyr_erase(vk)->shape[2], 1);
  assert_int_equal(tyr_erase(sd)->shape[1], C);
  assert_int_equal(tyr_erase(mk2)->shape[2], 1);
  /* nested, with a run-time dim */
  volatile int rt_b = B; /* a run-time dim the compiler cannot fold */
  int n = rt_b;
  tyr_T(n, T, C) xd = tyr_cast(tyr_erase(x), n, T, C);
  tyr_T(n) r = tyr_max_dim(tyr_var(xd, 1, true), -1);
  assert_int_equal(tyr_erase(r)->shape[0], B);
  /* a handle that lies about its tensor is caught */
  tyr_T(n, T, C) liar = (tyr_T(n, T, C))tyr_erase(tyr_zeros(C, T, n));
  EXPECT_TYR_ERROR(tyr_max_dim(liar, 0),
                   "tyr_max_dim: x is declared [3, 4, 5] but the tensor is [5, 4, 3]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_dim_values),  TYR_TEST(test_sum_dim_rows),
      TYR_TEST(test_all_values),  TYR_TEST(test_ties_nan_and_integers),
      TYR_TEST(test_gradients),   TYR_TEST(test_argmax_no_grad),
      TYR_TEST(test_errors),      TYR_TEST(test_half_precision),
      TYR_TEST(test_typed_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
