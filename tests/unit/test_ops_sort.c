/* sort, topk and multinomial: orders (stable, NaN, descending, any dim,
 * large integers), values gathered with their gradients, sampling
 * frequencies and determinism, the typed forms, errors, CUDA. */
#include <math.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/tyr.h"

static void expect_i64(tyr_tensor *t, const int64_t *want, int n) {
  assert_int_equal(t->dtype, TYR_I64);
  assert_int_equal(tyr_numel(t), n);
  for (int i = 0; i < n; i++)
    if (((int64_t *)tyr_data_ptr(t))[i] != want[i])
      fail_msg("index %d: %lld, want %lld", i, (long long)((int64_t *)tyr_data_ptr(t))[i],
               (long long)want[i]);
}

static void test_sort(void **state) {
  (void)state;
  TYR_SCOPE;
  /* torch.sort(torch.tensor([3., nan, 1., 3., -2.]), stable=True) ->
   * values [-2, 1, 3, 3, nan], indices [4, 2, 0, 3, 1]; descending:
   * [nan, 3, 3, 1, -2], [1, 0, 3, 2, 4] */
  float v[5] = {3, NAN, 1, 3, -2};
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, v, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){5});
  tyr_tensor *sv, *si;
  assert_int_equal(tyr_sort_e(x, 0, false, &sv, &si), 0);
  expect_i64(si, (int64_t[]){4, 2, 0, 3, 1}, 5);
  assert_true(tyr_get_e(sv, 0) == -2 && tyr_get_e(sv, 3) == 3 && isnan(tyr_get_e(sv, 4)));
  assert_int_equal(tyr_sort_e(x, -1, true, &sv, &si), 0);
  expect_i64(si, (int64_t[]){1, 0, 3, 2, 4}, 5);
  /* along dim 0 of a [3, 2] tensor */
  double m[6] = {5, 0, 1, 9, 3, -1};
  tyr_tensor *xm = tyr_from_host_at(TYR_SITE, m, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){3, 2});
  assert_int_equal(tyr_sort_e(xm, 0, false, &sv, &si), 0);
  expect_i64(si, (int64_t[]){1, 2, 2, 0, 0, 1}, 6);
  assert_true(tyr_get_e(sv, 0, 1) == -1 && tyr_get_e(sv, 2, 0) == 5);
  /* integers beyond 2^53 keep their order */
  int64_t big[3] = {(1LL << 60) + 1, 1LL << 60, -5};
  tyr_tensor *xb = tyr_from_host_at(TYR_SITE, big, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){3});
  assert_int_equal(tyr_sort_e(xb, 0, false, &sv, &si), 0);
  expect_i64(si, (int64_t[]){2, 1, 0}, 3);
  expect_i64(sv, (int64_t[]){-5, 1LL << 60, (1LL << 60) + 1}, 3);
}

static void test_topk(void **state) {
  (void)state;
  TYR_SCOPE;
  double m[8] = {1, 7, 7, 2, 9, -3, 4, 4};
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, m, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 4});
  tyr_tensor *v, *i;
  assert_int_equal(tyr_topk_e(x, 2, 1, true, &v, &i), 0);
  assert_int_equal(v->shape[1], 2);
  expect_i64(i, (int64_t[]){1, 2, 0, 2}, 4); /* ties: the lower index first */
  assert_true(tyr_get_e(v, 0, 0) == 7 && tyr_get_e(v, 1, 0) == 9 && tyr_get_e(v, 1, 1) == 4);
  assert_int_equal(tyr_topk_e(x, 3, 1, false, &v, &i), 0);
  expect_i64(i, (int64_t[]){0, 3, 1, 1, 2, 3}, 6);
  assert_int_equal(tyr_topk_e(x, 1, 0, true, &v, &i), 0);
  expect_i64(i, (int64_t[]){1, 0, 0, 1}, 4);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_topk_e(x, 5, 1, true, &v, &i), "tyr_topk: k = 5 is outside 1..4");
  assert_null(v);
  EXPECT_TYR_ERROR(tyr_sort_e(x, 2, true, &v, &i), "tyr_sort");
}

static int g_k;
static tyr_tensor *call_sort(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *v, *i;
  tyr_sort_e(in[0], 1, true, &v, &i);
  return v;
}
static tyr_tensor *call_topk(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *v, *i;
  tyr_topk_e(in[0], g_k, 0, false, &v, &i);
  return v;
}

static void test_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-3, 3, 4, 5);
  tyr_gradcheck("sort", call_sort, NULL, 1, &x, 1e-6, 1e-6);
  for (g_k = 1; g_k <= 4; g_k += 3) tyr_gradcheck("topk", call_topk, NULL, 1, &x, 1e-6, 1e-6);
  tyr_tensor_free(x);
}

