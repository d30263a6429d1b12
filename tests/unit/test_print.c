/* Tensor printing: formats chosen from the values, nesting and indent,
 * summaries of large tensors, dtypes, scalars, views, and the text of
 * tyr_print itself. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"
#include "tyr/tyr.h"
#include "tyr/print.h"

static void expect_str(tyr_tensor *t, const char *want) {
  char *got = tyr_to_string(t);
  assert_non_null(got);
  if (strcmp(got, want)) fail_msg("got\n%s\nwant\n%s", got, want);
  free(got);
}

static tyr_tensor *f32(const float *v, int rank, const int64_t *shape) {
  return tyr_from_host_at(TYR_SITE, v, TYR_F32, TYR_DEVICE_CPU, rank, shape);
}

static void test_formats(void **state) {
  (void)state;
  TYR_SCOPE;
  expect_str(
      f32((float[]){0.194f, 2.1614f, -0.1721f, 0.8491f, -1.9244f, 0.653f}, 2, (int64_t[]){2, 3}),
      "tensor([[ 0.1940,  2.1614, -0.1721],\n"
      "        [ 0.8491, -1.9244,  0.6530]], dtype=f32, device=cpu, shape=[2, 3])");
  expect_str(f32((float[]){1, 2, -3}, 1, (int64_t[]){3}),
             "tensor([ 1.,  2., -3.], dtype=f32, device=cpu, shape=[3])");
  expect_str(f32((float[]){123456.f, 0.5f}, 1, (int64_t[]){2}),
             "tensor([1.2346e+05, 5.0000e-01], dtype=f32, device=cpu, shape=[2])");
  expect_str(f32((float[]){NAN, -INFINITY, 1.5f}, 1, (int64_t[]){3}),
             "tensor([   nan,   -inf, 1.5000], dtype=f32, device=cpu, shape=[3])");
  int64_t iv[4] = {7, -12, 300, 0};
  expect_str(tyr_from_host_at(TYR_SITE, iv, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 2}),
             "tensor([[  7, -12],\n        [300,   0]], dtype=i64, device=cpu, shape=[2, 2])");
  uint8_t bv[3] = {1, 0, 1};
  expect_str(tyr_from_host_at(TYR_SITE, bv, TYR_BOOL, TYR_DEVICE_CPU, 1, (int64_t[]){3}),
             "tensor([ true, false,  true], dtype=bool, device=cpu, shape=[3])");
  tyr_tensor *sc = tyr_full_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 0, NULL, 2.25);
  expect_str(sc, "tensor(2.2500, dtype=f64, device=cpu, shape=[])");
  tyr_tensor *bf = tyr_to_dtype_e(f32((float[]){0.5f, 1.25f}, 1, (int64_t[]){2}), TYR_BF16);
  expect_str(bf, "tensor([0.5000, 1.2500], dtype=bf16, device=cpu, shape=[2])");
  expect_str(tyr_zeros_e(0, 3), "tensor([], dtype=f32, device=cpu, shape=[0, 3])");
}

static void test_nesting_views_grad(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a = tyr_arange_at(TYR_SITE, TYR_I32, TYR_DEVICE_CPU, 0, 8, 1);
  expect_str(tyr_reshape_e(a, 2, 2, 2),
             "tensor([[[0, 1],\n"
             "         [2, 3]],\n"
             "\n"
             "        [[4, 5],\n"
             "         [6, 7]]], dtype=i32, device=cpu, shape=[2, 2, 2])");
  /* a transposed view prints its logical order */
  expect_str(tyr_transpose_e(tyr_reshape_e(a, 2, 4), 0, 1),
             "tensor([[0, 4],\n        [1, 5],\n        [2, 6],\n        [3, 7]], dtype=i32, "
             "device=cpu, shape=[4, 2])");
  tyr_tensor *w = tyr_requires_grad_at(TYR_SITE, f32((float[]){1, 2}, 1, (int64_t[]){2}), true);
  expect_str(w, "tensor([1., 2.], dtype=f32, device=cpu, shape=[2], requires_grad)");
}

static void test_summary(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a = tyr_arange_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 0, 2000, 1);
  expect_str(a, "tensor([   0,    1,    2, ..., 1997, 1998, 1999], dtype=i64, device=cpu, "
                "shape=[2000])");
  expect_str(tyr_reshape_e(a, 40, 50),
             "tensor([[   0,    1,    2, ...,   47,   48,   49],\n"
             "        [  50,   51,   52, ...,   97,   98,   99],\n"
             "        [ 100,  101,  102, ...,  147,  148,  149],\n"
             "        ...,\n"
             "        [1850, 1851, 1852, ..., 1897, 1898, 1899],\n"
             "        [1900, 1901, 1902, ..., 1947, 1948, 1949],\n"
             "        [1950, 1951, 1952, ..., 1997, 1998, 1999]], dtype=i64, device=cpu, "
             "shape=[40, 50])");
}

static void test_print_to_file(void **state) {
  (void)state;
  TYR_SCOPE;
  FILE *f = tmpfile();
  tyr_T(2) x = tyr_ones(2);
  assert_int_equal(tyr_fprint(f, x), 0);
  rewind(f);
  char buf[256] = {0};
  assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
  fclose(f);
  assert_string_equal(buf, "tensor([1., 1.], dtype=f32, device=cpu, shape=[2])\n");
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_to_string(NULL), "tyr_print: tensor is NULL");
}

/* A CUDA tensor is copied to the host to be printed (skipped without a GPU). */
static void test_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  TYR_SCOPE;
  tyr_tensor *c = tyr_to_device_e(f32((float[]){1.5f, -2}, 1, (int64_t[]){2}), TYR_DEVICE_CUDA(0));
  expect_str(c, "tensor([ 1.5000, -2.0000], dtype=f32, device=cuda:0, shape=[2])");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_formats), TYR_TEST(test_nesting_views_grad),
      TYR_TEST(test_summary), TYR_TEST(test_print_to_file),
      TYR_TEST(test_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
