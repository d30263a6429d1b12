/* Elementwise ops: values against double-precision references, gradients
 * against finite differences, shape and dtype errors, bf16/f16 paths. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gradcheck.h"

typedef struct {
  const char *name;
  tyr_tensor *(*fn)(tyr_site, tyr_tensor *);
  double (*ref)(double);
  double lo, hi; /* input range where the op is smooth */
  bool diff;
} unary_case;

static double r_neg(double x) {
  return -x;
}
static double r_sigmoid(double x) {
  return 1 / (1 + exp(-x));
}
static double r_relu(double x) {
  return x > 0 ? x : 0;
}
static double r_relu2(double x) {
  return x > 0 ? x * x : 0;
}
static double r_gelu(double x) {
  return 0.5 * x * (1 + erf(x / sqrt(2)));
}
static double r_gelu_tanh(double x) {
  return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double r_silu(double x) {
  return x / (1 + exp(-x));
}
static double r_rsqrt(double x) {
  return 1 / sqrt(x);
}
static double r_square(double x) {
  return x * x;
}
static double r_recip(double x) {
  return 1 / x;
}
static double r_sign(double x) {
  return (x > 0) - (x < 0);
}

static double r_softplus(double x) {
  return x > 20 ? x : log1p(exp(x));
}
static double r_leaky_relu(double x) {
  return x > 0 ? x : 0.01 * x;
}
static tyr_tensor *leaky_relu_01(tyr_site s, tyr_tensor *x) {
  return tyr_leaky_relu_at(s, x, 0.01);
}

static const unary_case UNARY[] = {
    {"neg", tyr_neg_at, r_neg, -2, 2, true},
    {"exp", tyr_exp_at, exp, -2, 2, true},
    {"log", tyr_log_at, log, 0.2, 3, true},
    {"sqrt", tyr_sqrt_at, sqrt, 0.2, 3, true},
    {"rsqrt", tyr_rsqrt_at, r_rsqrt, 0.2, 3, true},
    {"abs", tyr_abs_at, fabs, 0.1, 2, true},
    {"tanh", tyr_tanh_at, tanh, -2, 2, true},
    {"sigmoid", tyr_sigmoid_at, r_sigmoid, -3, 3, true},
    {"relu", tyr_relu_at, r_relu, 0.1, 2, true},
    {"relu2", tyr_relu2_at, r_relu2, 0.1, 2, true},
    {"gelu", tyr_gelu_at, r_gelu, -3, 3, true},
    {"gelu_tanh", tyr_gelu_tanh_at, r_gelu_tanh, -3, 3, true},
    {"silu", tyr_silu_at, r_silu, -3, 3, true},
    {"square", tyr_square_at, r_square, -2, 2, true},
    {"reciprocal", tyr_reciprocal_at, r_recip, 0.5, 2, true},
    {"sign", tyr_sign_at, r_sign, -2, 2, false},
    {"sin", tyr_sin_at, sin, -3, 3, true},
    {"cos", tyr_cos_at, cos, -3, 3, true},
    {"softplus", tyr_softplus_at, r_softplus, -4, 4, true},
    {"leaky_relu", leaky_relu_01, r_leaky_relu, -2, 2, true},
};
#define NUNARY (sizeof UNARY / sizeof UNARY[0])

static void test_unary_values(void **state) {
  (void)state;
  TYR_SCOPE;
  for (size_t c = 0; c < NUNARY; c++) {
    for (int dt = 0; dt < 2; dt++) {
      tyr_dtype dtype = dt ? TYR_F64 : TYR_F32;
      double lo = UNARY[c].lo < 0 ? UNARY[c].lo : -UNARY[c].hi;
      if (UNARY[c].lo > 0) lo = UNARY[c].lo;
      tyr_tensor *x =
          tyr_rand_at(TYR_SITE, dtype, TYR_DEVICE_CPU, 2, (int64_t[]){7, 9}, lo, UNARY[c].hi);
      tyr_tensor *y = UNARY[c].fn(TYR_SITE, x);
      assert_non_null(y);
      assert_int_equal(y->dtype, dtype);
      for (int64_t i = 0; i < 7; i++)
        for (int64_t j = 0; j < 9; j++) {
          double xv = tyr_get_e(x, i, j);
          ASSERT_CLOSE(tyr_get_e(y, i, j), UNARY[c].ref(xv), dt ? 1e-12 : 1e-6, dt ? 1e-12 : 1e-5);
        }
    }
  }
}

/* softplus above PyTorch's threshold and far below it, leaky_relu's slope
 * and its derivative on both sides (torch.nn.functional.softplus(
 * torch.tensor([25., -30., 0.])) = [25., 9.3576e-14, 0.6931]) */
static void test_softplus_leaky_relu(void **state) {
  (void)state;
  TYR_SCOPE;
  double v[3] = {25, -30, 0};
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, v, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){3});
  tyr_tensor *y = tyr_softplus_e(x);
  ASSERT_CLOSE(tyr_get_e(y, 0), 25.0, 0, 1e-15);
  ASSERT_CLOSE(tyr_get_e(y, 1), 9.357622968840175e-14, 0, 1e-12);
  ASSERT_CLOSE(tyr_get_e(y, 2), log(2.0), 0, 1e-15);
  double w[2] = {-3, 2};
  tyr_tensor *l = tyr_requires_grad_at(
      TYR_SITE, tyr_from_host_at(TYR_SITE, w, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){2}), true);
  tyr_tensor *ly = tyr_leaky_relu_e(l, 0.2);
  ASSERT_CLOSE(tyr_get_e(ly, 0), -0.6, 0, 1e-15);
  ASSERT_CLOSE(tyr_get_e(ly, 1), 2.0, 0, 1e-15);
  tyr_backward_e(tyr_sum_e(ly));
  ASSERT_CLOSE(tyr_get_e(tyr_grad_e(l), 0), 0.2, 0, 1e-15);
  ASSERT_CLOSE(tyr_get_e(tyr_grad_e(l), 1), 1.0, 0, 1e-15);
}