static void test_multinomial(void **state) {
  (void)state;
  TYR_SCOPE;
  double p[8] = {0.1, 0.0, 0.6, 0.3, /* row 2: weights, not normalised */ 1, 1, 0, 2};
  tyr_tensor *pr = tyr_from_host_at(TYR_SITE, p, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 4});
  enum { N = 20000 };
  tyr_manual_seed(11);
  tyr_tensor *d = tyr_multinomial_e(pr, N, true);
  assert_int_equal(d->rank, 2);
  assert_int_equal(d->shape[1], N);
  int64_t cnt[2][4] = {{0}};
  for (int b = 0; b < 2; b++)
    for (int j = 0; j < N; j++) cnt[b][((int64_t *)tyr_data_ptr(d))[b * N + j]]++;
  assert_int_equal(cnt[0][1], 0); /* a zero probability is never drawn */
  assert_int_equal(cnt[1][2], 0);
  /* within 5 standard deviations of the expected counts */
  double want[2][4] = {{0.1, 0, 0.6, 0.3}, {0.25, 0.25, 0, 0.5}};
  for (int b = 0; b < 2; b++)
    for (int c = 0; c < 4; c++) {
      double e = want[b][c] * N, sd = sqrt(N * want[b][c] * (1 - want[b][c]));
      if (fabs((double)cnt[b][c] - e) > 5 * sd + 1e-9)
        fail_msg("row %d category %d: %lld draws, expected %.0f", b, c, (long long)cnt[b][c], e);
    }
  /* the same seed, the same draws */
  tyr_manual_seed(11);
  tyr_tensor *d2 = tyr_multinomial_e(pr, N, true);
  assert_memory_equal(tyr_data_ptr(d), tyr_data_ptr(d2), sizeof(int64_t) * 2 * N);
  /* without replacement: distinct categories, all non-zero ones */
  tyr_tensor *w = tyr_multinomial_e(pr, 3, false);
  for (int b = 0; b < 2; b++) {
    int seen[4] = {0};
    for (int j = 0; j < 3; j++) seen[((int64_t *)tyr_data_ptr(w))[b * 3 + j]]++;
    for (int c = 0; c < 4; c++) assert_true(seen[c] == (want[b][c] > 0));
  }
  /* 1-D */
  tyr_tensor *one = tyr_multinomial_e(tyr_reshape_e(tyr_narrow_e(pr, 0, 1, 1), 4), 5, true);
  assert_int_equal(one->rank, 1);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_multinomial_e(pr, 4, false), "row 0 has 3 non-zero categories");
  EXPECT_TYR_ERROR(tyr_multinomial_e(pr, 0, true), "num_samples = 0");
  double bad[2] = {0.5, -0.1};
  EXPECT_TYR_ERROR(
      tyr_multinomial_e(tyr_from_host_at(TYR_SITE, bad, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){2}),
                        1, true),
      "probs[0, 1] = -0.1");
  EXPECT_TYR_ERROR(tyr_multinomial_e(tyr_zeros_e(2, 2, 2), 1, true), "must be [C] or [B, C]");
}

static void test_typed(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { B = 3, V = 10, K = 4 };
  tyr_T(B, V) x = tyr_randn(B, V);
  tyr_T(B, V) sv, si;
  assert_int_equal(tyr_sort(x, 1, true, &sv, &si), 0);
  tyr_T(B, K) tv, ti;
  assert_int_equal(tyr_topk(x, K, -1, true, &tv, &ti), 0);
  for (int b = 0; b < B; b++)
    for (int k = 0; k < K; k++) assert_true(tyr_get(tv, b, k) == tyr_get(sv, b, k));
  tyr_T(B, 6) s = tyr_multinomial(tyr_softmax(x, 1), 6, true);
  assert_int_equal(tyr_erase(s)->dtype, TYR_I64);
  int k = 2;
  tyr_T(B, k) dv, di;
  assert_int_equal(tyr_topk(x, k, 1, false, &dv, &di), 0);
}

static void test_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  TYR_SCOPE;
  tyr_tensor *x = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){5, 37}, 0, 1);
  tyr_tensor *g = tyr_to_device_e(x, TYR_DEVICE_CUDA(0));
  tyr_tensor *v1, *i1, *v2, *i2;
  assert_int_equal(tyr_topk_e(x, 7, 1, true, &v1, &i1), 0);
  assert_int_equal(tyr_topk_e(g, 7, 1, true, &v2, &i2), 0);
  assert_int_equal(v2->device.type, TYR_CUDA);
  tyr_tensor *hv = tyr_to_device_e(v2, TYR_DEVICE_CPU), *hi = tyr_to_device_e(i2, TYR_DEVICE_CPU);
  assert_memory_equal(tyr_data_ptr(hv), tyr_data_ptr(v1), 5 * 7 * sizeof(float));
  assert_memory_equal(tyr_data_ptr(hi), tyr_data_ptr(i1), 5 * 7 * sizeof(int64_t));
  tyr_manual_seed(3);
  tyr_tensor *a = tyr_multinomial_e(tyr_softmax_e(x, 1), 9, false);
  tyr_manual_seed(3);
  tyr_tensor *b = tyr_to_device_e(tyr_multinomial_e(tyr_softmax_e(g, 1), 9, false), TYR_DEVICE_CPU);
  /* the same draws; the probabilities differ in the last bits between
   * devices, which can move a draw that falls on a boundary */
  int same = 0;
  for (int j = 0; j < 45; j++)
    same += ((int64_t *)tyr_data_ptr(a))[j] == ((int64_t *)tyr_data_ptr(b))[j];
  assert_true(same >= 43);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_sort),        TYR_TEST(test_topk),  TYR_TEST(test_gradients),
      TYR_TEST(test_multinomial), TYR_TEST(test_typed), TYR_TEST(test_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
