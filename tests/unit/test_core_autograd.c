/* The autograd engine's bookkeeping of leaf gradients: a gradient that
 * nothing else holds becomes the leaf's .grad without a copy, and one that
 * is shared (an add's backward hands one tensor to both inputs; a view of
 * it; a leaf used twice) is copied, so that a later contribution added in
 * place into one .grad never shows in another. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "testutil.h"
#include "tyr/tyr.h"

static tyr_tensor *leaf(const float *v, int64_t n) {
  tyr_tensor *t = tyr_from_host_at(TYR_SITE, v, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){n});
  assert_non_null(t);
  tyr_requires_grad_e(t, true);
  return t;
}

static void expect_grad(const char *what, tyr_tensor *t, const float *want, int64_t n) {
  tyr_tensor *g = tyr_grad_e(t);
  if (!g) fail_msg("%s: no gradient", what);
  assert_int_equal(tyr_numel(g), n);
  float got[8];
  assert_int_equal(tyr_to_host_e(g, got, sizeof got), 0);
  for (int64_t i = 0; i < n; i++)
    if (fabsf(got[i] - want[i]) > 1e-6f)
      fail_msg("%s: grad[%lld] = %g, expected %g", what, (long long)i, got[i], want[i]);
}

/* L = sum((a + b') * c) + sum(a * d), b' = b or 2 b: the add hands one
   gradient to a and to b' (a leaf, or a node that keeps it until its own
   backward), and a gets a second contribution, in either order of the two
   terms */
static void test_shared_gradient_not_aliased(void **state) {
  (void)state;
  const float av[] = {1, 2, 3}, bv[] = {-1, 0.5f, 2}, cv[] = {2, 3, 4}, dv[] = {10, 20, 30};
  for (int form = 0; form < 4; form++) {
    bool scaled = form & 1, swapped = form & 2;
    tyr_tensor *a = leaf(av, 3), *b = leaf(bv, 3);
    for (int round = 1; round <= 2; round++) { /* the second adds into the kept .grad */
      TYR_SCOPE;
      tyr_tensor *c = tyr_from_host_e(cv, 3);
      tyr_tensor *d = tyr_from_host_e(dv, 3);
      tyr_tensor *b2 = scaled ? tyr_mul_scalar_e(b, 2.0) : b;
      tyr_tensor *t1 = tyr_sum_e(tyr_mul_e(tyr_add_e(a, b2), c)), *t2 = tyr_sum_e(tyr_mul_e(a, d));
      assert_int_equal(tyr_backward_e(swapped ? tyr_add_e(t2, t1) : tyr_add_e(t1, t2)), 0);
      float ga[3], gb[3];
      for (int i = 0; i < 3; i++) {
        ga[i] = (float)round * (cv[i] + dv[i]);
        gb[i] = (float)round * cv[i] * (scaled ? 2.0f : 1.0f);
      }
      char what[96];
      snprintf(what, sizeof what, "a (used twice), form %d", form);
      expect_grad(what, a, ga, 3);
      snprintf(what, sizeof what, "b (shares the add's gradient with a), form %d", form);
      expect_grad(what, b, gb, 3);
    }
    tyr_tensor_free(a);
    tyr_tensor_free(b);
  }
}

/* the gradient as a view (reshape's backward) and as the incoming gradient
   itself (clone's backward) */
static void test_views_and_passthrough(void **state) {
  (void)state;
  const float av[] = {1, 2, 3, 4}, bv[] = {5, 6, 7, 8}, wv[] = {1, -2, 3, -4};
  tyr_tensor *a = leaf(av, 4), *b = leaf(bv, 4);
  {
    TYR_SCOPE;
    tyr_tensor *w = tyr_from_host_e(wv, 2, 2);
    tyr_tensor *ra = tyr_reshape_e(a, 2, 2);
    tyr_tensor *y = tyr_mul_e(tyr_add_e(ra, tyr_reshape_e(tyr_clone_e(b), 2, 2)), w);
    /* a again, through clone: its second gradient is added to the first */
    tyr_tensor *l = tyr_add_e(tyr_sum_e(y), tyr_sum_e(tyr_mul_e(tyr_clone_e(a), a)));
    assert_int_equal(tyr_backward_e(l), 0);
  }
  float ga[4], gb[4];
  for (int i = 0; i < 4; i++) {
    ga[i] = wv[i] + 2 * av[i];
    gb[i] = wv[i];
  }
  expect_grad("a", a, ga, 4);
  expect_grad("b", b, gb, 4);
  tyr_tensor_free(a);
  tyr_tensor_free(b);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_shared_gradient_not_aliased),
      TYR_TEST(test_views_and_passthrough),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
