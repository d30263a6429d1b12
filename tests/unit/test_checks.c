/* No silent failures: a tensor used after its scope freed it (named with
 * where it was made and freed), a double free, tensors piling up outside
 * any scope (one warning naming the place that made most of them), and a
 * second backward through a freed graph (an error, as in PyTorch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "testutil.h"
#include "tyr/debug.h"
#include "tyr/tyr.h"

static void test_checked_default(void **state) {
  (void)state;
  const char *env = getenv("TYR_CHECKED");
  if (env && env[0]) skip();
#ifdef NDEBUG
  assert_false(tyr_checked()); /* Release: off unless asked */
#else
  assert_true(tyr_checked()); /* Debug: on */
#endif
}

static void test_use_after_scope(void **state) {
  (void)state;
  tyr_test_record_errors();
  bool prev = tyr_set_checked(true);
  tyr_tensor *x, *y;
  char made[64], opened[64];
  {
    snprintf(opened, sizeof opened, "test_checks.c:%d", __LINE__ + 1);
    TYR_SCOPE;
    snprintf(made, sizeof made, "test_checks.c:%d", __LINE__ + 1);
    x = tyr_ones_e(3);
    y = tyr_mul_scalar_e(x, 2.0);
  }
  TYR_SCOPE;
  EXPECT_TYR_ERROR(tyr_add_e(x, tyr_ones_e(3)), "a is a tensor used after it was freed");
  tyr_test_error_reset();
  (void)tyr_add_e(tyr_ones_e(3), x);
  const char *msg = tyr_test_error_message();
  if (!strstr(msg, made) || !strstr(msg, opened) || !strstr(msg, "tyr_add"))
    fail_msg("the message does not name the op, %s and %s: %s", made, opened, msg);
  tyr_test_error_reset();
  EXPECT_TYR_ERROR(tyr_item_e(y), "tyr_item: tensor is a tensor used after it was freed");
  EXPECT_TYR_ERROR(tyr_sum_e(y), "used after it was freed");
  EXPECT_TYR_ERROR(tyr_tensor_free(x), "used after it was freed");
  /* freed explicitly */
  tyr_tensor *z = tyr_keep_e(tyr_ones_e(2));
  tyr_tensor_free(z);
  EXPECT_TYR_ERROR(tyr_exp_e(z), "freed by tyr_tensor_free");
  tyr_set_checked(prev);
}

static void make_many(tyr_tensor **out, int n, char *where, size_t wn) {
  snprintf(where, wn, "test_checks.c:%d", __LINE__ + 1);
  for (int i = 0; i < n; i++) out[i] = tyr_zeros_e(1);
}

static void test_unscoped_warning(void **state) {
  (void)state;
  enum { N = 300 };
  int64_t base = tyr_unscoped_tensors();
  int64_t prev = tyr_set_unscoped_warning(base + 100);
  char path[512], where[64];
  snprintf(path, sizeof path, "%s/stderr.txt", tyr_test_tmpdir());
  fflush(stderr);
  int saved = dup(2);
  FILE *f = freopen(path, "w", stderr);
  assert_non_null(f);
  tyr_tensor *ts[N];
  make_many(ts, N, where, sizeof where);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  for (int i = 0; i < N; i++) tyr_tensor_free(ts[i]);
  tyr_set_unscoped_warning(prev);
  assert_int_equal(tyr_unscoped_tensors(), base);
  FILE *r = fopen(path, "r");
  assert_non_null(r);
  char text[4096] = {0};
  size_t n = fread(text, 1, sizeof text - 1, r);
  fclose(r);
  (void)n;
  /* at 100 and again at 200 alive */
  if (!strstr(text, "100 tensors made outside any scope are alive") ||
      !strstr(text, "200 tensors") || !strstr(text, where))
    fail_msg("expected warnings at 100 and 200 naming %s, got: %s", where, text);
  if (strstr(text, "400 tensors")) fail_msg("warned too often: %s", text);
}

static void test_backward_twice(void **state) {
  (void)state;
  tyr_test_record_errors();
  TYR_SCOPE;
  tyr_tensor *w = tyr_ones_e(3);
  w->requires_grad = true;
  tyr_tensor *loss = tyr_sum_e(tyr_square_e(w));
  assert_int_equal(tyr_backward_e(loss), 0);
  EXPECT_TYR_ERROR(tyr_backward_e(loss), "backward through the graph a second time");
  /* a new loss from an intermediate whose graph was freed: no silent zero
     gradient for w */
  tyr_tensor *h = tyr_mul_scalar_e(w, 3.0);
  assert_int_equal(tyr_backward_e(tyr_sum_e(h)), 0);
  EXPECT_TYR_ERROR(tyr_backward_e(tyr_sum_e(tyr_exp_e(h))), "a second time: input 0 of tyr_exp");
  /* computed again, it works */
  h = tyr_mul_scalar_e(w, 3.0);
  assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_exp_e(h))), 0);
}

/* OpenMP threads spin only while the cores are otherwise free: on a busy
 * machine they wait passively (the old fixed GOMP_SPINCOUNT=1000000 lost
 * 4-10x there, see docs/benchmarks.md) */
static void test_wait_policy(void **state) {
  (void)state;
  const char *v;
  assert_string_equal(tyr__cpu_wait_policy(0.1, 2, &v), "GOMP_SPINCOUNT");
  assert_string_equal(v, "10000");
  assert_string_equal(tyr__cpu_wait_policy(14.7, 2, &v), "OMP_WAIT_POLICY");
  assert_string_equal(v, "passive");
  assert_string_equal(tyr__cpu_wait_policy(1.0, 2, &v), "OMP_WAIT_POLICY");
  assert_string_equal(tyr__cpu_wait_policy(3.0, 16, &v), "GOMP_SPINCOUNT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_checked_default),  TYR_TEST(test_use_after_scope),
      TYR_TEST(test_unscoped_warning), TYR_TEST(test_backward_twice),
      TYR_TEST(test_wait_policy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
