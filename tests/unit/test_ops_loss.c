/* Losses against values computed with PyTorch 1.13 (torch.nn.functional,
 * float64, inputs below), every reduction, gradients by finite differences,
 * the typed forms, and errors. */
#include <math.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/tyr.h"

static const double X[6] = {-2.5, 0.3, 1.7, 4.0, -0.8, 0.0};
static const double Y[6] = {0, 1, 0.25, 1, 0, 0.5};
static const double P[6] = {0.2, 0.8, 0.0, 0.5, 0.25, 0.25};

static tyr_tensor *t23(const double *v) {
  return tyr_from_host_at(TYR_SITE, v, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
}

static void expect_all(tyr_tensor *t, const double *want, int n) {
  assert_int_equal(tyr_numel(t), n);
  const double *p = tyr_data_ptr(t);
  for (int i = 0; i < n; i++) ASSERT_CLOSE(p[i], want[i], 1e-12, 1e-12);
}

static void test_values(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = t23(X), *y = t23(Y), *p = t23(P);
  ASSERT_CLOSE(tyr_item_e(tyr_bce_with_logits_e(x, y, TYR_REDUCTION_MEAN)), 0.5264047970954792,
               1e-14, 1e-13);
  ASSERT_CLOSE(tyr_item_e(tyr_bce_with_logits_e(x, y, TYR_REDUCTION_SUM)), 3.158428782572875, 1e-14,
               1e-13);
  expect_all(tyr_bce_with_logits_e(x, y, TYR_REDUCTION_NONE),
             (double[]){0.07888973429254957, 0.554355244468527, 1.4427860293862658,
                        0.01814992791780978, 0.3711006659477777, 0.6931471805599453},
             6);
  ASSERT_CLOSE(tyr_item_e(tyr_l1_loss_e(x, y, TYR_REDUCTION_MEAN)), 1.4916666666666665, 1e-14, 0);
  ASSERT_CLOSE(tyr_item_e(tyr_l1_loss_e(x, y, TYR_REDUCTION_SUM)), 8.95, 1e-14, 0);
  ASSERT_CLOSE(tyr_item_e(tyr_smooth_l1_loss_e(x, y, 0.5, TYR_REDUCTION_MEAN)), 1.2416666666666667,
               1e-14, 0);
  expect_all(tyr_smooth_l1_loss_e(x, y, 0.5, TYR_REDUCTION_NONE),
             (double[]){2.25, 0.45, 1.2, 2.75, 0.55, 0.25}, 6);
  /* NLL of log_softmax(x) with targets [2, ignored] and [2, 0] */
  tyr_tensor *lp = tyr_log_softmax_e(x, -1);
  int64_t tv[2] = {2, -100}, tv2[2] = {2, 0};
  tyr_tensor *t = tyr_from_host_at(TYR_SITE, tv, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2});
  tyr_tensor *t2 = tyr_from_host_at(TYR_SITE, tv2, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2});
  ASSERT_CLOSE(tyr_item_e(tyr_nll_loss_e(lp, t, -100, TYR_REDUCTION_MEAN)), 0.2323748441270853,
               1e-14, 1e-13);
  ASSERT_CLOSE(tyr_item_e(tyr_nll_loss_e(lp, t, -100, TYR_REDUCTION_SUM)), 0.2323748441270853,
               1e-14, 1e-13);
  expect_all(tyr_nll_loss_e(lp, t, -100, TYR_REDUCTION_NONE), (double[]){0.2323748441270853, 0}, 2);
  ASSERT_CLOSE(tyr_item_e(tyr_nll_loss_e(lp, t2, -100, TYR_REDUCTION_MEAN)), 0.12928700744319135,
               1e-14, 1e-13);
  /* NLL equals cross-entropy on the logits */
  ASSERT_CLOSE(tyr_item_e(tyr_nll_loss_e(lp, t2, -1, TYR_REDUCTION_MEAN)),
               tyr_item_e(tyr_cross_entropy_e(x, t2, -1)), 1e-14, 1e-13);
  /* every target ignored: NaN, as in PyTorch */
  int64_t tv3[2] = {-1, -1};
  tyr_tensor *t3 = tyr_from_host_at(TYR_SITE, tv3, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2});
  assert_true(isnan(tyr_item_e(tyr_nll_loss_e(lp, t3, -1, TYR_REDUCTION_MEAN))));
  /* KL with a zero in the target */
  ASSERT_CLOSE(tyr_item_e(tyr_kl_div_e(lp, p, TYR_REDUCTION_MEAN, false)), 0.4797418034180461,
               1e-14, 1e-13);
  ASSERT_CLOSE(tyr_item_e(tyr_kl_div_e(lp, p, TYR_REDUCTION_SUM, false)), 2.878450820508277, 1e-14,
               1e-13);
  ASSERT_CLOSE(tyr_item_e(tyr_kl_div_e(lp, p, TYR_REDUCTION_BATCHMEAN, false)), 1.4392254102541384,
               1e-14, 1e-13);
  expect_all(tyr_kl_div_e(lp, p, TYR_REDUCTION_NONE, false),
             (double[]){0.5645873863385971, 1.1273850342503005, 0.0, -0.333474004900324,
                        0.8599762024098516, 0.6599762024098517},
             6);
  tyr_tensor *logp = tyr_log_e(tyr_add_scalar_e(p, 0.1));
  ASSERT_CLOSE(tyr_item_e(tyr_kl_div_e(lp, logp, TYR_REDUCTION_SUM, true)), 4.208500543254399,
               1e-14, 1e-13);
  /* f32 too */
  tyr_tensor *xf = tyr_to_dtype_e(x, TYR_F32), *yf = tyr_to_dtype_e(y, TYR_F32);
  ASSERT_CLOSE(tyr_item_e(tyr_bce_with_logits_e(xf, yf, TYR_REDUCTION_MEAN)), 0.5264047970954792,
               1e-6, 1e-6);
}

