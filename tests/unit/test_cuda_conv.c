/* The convolution family on CUDA against the CPU: conv2d (stride, padding,
 * dilation, groups, depthwise, pointwise, bias), conv1d, conv_transpose2d,
 * pooling, batch norm (training with running statistics, evaluation) and
 * group norm, forward and every gradient, in f32 (1e-4), f64 (1e-10) and
 * bf16 (3e-2).  Without a GPU it prints "no CUDA GPU: skipped" and every
 * test is skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "tyr/tyr.h"

#define CPU TYR_DEVICE_CPU
static bool g_gpu;
#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    if (!g_gpu) skip();                                                                            \
  } while (0)

static double tol_of(tyr_dtype dt) {
  return dt == TYR_F64 ? 1e-10 : dt == TYR_BF16 ? 5e-2 : 1e-4;
}

/* max |a - b| / (1 + |b|) over all elements, a on any device, b on the CPU */
static void expect_close(tyr_tensor *a, tyr_tensor *b, double tol, const char *what) {
  TYR_SCOPE;
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(tyr_numel(a), tyr_numel(b));
  int64_t n = tyr_numel(a);
  double *va = malloc(sizeof(double) * (size_t)(n + 1)),
         *vb = malloc(sizeof(double) * (size_t)(n + 1));
  tyr_to_host_e(tyr_to_dtype_e(tyr_to_device_e(a, CPU), TYR_F64), va, sizeof(double) * (size_t)n);
  tyr_to_host_e(tyr_to_dtype_e(b, TYR_F64), vb, sizeof(double) * (size_t)n);
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(va[i] - vb[i]) / (1 + fabs(vb[i]));
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  double ga = va[at], gb = vb[at];
  free(va);
  free(vb);
  if (!(worst <= tol))
    fail_msg("%s: element %lld: cuda %.8g, cpu %.8g", what, (long long)at, ga, gb);
}

typedef tyr_tensor *(*op_fn)(tyr_tensor **in, void *ctx);

/* Runs fn on CPU leaves and on their CUDA copies (in dt), compares the
 * outputs and the gradients of sum(out * r) for a random r. */
static void check_op(const char *name, op_fn fn, void *ctx, int n, tyr_tensor **cpu_in,
                     tyr_dtype dt) {
  TYR_SCOPE;
  tyr_tensor *gin[6], *cin[6];
  for (int i = 0; i < n; i++) {
    cin[i] = cpu_in[i] ? tyr_requires_grad_e(
                             tyr_to_dtype_e(cpu_in[i], dt == TYR_F64 ? TYR_F64 : TYR_F32), true)
                       : NULL;
    gin[i] = cpu_in[i]
                 ? tyr_requires_grad_e(
                       tyr_to_dtype_e(tyr_to_device_e(cpu_in[i], TYR_DEVICE_CUDA(0)), dt), true)
                 : NULL;
  }
  tyr_tensor *yc = fn(cin, ctx), *yg = fn(gin, ctx);
  assert_non_null(yc);
  assert_non_null(yg);
  char what[96];
  snprintf(what, sizeof what, "%s %s forward", name, tyr_dtype_name(dt));
  expect_close(yg, yc, tol_of(dt), what);
  tyr_tensor *r = tyr_rand_at(TYR_SITE, yc->dtype, CPU, yc->rank, yc->shape, -1, 1);
  tyr_backward_e(tyr_sum_e(tyr_mul_e(yc, r)));
  tyr_tensor *rg = tyr_to_dtype_e(tyr_to_device_e(r, TYR_DEVICE_CUDA(0)), dt);
  tyr_backward_e(tyr_sum_e(tyr_mul_e(yg, rg)));
  for (int i = 0; i < n; i++) {
    if (!cin[i]) continue;
    snprintf(what, sizeof what, "%s %s grad %d", name, tyr_dtype_name(dt), i);
    expect_close(tyr_grad_e(gin[i]), tyr_grad_e(cin[i]), tol_of(dt) * 4, what);
  }
}

