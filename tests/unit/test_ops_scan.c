/* logsumexp, any/all and cumsum: values (PyTorch 1.13's for the fixed
 * input), dtypes, empty and infinite cases, gradients by finite
 * differences, the typed forms, errors, and CUDA against the CPU. */
#include <math.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/tyr.h"

static const double X[6] = {-2.5, 0.3, 1.7, 4.0, -0.8, 0.0};

static tyr_tensor *t23(void) {
  return tyr_from_host_at(TYR_SITE, X, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
}

static void test_logsumexp(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = t23();
  tyr_tensor *a = tyr_logsumexp_e(x, 1, false), *b = tyr_logsumexp_e(x, 0, true);
  assert_int_equal(a->rank, 1);
  assert_int_equal(b->rank, 2);
  assert_int_equal(b->shape[0], 1);
  ASSERT_CLOSE(tyr_get_e(a, 0), 1.9323748441270854, 1e-14, 1e-14);
  ASSERT_CLOSE(tyr_get_e(a, 1), 4.0261991707592975, 1e-14, 1e-14);
  ASSERT_CLOSE(tyr_get_e(b, 0, 0), 4.001502310159754, 1e-14, 1e-14);
  ASSERT_CLOSE(tyr_get_e(b, 0, 1), 0.5873353251154307, 1e-14, 1e-14);
  ASSERT_CLOSE(tyr_get_e(b, 0, 2), 1.8677860293862658, 1e-14, 1e-14);
  /* no overflow for large values; a row of -inf gives -inf */
  float big[4] = {1000, 1000, -INFINITY, -INFINITY};
  tyr_tensor *l = tyr_logsumexp_e(
      tyr_from_host_at(TYR_SITE, big, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){2, 2}), -1, false);
  ASSERT_CLOSE(tyr_get_e(l, 0), 1000 + log(2.0), 0, 1e-6);
  assert_true(isinf(tyr_get_e(l, 1)) && tyr_get_e(l, 1) < 0);
}

static void test_any_all(void **state) {
  (void)state;
  TYR_SCOPE;
  float v[6] = {0, 0, 0, 1, NAN, -2};
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, v, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){2, 3});
  tyr_tensor *any = tyr_any_e(x), *all = tyr_all_e(x);
  assert_int_equal(any->dtype, TYR_BOOL);
  assert_int_equal(any->rank, 0);
  assert_true(tyr_item_e(any) == 1 && tyr_item_e(all) == 0);
  tyr_tensor *ad = tyr_any_dim_e(x, 1, false), *ld = tyr_all_dim_e(x, 1, false);
  assert_true(tyr_get_e(ad, 0) == 0 && tyr_get_e(ad, 1) == 1);
  assert_true(tyr_get_e(ld, 0) == 0 && tyr_get_e(ld, 1) == 1); /* NaN counts as non-zero */
  tyr_tensor *k = tyr_any_dim_e(x, 0, true);
  assert_int_equal(k->rank, 2);
  assert_true(tyr_get_e(k, 0, 0) == 1 && tyr_get_e(k, 0, 1) == 1 && tyr_get_e(k, 0, 2) == 1);
  int32_t iv[3] = {1, 2, 3};
  assert_true(tyr_item_e(tyr_all_e(tyr_from_host_at(TYR_SITE, iv, TYR_I32, TYR_DEVICE_CPU, 1,
                                                    (int64_t[]){3}))) == 1);
  tyr_tensor *e = tyr_zeros_e(0, 3);
  assert_true(tyr_item_e(tyr_any_e(e)) == 0 && tyr_item_e(tyr_all_e(e)) == 1);
  tyr_tensor *ed = tyr_all_dim_e(e, 0, false);
  assert_int_equal(ed->shape[0], 3);
  assert_true(tyr_get_e(ed, 2) == 1);
  /* a comparison's result, the usual input */
  assert_true(tyr_item_e(tyr_all_e(tyr_ge_e(t23(), tyr_full_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2,
                                                               (int64_t[]){2, 3}, -3)))) == 1);
}