typedef struct {
  size_t c;
} unary_ctx;
static tyr_tensor *call_unary(tyr_tensor **in, void *ctx) {
  return UNARY[((unary_ctx *)ctx)->c].fn(TYR_SITE, in[0]);
}

static void test_unary_gradients(void **state) {
  (void)state;
  for (size_t c = 0; c < NUNARY; c++) {
    if (!UNARY[c].diff) continue;
    tyr_tensor *x = TYR_TEST_LEAF(UNARY[c].lo, UNARY[c].hi, 3, 4);
    unary_ctx ctx = {c};
    tyr_gradcheck(UNARY[c].name, call_unary, &ctx, 1, &x, 1e-6, 1e-6);
    tyr_tensor_free(x);
  }
}

static tyr_tensor *call_softcap(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_softcap_e(in[0], 1.5);
}
static tyr_tensor *call_clamp(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_clamp_e(in[0], -0.5, 0.7);
}
static tyr_tensor *call_pow_scalar(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_pow_scalar_e(in[0], 2.5);
}
static tyr_tensor *call_scalars(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *t = tyr_add_scalar_e(in[0], 1.5);
  t = tyr_sub_scalar_e(t, 0.25);
  t = tyr_mul_scalar_e(t, -2.0);
  t = tyr_div_scalar_e(t, 3.0);
  t = tyr_rsub_scalar_e(t, 4.0);
  return tyr_rdiv_scalar_e(t, 2.0);
}