static tyr_tensor *leaf(int rank, const int64_t *shape) {
  return tyr_randn_at(TYR_SITE, TYR_F64, CPU, rank, shape, 0, 1);
}
#define LEAF(...) leaf(TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

static tyr_tensor *conv_fn(tyr_tensor **in, void *ctx) {
  return tyr_conv2d_e(in[0], in[1], in[2], (tyr_conv_opts *)ctx);
}
static tyr_tensor *conv3_fn(tyr_tensor **in, void *ctx) {
  return tyr_conv3d_e(in[0], in[1], in[2], (const tyr_conv3d_opts *)ctx);
}
static tyr_tensor *conv1_fn(tyr_tensor **in, void *ctx) {
  return tyr_conv1d_e(in[0], in[1], in[2], (tyr_conv_opts *)ctx);
}
static tyr_tensor *convt_fn(tyr_tensor **in, void *ctx) {
  return tyr_conv_transpose2d_e(in[0], in[1], in[2], (tyr_conv_opts *)ctx);
}

static void test_conv(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_dtype dts[3] = {TYR_F32, TYR_F64, TYR_BF16};
  for (int d = 0; d < 3; d++) {
    TYR_SCOPE;
    tyr_conv_opts o1 = TYR_CONV_OPTS(1, 1, 1, 1),
                  o2 = {.stride = {2, 3}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
    tyr_conv_opts dw = TYR_CONV_OPTS(2, 1, 1, 8), pw = TYR_CONV_OPTS(1, 0, 1, 1);
    check_op("conv2d same", conv_fn, &o1, 3,
             (tyr_tensor *[]){LEAF(4, 3, 13, 11), LEAF(8, 3, 3, 3), LEAF(8)}, dts[d]);
    check_op("conv2d strided groups", conv_fn, &o2, 3,
             (tyr_tensor *[]){LEAF(3, 4, 12, 15), LEAF(6, 2, 3, 3), NULL}, dts[d]);
    check_op("conv2d depthwise", conv_fn, &dw, 3,
             (tyr_tensor *[]){LEAF(2, 8, 9, 9), LEAF(8, 1, 3, 3), LEAF(8)}, dts[d]);
    check_op("conv2d pointwise", conv_fn, &pw, 3,
             (tyr_tensor *[]){LEAF(2, 8, 7, 7), LEAF(16, 8, 1, 1), NULL}, dts[d]);
    tyr_conv_opts c1 = {.stride = {2}, .padding = {1}, .dilation = {2}, .groups = 1};
    check_op("conv1d", conv1_fn, &c1, 3, (tyr_tensor *[]){LEAF(2, 4, 17), LEAF(6, 4, 3), LEAF(6)},
             dts[d]);
    tyr_conv_opts ct = {.stride = {2, 2},
                        .padding = {1, 1},
                        .dilation = {1, 1},
                        .groups = 1,
                        .output_padding = {1, 0}};
    tyr_conv3d_opts c3 = {
        .stride = {2, 1, 1}, .padding = {1, 1, 0}, .dilation = {1, 1, 2}, .groups = 2};
    check_op("conv3d", conv3_fn, &c3, 3,
             (tyr_tensor *[]){LEAF(2, 4, 5, 6, 7), LEAF(6, 2, 3, 3, 2), LEAF(6)}, dts[d]);
    check_op("conv_transpose2d", convt_fn, &ct, 3,
             (tyr_tensor *[]){LEAF(2, 4, 5, 6), LEAF(4, 3, 3, 3), LEAF(3)}, dts[d]);
  }
}

typedef struct {
  int kind;
} pool_ctx;
static tyr_tensor *pool_fn(tyr_tensor **in, void *ctx) {
  int k = ((pool_ctx *)ctx)->kind;
  if (k == 0) return tyr_max_pool2d_e(in[0], 3, 2, 1);
  if (k == 1) return tyr_avg_pool2d_e(in[0], 3, 2, 1);
  return tyr_adaptive_avg_pool2d_e(in[0], 3, 2);
}

static void test_pool(void **state) {
  (void)state;
  REQUIRE_GPU();
  for (int k = 0; k < 3; k++)
    for (int d = 0; d < 2; d++) {
      TYR_SCOPE; /* the leaf */
      pool_ctx c = {k};
      check_op("pool", pool_fn, &c, 1, (tyr_tensor *[]){LEAF(2, 3, 11, 8)}, d ? TYR_F64 : TYR_F32);
    }
}

typedef struct {
  bool training;
  tyr_tensor *rm, *rv;
} bn_ctx;
static tyr_tensor *bn_fn(tyr_tensor **in, void *ctx) {
  bn_ctx *c = ctx;
  tyr_dtype sdt = in[0]->dtype == TYR_F64 ? TYR_F64 : TYR_F32;
  tyr_tensor *rm = tyr_to_dtype_e(tyr_to_device_e(c->rm, in[0]->device), sdt);
  tyr_tensor *rv = tyr_to_dtype_e(tyr_to_device_e(c->rv, in[0]->device), sdt);
  return tyr_batch_norm_e(in[0], in[1], in[2], rm, rv, c->training, 0.1, 1e-5);
}
static tyr_tensor *gn_fn(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_group_norm_e(in[0], 2, in[1], in[2], 1e-5);
}

static void test_norms(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_dtype dts[3] = {TYR_F32, TYR_F64, TYR_BF16};
  for (int d = 0; d < 3; d++)
    for (int tr = 0; tr < 2; tr++) {
      TYR_SCOPE;
      bn_ctx c = {tr, LEAF(6), tyr_rand_at(TYR_SITE, TYR_F64, CPU, 1, (int64_t[]){6}, 0.5, 2)};
      check_op("batch_norm", bn_fn, &c, 3, (tyr_tensor *[]){LEAF(5, 6, 7, 3), LEAF(6), LEAF(6)},
               dts[d]);
      check_op("group_norm", gn_fn, NULL, 3, (tyr_tensor *[]){LEAF(3, 6, 5, 4), LEAF(6), LEAF(6)},
               dts[d]);
    }
  /* the running statistics are updated the same way */
  TYR_SCOPE;
  tyr_tensor *x = LEAF(8, 4, 5, 5);
  tyr_tensor *rmc = tyr_zeros_at(TYR_SITE, TYR_F32, CPU, 1, (int64_t[]){4});
  tyr_tensor *rvc = tyr_ones_at(TYR_SITE, TYR_F32, CPU, 1, (int64_t[]){4});
  tyr_tensor *rmg = tyr_to_device_e(rmc, TYR_DEVICE_CUDA(0)),
             *rvg = tyr_to_device_e(rvc, TYR_DEVICE_CUDA(0));
  tyr_tensor *xf = tyr_to_dtype_e(x, TYR_F32);
  assert_non_null(tyr_batch_norm_e(xf, NULL, NULL, rmc, rvc, true, 0.3, 1e-5));
  assert_non_null(tyr_batch_norm_e(tyr_to_device_e(xf, TYR_DEVICE_CUDA(0)), NULL, NULL, rmg, rvg,
                                   true, 0.3, 1e-5));
  expect_close(rmg, rmc, 1e-6, "running_mean");
  expect_close(rvg, rvc, 1e-6, "running_var");
}

int main(void) {
  g_gpu = tyr_cuda_available();
  if (!g_gpu) printf("no CUDA GPU: skipped\n");
  fflush(stdout);
  const struct CMUnitTest tests[] = {TYR_TEST(test_conv), TYR_TEST(test_pool),
                                     TYR_TEST(test_norms)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