static void test_cumsum(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = t23();
  tyr_tensor *c = tyr_cumsum_e(x, 1);
  double want[6] = {-2.5, -2.2, -0.5, 4.0, 3.2, 3.2};
  for (int i = 0; i < 6; i++) ASSERT_CLOSE(tyr_get_e(c, i / 3, i % 3), want[i], 1e-14, 0);
  tyr_tensor *c0 = tyr_cumsum_e(x, -2);
  ASSERT_CLOSE(tyr_get_e(c0, 1, 0), 1.5, 1e-14, 0);
  ASSERT_CLOSE(tyr_get_e(c0, 0, 2), 1.7, 1e-14, 0);
  /* a transposed view, f32, bf16, integers (-> i64) */
  tyr_tensor *ct = tyr_cumsum_e(tyr_transpose_e(tyr_to_dtype_e(x, TYR_F32), 0, 1), 1);
  assert_int_equal(ct->dtype, TYR_F32);
  ASSERT_CLOSE(tyr_get_e(ct, 2, 1), 1.7, 1e-6, 0);
  tyr_tensor *cb = tyr_cumsum_e(tyr_to_dtype_e(x, TYR_BF16), 1);
  assert_int_equal(cb->dtype, TYR_BF16);
  ASSERT_CLOSE(tyr_get_e(cb, 1, 2), 3.2, 0.02, 0);
  int32_t iv[4] = {1, 2, 3, 2000000000};
  tyr_tensor *ci =
      tyr_cumsum_e(tyr_from_host_at(TYR_SITE, iv, TYR_I32, TYR_DEVICE_CPU, 1, (int64_t[]){4}), 0);
  assert_int_equal(ci->dtype, TYR_I64);
  assert_true(((int64_t *)tyr_data_ptr(ci))[3] == 2000000006LL);
  assert_int_equal(tyr_numel(tyr_cumsum_e(tyr_zeros_e(0, 2), 0)), 0);
}

static int g_dim;
static tyr_tensor *call_lse(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_logsumexp_e(in[0], g_dim, g_dim == 0);
}
static tyr_tensor *call_cumsum(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_cumsum_e(in[0], g_dim);
}

static void test_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-3, 3, 3, 4, 5);
  for (g_dim = 0; g_dim < 3; g_dim++) {
    tyr_gradcheck("logsumexp", call_lse, NULL, 1, &x, 1e-6, 1e-6);
    tyr_gradcheck("cumsum", call_cumsum, NULL, 1, &x, 1e-6, 1e-6);
  }
  tyr_tensor_free(x);
}

static void test_typed_and_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { B = 3, V = 7 };
  tyr_T(B, V) x = tyr_randn(B, V);
  tyr_T(B) l = tyr_logsumexp(x, 1);
  tyr_T(1, V) lk = tyr_logsumexp_keepdim(x, 0);
  tyr_T(B, V) c = tyr_cumsum(x, -1);
  tyr_T0 any = tyr_any(tyr_gt(x, x));
  tyr_T(V) all = tyr_all_dim(tyr_eq(c, c), 0);
  tyr_T(B) anyd = tyr_any_dim(x, 1);
  (void)anyd;
  assert_true(tyr_item(any) == 0 && tyr_get(all, 2) == 1);
  ASSERT_CLOSE(tyr_get(l, 1), tyr_get_e(tyr_logsumexp_e(tyr_erase(x), 1, false), 1), 0, 0);
  (void)lk;
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_logsumexp_e(tyr_erase(x), 2, false), "tyr_logsumexp");
  int64_t iv[2] = {1, 2};
  tyr_tensor *i = tyr_from_host_at(TYR_SITE, iv, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2});
  EXPECT_TYR_ERROR(tyr_logsumexp_e(i, 0, false), "tyr_logsumexp");
  EXPECT_TYR_ERROR(tyr_cumsum_e(tyr_erase(x), 5), "tyr_cumsum");
}

/* CUDA against the CPU (skipped without a GPU). */
static void test_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  TYR_SCOPE;
  tyr_tensor *x = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 3, (int64_t[]){4, 33, 5}, 0, 1);
  tyr_tensor *g = tyr_to_device_e(x, TYR_DEVICE_CUDA(0));
  for (int d = 0; d < 3; d++) {
    tyr_tensor *a = tyr_to_device_e(tyr_cumsum_e(g, d), TYR_DEVICE_CPU), *b = tyr_cumsum_e(x, d);
    tyr_tensor *la = tyr_to_device_e(tyr_logsumexp_e(g, d, false), TYR_DEVICE_CPU);
    tyr_tensor *lb = tyr_logsumexp_e(x, d, false);
    for (int64_t i = 0; i < tyr_numel(b); i++)
      ASSERT_CLOSE(((float *)tyr_data_ptr(a))[i], ((float *)tyr_data_ptr(b))[i], 1e-5, 1e-5);
    for (int64_t i = 0; i < tyr_numel(lb); i++)
      ASSERT_CLOSE(((float *)tyr_data_ptr(la))[i], ((float *)tyr_data_ptr(lb))[i], 1e-5, 1e-5);
    assert_non_null(tyr_any_dim_e(g, d, false));
  }
  assert_true(tyr_item_e(tyr_all_e(g)) == tyr_item_e(tyr_all_e(x)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_logsumexp), TYR_TEST(test_any_all),          TYR_TEST(test_cumsum),
      TYR_TEST(test_gradients), TYR_TEST(test_typed_and_errors), TYR_TEST(test_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