static void test_scalar_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, (double[]){-1, 0.25, 2, 3}, TYR_F64, TYR_DEVICE_CPU, 1,
                                   (int64_t[]){4});
  tyr_tensor *sc = tyr_softcap_e(x, 1.5), *cl = tyr_clamp_e(x, -0.5, 0.7),
             *p = tyr_pow_scalar_e(x, 2.0);
  tyr_tensor *chain = call_scalars(&x, NULL);
  for (int64_t i = 0; i < 4; i++) {
    double v = tyr_get_e(x, i);
    ASSERT_CLOSE(tyr_get_e(sc, i), 1.5 * tanh(v / 1.5), 1e-12, 0);
    ASSERT_CLOSE(tyr_get_e(cl, i), fmin(fmax(v, -0.5), 0.7), 0, 0);
    ASSERT_CLOSE(tyr_get_e(p, i), v * v, 1e-12, 0);
    ASSERT_CLOSE(tyr_get_e(chain, i), 2.0 / (4.0 - (-2.0 * (v + 1.25)) / 3.0), 1e-12, 1e-12);
  }
  tyr_tensor *leaf = TYR_TEST_LEAF(-1, 1, 5);
  tyr_gradcheck("softcap", call_softcap, NULL, 1, &leaf, 1e-6, 1e-6);
  tyr_gradcheck("clamp", call_clamp, NULL, 1, &leaf, 1e-6, 1e-6);
  tyr_gradcheck("scalar forms", call_scalars, NULL, 1, &leaf, 1e-6, 1e-6);
  tyr_tensor_free(leaf);
  leaf = TYR_TEST_LEAF(0.5, 2, 5);
  tyr_gradcheck("pow_scalar", call_pow_scalar, NULL, 1, &leaf, 1e-6, 1e-6);
  tyr_tensor_free(leaf);
  EXPECT_TYR_ERROR(tyr_softcap_e(x, 0), "tyr_softcap: cap must be positive");
  EXPECT_TYR_ERROR(tyr_clamp_e(x, 1, 0), "tyr_clamp: lo (1) is above hi (0)");
  EXPECT_TYR_ERROR(tyr_div_scalar_e(x, 0), "tyr_div_scalar: division by zero");
}

typedef struct {
  const char *name;
  tyr_tensor *(*fn)(tyr_site, tyr_tensor *, tyr_tensor *);
  double (*ref)(double, double);
} binary_case;
static double b_add(double a, double b) {
  return a + b;
}
static double b_sub(double a, double b) {
  return a - b;
}
static double b_mul(double a, double b) {
  return a * b;
}
static double b_div(double a, double b) {
  return a / b;
}
static double b_max(double a, double b) {
  return a > b ? a : b;
}
static double b_min(double a, double b) {
  return a < b ? a : b;
}
static const binary_case BINARY[] = {
    {"add", tyr_add_at, b_add},         {"sub", tyr_sub_at, b_sub},
    {"mul", tyr_mul_at, b_mul},         {"div", tyr_div_at, b_div},
    {"pow", tyr_pow_at, pow},           {"maximum", tyr_maximum_at, b_max},
    {"minimum", tyr_minimum_at, b_min},
};
#define NBINARY (sizeof BINARY / sizeof BINARY[0])
static tyr_tensor *call_binary(tyr_tensor **in, void *ctx) {
  return BINARY[*(size_t *)ctx].fn(TYR_SITE, in[0], in[1]);
}

static void test_binary_values_and_gradients(void **state) {
  (void)state;
  for (size_t c = 0; c < NBINARY; c++) {
    tyr_tensor *in[2] = {TYR_TEST_LEAF(0.5, 2, 4, 5), TYR_TEST_LEAF(0.5, 2, 4, 5)};
    {
      TYR_SCOPE;
      tyr_tensor *y = BINARY[c].fn(TYR_SITE, in[0], in[1]);
      for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 5; j++)
          ASSERT_CLOSE(tyr_get_e(y, i, j),
                       BINARY[c].ref(tyr_get_e(in[0], i, j), tyr_get_e(in[1], i, j)), 1e-12, 1e-12);
    }
    tyr_gradcheck(BINARY[c].name, call_binary, &c, 2, in, 1e-6, 1e-6);
    tyr_tensor_free(in[0]);
    tyr_tensor_free(in[1]);
  }
}

