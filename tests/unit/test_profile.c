/* The kernel profiler (tyr/profile.h): one training step of a small MLP
 * with the profiler on is attributed to the right phases and kernels, with
 * call counts that match the model; off, nothing is recorded. */
#define _GNU_SOURCE /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/tyr.h"

/* The table tyr_profile_print writes, in a malloc'd string. */
static char *table(int steps) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  tyr_profile_print(f, steps);
  fclose(f);
  return buf;
}

/* The line of `name` inside the section of `phase` (NULL when absent). */
static const char *row(const char *tab, const char *phase, const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\n  %s ", phase);
  const char *p = strstr(tab, key);
  if (!p) return NULL;
  const char *end = strstr(p + 1, "\n  "); /* the next phase (two-space indent) */
  while (end && end[3] == ' ') end = strstr(end + 1, "\n  ");
  snprintf(key, sizeof key, "\n    %s ", name);
  const char *r = strstr(p, key);
  return r && (!end || r < end) ? r + 5 : NULL;
}

/* Calls per step in kernel `name`'s row of `phase` (the third number
 * after the name), -1 when there is no such row. */
static double calls(const char *tab, const char *phase, const char *name) {
  const char *r = row(tab, phase, name);
  double ms, pct, n;
  if (!r || sscanf(r + strlen(name), "%lf %lf %lf", &ms, &pct, &n) != 3) return -1;
  return n;
}

static void train_steps(tyr_params *ps, tyr_optim *opt, tyr_tensor *x, int steps) {
  tyr_tensor *w1 = ps->items[0].t, *b1 = ps->items[1].t, *w2 = ps->items[2].t;
  for (int i = 0; i < steps; i++) {
    TYR_SCOPE;
    tyr_tensor *h = tyr_gelu_e(tyr_linear_e(x, w1, b1));
    tyr_tensor *loss = tyr_mean_e(tyr_square_e(tyr_linear_e(h, w2, NULL)));
    assert_int_equal(tyr_backward_e(loss), 0);
    tyr_params_clip_grad_norm(ps, 1.0);
    assert_int_equal(tyr_optim_step(opt, -1), 0);
    tyr_optim_zero_grad(opt);
  }
}

static void test_profile_step(void **state) {
  (void)state;
  if (getenv("TYR_PROFILE")) skip(); /* the environment owns the profiler then */
  assert_false(tyr_profile_enabled());
  tyr_manual_seed(1);
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_params_add(&ps, "fc.weight", tyr_randn_e(64, 32));
  tyr_params_add(&ps, "fc.bias", tyr_zeros_e(64));
  tyr_params_add(&ps, "out.weight", tyr_randn_e(8, 64));
  tyr_optim opt;
  assert_int_equal(tyr_optim_init(&opt, &ps, tyr_adamw_config(1e-3)), 0);
  tyr_tensor *x = tyr_keep_e(tyr_randn_e(128, 32));

  assert_false(tyr_profile_enable(true));
  tyr_profile_reset();
  train_steps(&ps, &opt, x, 2);
  char *tab = table(2);
  /* forward: the biased linear layer's GEMM with its bias, the plain one, gelu */
  assert_true(calls(tab, "forward", "matmul_bias a @ bT") == 1);
  assert_true(calls(tab, "forward", "matmul a @ bT") == 1);
  assert_true(calls(tab, "forward", "unary gelu") == 1);
  /* backward: dx = dy @ w (the first layer's x needs none), dw = dyT @ x for
     both layers, the bias gradient (dy summed over the rows) and gelu's
     backward */
  assert_true(calls(tab, "backward", "matmul a @ b") == 1);
  assert_true(calls(tab, "backward", "reduce sum") == 1);
  assert_true(calls(tab, "backward", "matmul aT @ b") == 2);
  assert_true(calls(tab, "backward", "unary_backward gelu") == 1);
  assert_null(row(tab, "backward", "matmul_bias a @ bT"));
  /* the optimizer: one AdamW kernel per parameter and the clipping's norm */
  assert_true(calls(tab, "optimizer", "adamw_step") == 3);
  assert_true(calls(tab, "optimizer", "sum_squares_many") == 1);
  assert_null(row(tab, "forward", "adamw_step"));
  assert_non_null(strstr(tab, "host overhead (wall - kernels)"));
  assert_non_null(strstr(tab, "GEMMs (matmul)"));
  free(tab);

  /* reset forgets; off records nothing */
  tyr_profile_reset();
  assert_true(tyr_profile_enable(false));
  train_steps(&ps, &opt, x, 1);
  tab = table(1);
  assert_null(row(tab, "forward", "matmul_bias a @ bT"));
  assert_null(row(tab, "backward", "matmul"));
  free(tab);

  tyr_tensor_free(x);
  tyr_optim_free(&opt);
  tyr_params_free(&ps);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_profile_step),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
