/* Module initialisations: PyTorch's defaults (TYR_INIT_PYTORCH) and the
 * GPT-2 scheme (std > 0), checked by their ranges and moments. */
#include <math.h>

#include "testutil.h"
#include "tyr/tyr.h"

typedef struct moments {
  double min, max, mean, var;
} moments;

static moments moments_of(const tyr_tensor *t) {
  moments m = {INFINITY, -INFINITY, 0, 0};
  const float *p = tyr_data_ptr(t);
  int64_t n = tyr_numel(t);
  for (int64_t i = 0; i < n; i++) {
    m.min = fmin(m.min, p[i]);
    m.max = fmax(m.max, p[i]);
    m.mean += p[i];
  }
  m.mean /= (double)n;
  for (int64_t i = 0; i < n; i++) m.var += (p[i] - m.mean) * (p[i] - m.mean);
  m.var /= (double)n;
  return m;
}

static void test_linear_pytorch_default(void **state) {
  (void)state;
  tyr_manual_seed(1);
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_linear l;
  assert_int_equal(tyr_nn_linear_init(&l, &ps, "fc", 400, 300, true, TYR_INIT_PYTORCH), 0);
  double b = 1.0 / sqrt(400.0);
  moments w = moments_of(l.weight);
  assert_true(w.min >= -b && w.max <= b);
  assert_true(w.min < -0.95 * b && w.max > 0.95 * b);
  ASSERT_CLOSE(w.mean, 0.0, 2e-4, 0);
  ASSERT_CLOSE(w.var, b * b / 3.0, 0, 0.02); /* U(-b, b) has variance b^2/3 */
  moments bi = moments_of(l.bias);
  assert_true(bi.min >= -b && bi.max <= b);
  assert_true(bi.max - bi.min > b); /* not zero */
  tyr_params_free(&ps);
}

static void test_gpt2_scheme_and_others(void **state) {
  (void)state;
  tyr_manual_seed(2);
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_linear l;
  assert_int_equal(tyr_nn_linear_init(&l, &ps, "fc", 256, 512, true, 0.02), 0);
  moments w = moments_of(l.weight), bi = moments_of(l.bias);
  ASSERT_CLOSE(sqrt(w.var), 0.02, 0, 0.02);
  assert_true(bi.min == 0 && bi.max == 0);
  tyr_nn_embedding e;
  assert_int_equal(tyr_nn_embedding_init(&e, &ps, "emb", 1000, 64, TYR_INIT_PYTORCH), 0);
  moments em = moments_of(e.weight);
  ASSERT_CLOSE(em.var, 1.0, 0, 0.03);
  tyr_nn_norm n;
  assert_int_equal(tyr_nn_norm_init(&n, &ps, "ln", TYR_NORM_LAYER, 64, true, true, 1e-5), 0);
  moments nw = moments_of(n.weight), nb = moments_of(n.bias);
  assert_true(nw.min == 1 && nw.max == 1 && nb.min == 0 && nb.max == 0);
  tyr_params_free(&ps);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_linear_pytorch_default),
      TYR_TEST(test_gpt2_scheme_and_others),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