static void test_comparisons_where_masked_fill(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a =
      tyr_from_host_at(TYR_SITE, (float[]){1, 2, 3, 4}, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){4});
  tyr_tensor *b =
      tyr_from_host_at(TYR_SITE, (float[]){4, 2, 1, 4}, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){4});
  struct {
    tyr_tensor *t;
    int expect[4];
  } cmp[] = {
      {tyr_eq_e(a, b), {0, 1, 0, 1}}, {tyr_ne_e(a, b), {1, 0, 1, 0}},
      {tyr_lt_e(a, b), {1, 0, 0, 0}}, {tyr_le_e(a, b), {1, 1, 0, 1}},
      {tyr_gt_e(a, b), {0, 0, 1, 0}}, {tyr_ge_e(a, b), {0, 1, 1, 1}},
  };
  for (size_t k = 0; k < 6; k++) {
    assert_int_equal(cmp[k].t->dtype, TYR_BOOL);
    for (int64_t i = 0; i < 4; i++) assert_int_equal((int)tyr_get_e(cmp[k].t, i), cmp[k].expect[i]);
  }
  tyr_tensor *w = tyr_where_e(cmp[2].t, a, b); /* a < b ? a : b */
  tyr_tensor *m = tyr_masked_fill_e(a, cmp[0].t, -1.0);
  float ew[4] = {1, 2, 1, 4}, em[4] = {1, -1, 3, -1};
  for (int64_t i = 0; i < 4; i++) {
    ASSERT_CLOSE(tyr_get_e(w, i), ew[i], 0, 0);
    ASSERT_CLOSE(tyr_get_e(m, i), em[i], 0, 0);
  }
  EXPECT_TYR_ERROR(tyr_where_e(a, a, b), "tyr_where: cond must be bool or u8, not f32");
}

static tyr_tensor *g_mask;
static tyr_tensor *call_where(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_where_e(g_mask, in[0], in[1]);
}
static tyr_tensor *call_masked_fill(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_masked_fill_e(in[0], g_mask, 3.0);
}

static void test_where_gradients(void **state) {
  (void)state;
  tyr_tensor *in[2] = {TYR_TEST_LEAF(-1, 1, 3, 3), TYR_TEST_LEAF(-1, 1, 3, 3)};
  tyr_scope_begin();
  g_mask = tyr_gt_e(in[0], in[1]);
  tyr_gradcheck("where", call_where, NULL, 2, in, 1e-6, 1e-6);
  tyr_gradcheck("masked_fill", call_masked_fill, NULL, 1, in, 1e-6, 1e-6);
  tyr_scope_end();
  tyr_tensor_free(in[0]);
  tyr_tensor_free(in[1]);
}

static tyr_tensor *call_add_row(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_add_row_e(in[0], in[1]);
}
static tyr_tensor *call_mul_row(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_mul_row_e(in[0], in[1]);
}
static tyr_tensor *call_sub_col(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_sub_col_e(in[0], in[1]);
}
static tyr_tensor *call_div_col(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_div_col_e(in[0], in[1]);
}
static tyr_tensor *call_expand(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_expand_e(in[0], 2, 3, 4);
}

static void test_broadcast_forms(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(0.5, 2, 2, 3, 4), *row = TYR_TEST_LEAF(0.5, 2, 4),
             *col = TYR_TEST_LEAF(0.5, 2, 2, 3);
  {
    TYR_SCOPE;
    tyr_tensor *r = tyr_add_row_e(x, row), *c = tyr_div_col_e(x, col);
    for (int64_t i = 0; i < 2; i++)
      for (int64_t j = 0; j < 3; j++)
        for (int64_t k = 0; k < 4; k++) {
          ASSERT_CLOSE(tyr_get_e(r, i, j, k), tyr_get_e(x, i, j, k) + tyr_get_e(row, k), 1e-12, 0);
          ASSERT_CLOSE(tyr_get_e(c, i, j, k), tyr_get_e(x, i, j, k) / tyr_get_e(col, i, j), 1e-12,
                       1e-12);
        }
    EXPECT_TYR_ERROR(tyr_add_row_e(x, col),
                     "tyr_add_row: x is [2, 3, 4], so row must be [4], but it is [2, 3]");
    EXPECT_TYR_ERROR(tyr_mul_col_e(x, row), "tyr_mul_col: x is [2, 3, 4]");
    EXPECT_TYR_ERROR(tyr_expand_e(col, 2, 3, 4), "tyr_expand: cannot expand [2, 3] to [2, 3, 4]");
  }
  tyr_tensor *in[2] = {x, row};
  tyr_gradcheck("add_row", call_add_row, NULL, 2, in, 1e-6, 1e-6);
  tyr_gradcheck("mul_row", call_mul_row, NULL, 2, in, 1e-6, 1e-6);
  in[1] = col;
  tyr_gradcheck("sub_col", call_sub_col, NULL, 2, in, 1e-6, 1e-6);
  tyr_gradcheck("div_col", call_div_col, NULL, 2, in, 1e-6, 1e-6);
  tyr_tensor *small = TYR_TEST_LEAF(-1, 1, 3, 1);
  tyr_gradcheck("expand", call_expand, NULL, 1, &small, 1e-6, 1e-6);
  tyr_tensor_free(small);
  tyr_tensor_free(x);
  tyr_tensor_free(row);
  tyr_tensor_free(col);
}