/* Large logits: no overflow, PyTorch's values (x = +-100, y = 0 and 1). */
static void test_bce_extremes(void **state) {
  (void)state;
  TYR_SCOPE;
  float fx[4] = {100, -100, 100, -100}, fy[4] = {0, 1, 1, 0};
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, fx, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){4});
  tyr_tensor *y = tyr_from_host_at(TYR_SITE, fy, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){4});
  tyr_tensor *l = tyr_bce_with_logits_e(x, y, TYR_REDUCTION_NONE);
  ASSERT_CLOSE(tyr_get_e(l, 0), 100, 0, 1e-6);
  ASSERT_CLOSE(tyr_get_e(l, 1), 100, 0, 1e-6);
  ASSERT_CLOSE(tyr_get_e(l, 2), 0, 1e-30, 0);
  ASSERT_CLOSE(tyr_get_e(l, 3), 0, 1e-30, 0);
}

static tyr_tensor *call_bce(tyr_tensor **in, void *ctx) {
  return tyr_bce_with_logits_e(in[0], in[1], *(tyr_reduction *)ctx);
}
static tyr_tensor *call_l1(tyr_tensor **in, void *ctx) {
  return tyr_l1_loss_e(in[0], in[1], *(tyr_reduction *)ctx);
}
static tyr_tensor *call_sl1(tyr_tensor **in, void *ctx) {
  return tyr_smooth_l1_loss_e(in[0], in[1], 0.7, *(tyr_reduction *)ctx);
}
static tyr_tensor *call_kl(tyr_tensor **in, void *ctx) {
  /* input: log-probs; target: probabilities (a softmax keeps them valid) */
  return tyr_kl_div_e(tyr_log_softmax_e(in[0], -1), tyr_softmax_e(in[1], -1), *(tyr_reduction *)ctx,
                      false);
}
static tyr_tensor *call_kl_log(tyr_tensor **in, void *ctx) {
  return tyr_kl_div_e(tyr_log_softmax_e(in[0], -1), tyr_log_softmax_e(in[1], -1),
                      *(tyr_reduction *)ctx, true);
}
static tyr_tensor *g_targets;
static tyr_tensor *call_nll(tyr_tensor **in, void *ctx) {
  return tyr_nll_loss_e(tyr_log_softmax_e(in[0], -1), g_targets, 1, *(tyr_reduction *)ctx);
}

