/* The vectorisable f32 math of the CPU kernels (src/cpu/fastmath.h) against
 * libm in double: e^x, erf, tanh and the logistic function over dense grids
 * of their working ranges, their limits, and NaN, infinities and zeros.
 * (Built into every instruction-set variant's kernels; the grids here run
 * the helpers as this file is compiled.) */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "cpu/fastmath.h"
#include "testutil.h"

/* Largest error of f against ref over n points of [lo, hi]: relative where
 * |ref| >= floor, absolute (against floor) below it. */
static double max_err(float (*f)(float), double (*ref)(double), double lo, double hi, int n,
                      double floor, double *at) {
  double worst = 0;
  for (int i = 0; i <= n; i++) {
    float x = (float)(lo + (hi - lo) * i / n);
    double r = ref((double)x), got = (double)f(x);
    double e = fabs(got - r) / fmax(fabs(r), floor);
    if (e > worst) {
      worst = e;
      *at = x;
    }
  }
  return worst;
}

static float f_exp(float x) {
  return tyr_cpu_expf(x);
}
static float f_erf(float x) {
  return tyr_cpu_erff(x);
}
static float f_tanh(float x) {
  return tyr_cpu_tanhf(x);
}
static float f_sigmoid(float x) {
  return tyr_cpu_sigmoidf(x);
}
static double r_sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}

static void check(const char *name, float (*f)(float), double (*ref)(double), double lo, double hi,
                  double floor, double bound) {
  double at = 0, e = max_err(f, ref, lo, hi, 2000000, floor, &at);
  printf("%-8s [%g, %g]: max error %.3g at %.9g (bound %.1g)\n", name, lo, hi, e, at, bound);
  assert_true(e <= bound);
}

static void test_expf(void **state) {
  (void)state;
  check("exp", f_exp, exp, -87, 10, 0, 2e-7);
  assert_true(tyr_cpu_expf(0.0f) == 1.0f);
  assert_true(tyr_cpu_expf(-88.0f) == 0.0f);
  assert_true(tyr_cpu_expf(-INFINITY) == 0.0f);
  assert_true(isnan(tyr_cpu_expf(NAN)));
}

static void test_erff(void **state) {
  (void)state;
  check("erf", f_erf, erf, -10, 10, 1, 6e-7); /* absolute: A&S 7.1.26 in f32 */
  assert_true(tyr_cpu_erff(20.0f) == 1.0f && tyr_cpu_erff(-20.0f) == -1.0f);
  assert_true(tyr_cpu_erff(INFINITY) == 1.0f && tyr_cpu_erff(-INFINITY) == -1.0f);
}

static float f_gelu_grad(float x) {
  return tyr_cpu_gelu_gradf(x);
}
static double r_gelu_grad(double x) {
  return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

static void test_gelu_gradf(void **state) {
  (void)state;
  /* absolute (the derivative crosses 0 near x = -0.75); relative beyond */
  check("gelu'", f_gelu_grad, r_gelu_grad, -12, 12, 1, 4e-7);
  check("gelu'", f_gelu_grad, r_gelu_grad, -5, -2, 1e-30, 2e-4);
  assert_true(tyr_cpu_gelu_gradf(0.0f) == 0.5f);
  assert_true(tyr_cpu_gelu_gradf(20.0f) == 1.0f && tyr_cpu_gelu_gradf(-20.0f) == 0.0f);
  assert_true(tyr_cpu_gelu_gradf(INFINITY) == 1.0f && tyr_cpu_gelu_gradf(-INFINITY) == 0.0f);
  assert_true(isnan(tyr_cpu_gelu_gradf(NAN)));
}

static void test_tanhf(void **state) {
  (void)state;
  /* relative everywhere, across the switch of forms at 0.625 */
  check("tanh", f_tanh, tanh, -12, 12, 1e-30, 3e-7);
  check("tanh", f_tanh, tanh, -1e-3, 1e-3, 1e-30, 3e-7);
  check("tanh", f_tanh, tanh, 0.6, 0.65, 1e-30, 3e-7);
  assert_true(tyr_cpu_tanhf(0.0f) == 0.0f);
  assert_true(signbit(tyr_cpu_tanhf(-0.0f)));
  assert_true(tyr_cpu_tanhf(1e-30f) == 1e-30f); /* odd polynomial: x itself */
  assert_true(tyr_cpu_tanhf(8.67f) == 1.0f && tyr_cpu_tanhf(-8.67f) == -1.0f); /* +-1 on */
  assert_true(tyr_cpu_tanhf(50.0f) == 1.0f && tyr_cpu_tanhf(-50.0f) == -1.0f);
  assert_true(tyr_cpu_tanhf(INFINITY) == 1.0f && tyr_cpu_tanhf(-INFINITY) == -1.0f);
  assert_true(tyr_cpu_tanhf(FLT_MAX) == 1.0f);
  assert_true(isnan(tyr_cpu_tanhf(NAN)));
}

static void test_sigmoidf(void **state) {
  (void)state;
  check("sigmoid", f_sigmoid, r_sigmoid, -30, 30, 1e-30, 4e-7);
  check("sigmoid", f_sigmoid, r_sigmoid, -86, -30, 1e-30, 4e-7);
  assert_true(tyr_cpu_sigmoidf(0.0f) == 0.5f);
  assert_true(tyr_cpu_sigmoidf(100.0f) == 1.0f);
  assert_true(tyr_cpu_sigmoidf(-100.0f) == 0.0f); /* e^-100 flushed (below 1.6e-38) */
  assert_true(tyr_cpu_sigmoidf(INFINITY) == 1.0f && tyr_cpu_sigmoidf(-INFINITY) == 0.0f);
  assert_true(isnan(tyr_cpu_sigmoidf(NAN)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expf),       cmocka_unit_test(test_erff),
      cmocka_unit_test(test_gelu_gradf), cmocka_unit_test(test_tanhf),
      cmocka_unit_test(test_sigmoidf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