/* f32 add, mul and sub where b is an expanded view (stride 0 over leading
   dims): the CPU's broadcast-block path (a contiguous, b one contiguous block
   repeated) and the general one must give each element's float result
   exactly, on both sides of the parallel threshold and with a as a
   transposed view. */
static void test_expanded_operands(void **state) {
  (void)state;
  const tyr_device cpu = TYR_DEVICE_CPU;
  const int64_t sizes[2][3] = {{2, 3, 5}, {8, 33, 130}}; /* 30 and 34,320 elements */
  for (int z = 0; z < 2; z++) {
    TYR_SCOPE;
    int64_t B = sizes[z][0], T = sizes[z][1], C = sizes[z][2];
    tyr_tensor *src[6] = {
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 2, (int64_t[]){T, C}, 0, 1), /* a block */
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 1, (int64_t[]){C}, 0, 1),    /* a row */
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 1, (int64_t[]){1}, 0, 1),    /* a scalar */
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 3, (int64_t[]){B, 1, C}, 0, 1),
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 3, (int64_t[]){1, T, 1}, 0, 1),
        tyr_transpose_e(tyr_randn_at(TYR_SITE, TYR_F32, cpu, 2, (int64_t[]){C, T}, 0, 1), 0, 1),
    };
    tyr_tensor *as[2] = {
        tyr_randn_at(TYR_SITE, TYR_F32, cpu, 3, (int64_t[]){B, T, C}, 0, 1),
        tyr_transpose_e(tyr_randn_at(TYR_SITE, TYR_F32, cpu, 3, (int64_t[]){B, C, T}, 0, 1), 1, 2),
    };
    for (int k = 0; k < 6; k++)
      for (int l = 0; l < 2; l++) {
        tyr_tensor *a = as[l], *b = tyr_expand_e(src[k], B, T, C);
        tyr_tensor *sum = tyr_add_e(a, b), *prod = tyr_mul_e(a, b), *diff = tyr_sub_e(a, b);
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < T; j++)
            for (int64_t c = 0; c < C; c++) {
              float x = (float)tyr_get_e(a, i, j, c), y = (float)tyr_get_e(b, i, j, c);
              float s = x + y, m = x * y, d = x - y;
              if (tyr_get_e(sum, i, j, c) != s || tyr_get_e(prod, i, j, c) != m ||
                  tyr_get_e(diff, i, j, c) != d)
                fail_msg("source %d, a layout %d, [%lld, %lld, %lld]: %g %g %g, want %g %g %g", k,
                         l, (long long)i, (long long)j, (long long)c, tyr_get_e(sum, i, j, c),
                         tyr_get_e(prod, i, j, c), tyr_get_e(diff, i, j, c), (double)s, (double)m,
                         (double)d);
            }
      }
  }
}

static void test_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a = tyr_zeros_e(2, 3), *b = tyr_zeros_e(3, 2);
  tyr_tensor *d = tyr_zeros_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  tyr_tensor *i = tyr_zeros_at(TYR_SITE, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(tyr_add_e(a, b), "tyr_add: operands have different shapes [2, 3] and [3, 2]");
  EXPECT_TYR_ERROR(tyr_mul_e(a, d), "tyr_mul: operands have different dtypes (f32 and f64)");
  EXPECT_TYR_ERROR(tyr_exp_e(i), "tyr_exp: x must be a floating dtype, not i32");
  EXPECT_TYR_ERROR(tyr_add_e(a, NULL), "tyr_add: b is NULL");
  /* the message names this file and line */
  EXPECT_TYR_ERROR(tyr_sub_e(a, b), "test_ops_elementwise.c");
  char where[64];
  int line = __LINE__;
  tyr_sub_e(a, b);
  snprintf(where, sizeof where, "test_ops_elementwise.c:%d: tyr_sub", line + 1);
  assert_non_null(strstr(tyr_test_error_message(), where));
  tyr_test_error_reset();
  /* integer arithmetic works; bool arithmetic is refused */
  tyr_tensor *ii = tyr_add_e(i, i);
  assert_int_equal(ii->dtype, TYR_I32);
  tyr_tensor *bb = tyr_eq_e(a, a);
  EXPECT_TYR_ERROR(tyr_add_e(bb, bb), "tyr_add: arithmetic on bool tensors");
}