static void test_gradients(void **state) {
  (void)state;
  tyr_reduction rs[3] = {TYR_REDUCTION_MEAN, TYR_REDUCTION_SUM, TYR_REDUCTION_NONE};
  int64_t tv[6] = {0, 1, 3, 2, 1, 0}; /* class 1 is the ignore_index */
  g_targets = tyr_from_host_at(TYR_SITE, tv, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  for (int k = 0; k < 3; k++) {
    tyr_tensor *in[2] = {TYR_TEST_LEAF(-3, 3, 3, 4), TYR_TEST_LEAF(0, 1, 3, 4)};
    tyr_gradcheck("bce_with_logits", call_bce, &rs[k], 2, in, 1e-6, 1e-6);
    tyr_gradcheck("l1_loss", call_l1, &rs[k], 2, in, 1e-6, 1e-6);
    tyr_gradcheck("smooth_l1_loss", call_sl1, &rs[k], 2, in, 1e-6, 1e-6);
    tyr_gradcheck("kl_div", call_kl, &rs[k], 2, in, 1e-6, 1e-6);
    tyr_gradcheck("kl_div log_target", call_kl_log, &rs[k], 2, in, 1e-6, 1e-6);
    tyr_tensor *lg = TYR_TEST_LEAF(-2, 2, 2, 3, 4);
    tyr_gradcheck("nll_loss", call_nll, &rs[k], 1, &lg, 1e-6, 1e-6);
    tyr_tensor_free(lg);
    tyr_tensor_free(in[0]);
    tyr_tensor_free(in[1]);
  }
  tyr_reduction bm = TYR_REDUCTION_BATCHMEAN;
  tyr_tensor *in[2] = {TYR_TEST_LEAF(-3, 3, 3, 4), TYR_TEST_LEAF(0, 1, 3, 4)};
  tyr_gradcheck("kl_div batchmean", call_kl, &bm, 2, in, 1e-6, 1e-6);
  tyr_tensor_free(in[0]);
  tyr_tensor_free(in[1]);
  tyr_tensor_free(g_targets);
}

static void test_typed_and_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { N = 4, C = 5 };
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(N, C) y = tyr_rand(N, C);
  tyr_T0 a = tyr_bce_with_logits(x, y, TYR_REDUCTION_MEAN);
  tyr_T0 b = tyr_l1_loss(x, y, TYR_REDUCTION_SUM);
  tyr_T0 c = tyr_smooth_l1_loss(x, y, 1.0, TYR_REDUCTION_MEAN);
  tyr_T0 d = tyr_kl_div(tyr_log_softmax(x, 1), tyr_softmax(y, 1), TYR_REDUCTION_BATCHMEAN, false);
  tyr_T(N) t = tyr_zeros(N);
  tyr_T(N) ti = tyr_to_dtype(t, TYR_I64);
  tyr_T0 e = tyr_nll_loss(tyr_log_softmax(x, 1), ti, -100, TYR_REDUCTION_MEAN);
  assert_true(tyr_item(a) > 0 && tyr_item(b) > 0 && tyr_item(c) > 0 && tyr_item(d) >= 0 &&
              tyr_item(e) > 0);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_l1_loss(x, y, TYR_REDUCTION_NONE),
                   "tyr_l1_loss: the typed form returns a scalar: reduction none is for the "
                   "erased form (tyr_l1_loss_e)");
  tyr_tensor *z = tyr_zeros_e(C, N);
  EXPECT_TYR_ERROR(tyr_l1_loss_e(tyr_erase(x), z, TYR_REDUCTION_MEAN),
                   "tyr_l1_loss: operands have different shapes");
  EXPECT_TYR_ERROR(tyr_smooth_l1_loss_e(tyr_erase(x), tyr_erase(y), 0, TYR_REDUCTION_MEAN),
                   "beta must be positive");
  EXPECT_TYR_ERROR(tyr_bce_with_logits_e(tyr_erase(x), tyr_erase(y), TYR_REDUCTION_BATCHMEAN),
                   "reduction 3 is not one of mean, sum, none");
  int64_t bad[4] = {0, 1, 5, 2};
  tyr_tensor *tb = tyr_from_host_at(TYR_SITE, bad, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){4});
  EXPECT_TYR_ERROR(tyr_nll_loss_e(tyr_erase(x), tb, -100, TYR_REDUCTION_MEAN),
                   "target 5 at (flat) position 2 is out of range for 5 classes");
  EXPECT_TYR_ERROR(tyr_nll_loss_e(tyr_erase(x), z, -100, TYR_REDUCTION_MEAN),
                   "tyr_nll_loss: targets");
  int n = 3;
  tyr_T(n) tn = tyr_zeros(n);
  EXPECT_TYR_ERROR(tyr_nll_loss(x, tyr_to_dtype(tn, TYR_I64), -100, TYR_REDUCTION_SUM),
                   "log_probs is [4, 5] and targets [3]");
}

/* Every loss on a CUDA device against the CPU (skipped without a GPU). */
static void test_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  TYR_SCOPE;
  tyr_device G = TYR_DEVICE_CUDA(0);
  tyr_tensor *x = tyr_to_dtype_e(t23(X), TYR_F32), *y = tyr_to_dtype_e(t23(Y), TYR_F32);
  tyr_tensor *p = tyr_to_dtype_e(t23(P), TYR_F32), *lp = tyr_log_softmax_e(x, -1);
  int64_t tv[2] = {2, -100};
  tyr_tensor *t = tyr_from_host_at(TYR_SITE, tv, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2});
  tyr_tensor *xg = tyr_to_device_e(x, G), *yg = tyr_to_device_e(y, G);
  tyr_tensor *pg = tyr_to_device_e(p, G), *lpg = tyr_to_device_e(lp, G);
  tyr_tensor *tg = tyr_to_device_e(t, G);
  for (int r = 0; r < 2; r++) {
    tyr_tensor *cpu[5] = {tyr_bce_with_logits_e(x, y, r), tyr_l1_loss_e(x, y, r),
                          tyr_smooth_l1_loss_e(x, y, 0.5, r), tyr_kl_div_e(lp, p, r, false),
                          tyr_nll_loss_e(lp, t, -100, r)};
    tyr_tensor *gpu[5] = {tyr_bce_with_logits_e(xg, yg, r), tyr_l1_loss_e(xg, yg, r),
                          tyr_smooth_l1_loss_e(xg, yg, 0.5, r), tyr_kl_div_e(lpg, pg, r, false),
                          tyr_nll_loss_e(lpg, tg, -100, r)};
    for (int k = 0; k < 5; k++) {
      assert_int_equal(gpu[k]->device.type, TYR_CUDA);
      ASSERT_CLOSE(tyr_item_e(gpu[k]), tyr_item_e(cpu[k]), 1e-5, 1e-5);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_values),           TYR_TEST(test_bce_extremes), TYR_TEST(test_gradients),
      TYR_TEST(test_typed_and_errors), TYR_TEST(test_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
