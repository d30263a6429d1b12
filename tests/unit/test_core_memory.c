/* Host memory paths that make small ops cheap and big ones fast: recycled
 * tensor/storage/node structs and tiny data blocks (per thread), the cache
 * of big blocks, and tensors that move between threads. */
#include <pthread.h>
#include <stdio.h>

#include "gradcheck.h"

/* Many scopes of small ops: every tensor is fresh (no values leak from a
 * recycled block into a result) and the counts return to zero. */
static void test_small_ops_recycled(void **state) {
  (void)state;
  int64_t live = tyr_live_tensors(), bytes = tyr_live_bytes();
  tyr_tensor *a = tyr_keep_e(tyr_full_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){3}, 2));
  tyr_requires_grad_e(a, true);
  for (int round = 0; round < 5; round++) {
    TYR_SCOPE;
    tyr_tensor *acc = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){3});
    for (int i = 0; i < 2000; i++) acc = tyr_add_e(acc, a);
    for (int64_t k = 0; k < 3; k++) ASSERT_CLOSE(tyr_get_e(acc, k), 4000, 0, 0);
    /* fresh zero tensors after thousands of freed ones */
    tyr_tensor *z = tyr_zeros_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){8});
    for (int64_t k = 0; k < 8; k++) ASSERT_CLOSE(tyr_get_e(z, k), 0, 0, 0);
    assert_int_equal(tyr_backward_e(tyr_sum_e(acc)), 0);
    ASSERT_CLOSE(tyr_get_e(tyr_grad_e(a), 1), 2000.0 * (round + 1), 0, 0);
  }
  tyr_tensor_free(a);
  assert_int_equal(tyr_live_tensors(), live);
  assert_int_equal(tyr_live_bytes(), bytes);
}

/* Big blocks are reused for the same size; a reused block holds whatever
 * it held (like malloc), so the ops must write every element. */
static void test_big_blocks_reused(void **state) {
  (void)state;
  int64_t n = 1 << 20; /* 4 MiB of f32 */
  for (int round = 0; round < 3; round++) {
    TYR_SCOPE;
    tyr_tensor *a = tyr_full_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, &n, round + 1);
    tyr_tensor *b = tyr_ones_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, &n);
    tyr_tensor *c = tyr_add_e(a, b);
    tyr_tensor *z = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, &n);
    for (int64_t k = 0; k < n; k += 4099) {
      ASSERT_CLOSE(tyr_get_e(c, k), round + 2, 0, 0);
      ASSERT_CLOSE(tyr_get_e(z, k), 0, 0, 0);
    }
    /* a different size in between */
    tyr_tensor *d = tyr_ones_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){1000, 300});
    ASSERT_CLOSE(tyr_get_e(d, 999, 299), 1, 0, 0);
  }
}

/* Tensors made on one thread and freed on another, and threads that exit
 * holding recycled blocks. */
static void *make_on_thread(void *arg) {
  tyr_tensor **out = arg;
  for (int i = 0; i < 100; i++) {
    tyr_tensor *t =
        tyr_full_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){2}, (double)i); /* no scope */
    if (i < 99)
      tyr_tensor_free(t);
    else
      *out = t;
  }
  return NULL;
}
static void *free_on_thread(void *arg) {
  tyr_tensor_free(arg);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  for (int k = 0; k < 4; k++) {
    tyr_tensor *t = NULL;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, make_on_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(t);
    ASSERT_CLOSE(tyr_get_e(t, 1), 99, 0, 0);
    tyr_tensor *u = tyr_keep_e(tyr_ones_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){2}));
    assert_int_equal(pthread_create(&th, NULL, free_on_thread, u), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    tyr_tensor_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_small_ops_recycled),
      TYR_TEST(test_big_blocks_reused),
      TYR_TEST(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