/* GELU's derivative at the ends of the range and across 0, in f32 and f64:
   0 at -inf, 1 at +inf (not inf * 0), 0.5 at 0, Phi(x) + x phi(x) between
   (for x = -10 both terms are tiny: relative, no cancellation in f64) */
static void test_gelu_grad_limits(void **state) {
  (void)state;
  const double xs[] = {-INFINITY, -10, -3, -0.75, 0, 0.5, 3, 10, INFINITY};
  const int n = (int)(sizeof xs / sizeof xs[0]);
  for (int k = 0; k < 2; k++) {
    TYR_SCOPE;
    tyr_dtype dt = k ? TYR_F64 : TYR_F32;
    tyr_tensor *x = tyr_full_at(TYR_SITE, dt, TYR_DEVICE_CPU, 1, (int64_t[]){n}, 0);
    for (int i = 0; i < n; i++) tyr_set_e(x, xs[i], i);
    tyr_requires_grad_e(x, true);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_gelu_e(x))), 0);
    tyr_tensor *g = tyr_grad_e(x);
    for (int i = 0; i < n; i++) {
      double v = xs[i], got = tyr_get_e(g, i);
      double want = isinf(v) ? (v > 0 ? 1 : 0)
                             : 0.5 * erfc(-v / sqrt(2)) + v * exp(-0.5 * v * v) / sqrt(2 * M_PI);
      double tol = k ? 1e-12 * fmax(fabs(want), 1e-300) : 4e-7;
      if (!(fabs(got - want) <= tol))
        fail_msg("gelu' %s at %g: %.17g, want %.17g", tyr_dtype_name(dt), v, got, want);
    }
  }
}

static void test_half_precision(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int k = 0; k < 2; k++) {
    tyr_dtype dt = k ? TYR_F16 : TYR_BF16;
    tyr_tensor *x = tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 1, (int64_t[]){16}, 0, 1);
    tyr_tensor *y = tyr_gelu_e(tyr_add_e(x, x));
    assert_int_equal(y->dtype, dt);
    for (int64_t i = 0; i < 16; i++) {
      double v = 2 * tyr_get_e(x, i);
      ASSERT_CLOSE(tyr_get_e(y, i), 0.5 * v * (1 + erf(v / sqrt(2))), 1e-2, k ? 2e-3 : 1e-2);
    }
  }
}

/* tyr_to_dtype_many: each output is what tyr_to_dtype makes of its input
   (tensors of two dtypes, a transposed one, an integer one), each gradient
   reaches its own input (finite differences, in f64), and bad arguments
   name the argument. */
static tyr_tensor *call_to_dtype_many(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *out[2];
  if (tyr_to_dtype_many_e(2, in, TYR_F64, out) != 0) return NULL;
  return tyr_add_e(tyr_mul_e(out[0], out[0]), tyr_mul_scalar_e(out[1], 3.0));
}

static void test_to_dtype_many(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *in[4] = {
      tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){3, 5}, 0, 1),
      tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){7}, 0, 1),
      tyr_transpose_e(tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){4, 6}, 0, 1),
                      0, 1),
      tyr_randint_at(TYR_SITE, TYR_I32, TYR_DEVICE_CPU, 1, (int64_t[]){9}, -50, 50)};
  const tyr_dtype to[] = {TYR_F32, TYR_BF16, TYR_F64, TYR_I64};
  for (int d = 0; d < 4; d++) {
    tyr_tensor *out[4];
    assert_int_equal(tyr_to_dtype_many_e(4, in, to[d], out), 0);
    for (int i = 0; i < 4; i++) {
      tyr_tensor *want = tyr_to_dtype_e(in[i], to[d]);
      assert_int_equal(out[i]->dtype, to[d]);
      assert_int_equal(out[i]->rank, want->rank);
      for (int k = 0; k < want->rank; k++) assert_int_equal(out[i]->shape[k], want->shape[k]);
      int64_t n = tyr_numel(want);
      for (int64_t j = 0; j < n; j++) {
        double a = tyr_get_e(tyr_reshape_e(tyr_contiguous_e(out[i]), n), j);
        double b = tyr_get_e(tyr_reshape_e(tyr_contiguous_e(want), n), j);
        if (a != b && !(isnan(a) && isnan(b)))
          fail_msg("to_dtype_many -> %s, tensor %d element %lld: %.9g, tyr_to_dtype %.9g",
                   tyr_dtype_name(to[d]), i, (long long)j, a, b);
      }
    }
  }
  tyr_tensor *leaves[2] = {TYR_TEST_LEAF(-1, 1, 3, 4), TYR_TEST_LEAF(-1, 1, 3, 4)};
  tyr_gradcheck("to_dtype_many", call_to_dtype_many, NULL, 2, leaves, 1e-6, 1e-6);
  tyr_tensor_free(leaves[0]);
  tyr_tensor_free(leaves[1]);
  /* errors: nothing made, the argument named */
  tyr_tensor *out[2] = {in[0], in[0]};
  assert_int_equal(tyr_to_dtype_many_e(-1, in, TYR_F32, out), TYR_ERR_ARG);
  tyr_tensor *with_null[2] = {in[0], NULL};
  assert_int_equal(tyr_to_dtype_many_e(2, with_null, TYR_F32, out), TYR_ERR_ARG);
  assert_non_null(strstr(tyr_test_error_message(), "ts[1]"));
  assert_null(out[0]);
  assert_int_equal(tyr_to_dtype_many_e(2, in, (tyr_dtype)99, out), TYR_ERR_DTYPE);
  assert_int_equal(tyr_to_dtype_many_e(0, NULL, TYR_F32, NULL), 0);
  tyr_test_error_reset();
}

/* tyr_residual_add(x, y) is tyr_add(x, tyr_to_dtype(y, x's dtype)) bit for bit,
 * and its gradients are those of that composition: x's the incoming one,
 * y's that converted to y's dtype. */
static void test_residual_add(void **state) {
  (void)state;
  const tyr_dtype pairs[][2] = {{TYR_F32, TYR_BF16}, {TYR_F32, TYR_F16},  {TYR_F32, TYR_F32},
                                {TYR_F64, TYR_F32},  {TYR_BF16, TYR_F32}, {TYR_F16, TYR_BF16}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    TYR_SCOPE;
    tyr_dtype xdt = pairs[k][0], ydt = pairs[k][1];
    int64_t sh[3] = {2, 3, 20};
    tyr_tensor *x1 = tyr_randn_at(TYR_SITE, xdt, TYR_DEVICE_CPU, 3, sh, 0, 1);
    tyr_tensor *y1 = tyr_randn_at(TYR_SITE, ydt, TYR_DEVICE_CPU, 3, sh, 0, 1);
    tyr_tensor *x2 = tyr_requires_grad_e(tyr_clone_e(x1), true);
    tyr_tensor *y2 = tyr_requires_grad_e(tyr_clone_e(y1), true);
    tyr_requires_grad_e(x1, true);
    tyr_requires_grad_e(y1, true);
    tyr_tensor *r1 = tyr_residual_add_e(x1, y1);
    tyr_tensor *r2 = tyr_add_e(x2, tyr_to_dtype_e(y2, xdt));
    assert_int_equal(r1->dtype, xdt);
    tyr_tensor *g = tyr_randn_at(TYR_SITE, xdt, TYR_DEVICE_CPU, 3, sh, 0, 1);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(r1, g))), 0);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(r2, g))), 0);
    tyr_tensor *gy = tyr_grad_e(y1);
    assert_int_equal(gy->dtype, ydt);
    tyr_tensor *got[3] = {r1, tyr_grad_e(x1), gy}, *want[3] = {r2, tyr_grad_e(x2), tyr_grad_e(y2)};
    for (int t = 0; t < 3; t++)
      for (int64_t i = 0; i < 120; i++) {
        double a = tyr_get_e(tyr_reshape_e(got[t], 120), i);
        double b = tyr_get_e(tyr_reshape_e(want[t], 120), i);
        if (a != b)
          fail_msg("residual_add %s + %s, %s element %lld: %.9g, composition %.9g",
                   tyr_dtype_name(xdt), tyr_dtype_name(ydt), t ? (t == 1 ? "dx" : "dy") : "value",
                   (long long)i, a, b);
      }
  }
  TYR_SCOPE;
  tyr_tensor *a = tyr_zeros_e(2, 3), *b = tyr_zeros_e(3, 2);
  tyr_tensor *i = tyr_zeros_at(TYR_SITE, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  EXPECT_TYR_ERROR(tyr_residual_add_e(a, b),
                   "tyr_residual_add: operands have different shapes [2, 3] and [3, 2]");
  EXPECT_TYR_ERROR(tyr_residual_add_e(a, i),
                   "tyr_residual_add: y must be a floating dtype, not i32");
  EXPECT_TYR_ERROR(tyr_residual_add_e(i, a),
                   "tyr_residual_add: x must be a floating dtype, not i32");
  EXPECT_TYR_ERROR(tyr_residual_add_e(a, NULL), "tyr_residual_add: y is NULL");
  /* the typed form: shapes in the types, the result x's type */
  enum { N = 3, C = 4 };
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(N, C) hb = tyr_to_dtype(tyr_randn(N, C), TYR_BF16);
  tyr_T(N, C) r = tyr_residual_add(x, hb);
  assert_int_equal(tyr_erase(r)->dtype, TYR_F32);
  static volatile int vm = C + 1;
  int m = vm;
  tyr_T(N, m) other = tyr_zeros(N, m);
  EXPECT_TYR_ERROR(tyr_residual_add(x, other),
                   "tyr_residual_add: operands have different shapes [3, 4] and [3, 5]");
}

static void test_typed_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { N = 3, C = 4 };
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(C) b = tyr_ones(C);
  tyr_T(N, C) y = tyr_add_row(tyr_gelu(tyr_mul(x, x)), b);
  tyr_T(N) col = tyr_full(2.0, N);
  tyr_T(N, C) z = tyr_div_col(y, col);
  tyr_T(N, C) w = tyr_where(tyr_gt(z, x), z, x);
  _Static_assert(tyr_rank(w) == 2 && tyr_dim(w, 0) == N && tyr_dim(w, -1) == C, "typed dims");
  assert_int_equal(tyr_erase(w)->shape[1], C);
  /* a run-time dim: same code, checked at run time */
  static volatile int vn = N, vm = C + 1; /* unknown to the optimizer */
  int n = vn;
  tyr_T(n, C) xd = tyr_cast(tyr_erase(x), n, C);
  tyr_T(n, C) sd = tyr_add(xd, x);
  ASSERT_CLOSE(tyr_get(sd, 1, 2), 2 * tyr_get(x, 1, 2), 1e-6, 0);
  /* a handle whose type lies about its tensor is caught at its next use */
  tyr_T(n, C) liar = (tyr_T(n, C))tyr_erase(tyr_zeros(C, N));
  EXPECT_TYR_ERROR(tyr_add(liar, x), "tyr_add: a is declared [3, 4] but the tensor is [4, 3]");
  int m = vm;
  tyr_T(n, m) other = tyr_zeros(n, m);
  EXPECT_TYR_ERROR(tyr_add(xd, other), "tyr_add: operands have different shapes [3, 4] and [3, 5]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_unary_values),
      TYR_TEST(test_softplus_leaky_relu),
      TYR_TEST(test_unary_gradients),
      TYR_TEST(test_scalar_forms),
      TYR_TEST(test_binary_values_and_gradients),
      TYR_TEST(test_comparisons_where_masked_fill),
      TYR_TEST(test_where_gradients),
      TYR_TEST(test_broadcast_forms),
      TYR_TEST(test_expanded_operands),
      TYR_TEST(test_errors),
      TYR_TEST(test_gelu_grad_limits),
      TYR_TEST(test_half_precision),
      TYR_TEST(test_residual_add),
      TYR_TEST(test_to_dtype_many),
      TYR_TEST(test_typed_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
