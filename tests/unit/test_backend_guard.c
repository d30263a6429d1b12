/* Ops whose backend lacks a kernel raise TYR_ERR_DEVICE naming the op and
 * the device instead of calling a NULL entry.  A stand-in "CUDA" backend
 * (the CPU table with host memory and some entries cleared) is registered
 * before any GPU is asked for, so this runs the same with or without one. */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "testutil.h"
#include "tyr/tyr.h"

#define S TYR_SITE

static tyr_backend g_fake;

static tyr_device dev(void) {
  return TYR_DEVICE_CUDA(0);
}

static tyr_tensor *on_fake(tyr_tensor *t) {
  tyr_tensor *r = tyr_to_device_at(S, t, dev());
  assert_non_null(r);
  return r;
}

static void test_missing_attention_and_rotary(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *q =
      on_fake(tyr_rand_at(S, TYR_F32, TYR_DEVICE_CPU, 4, (int64_t[]){1, 2, 3, 4}, -1, 1));
  EXPECT_TYR_ERROR(tyr_sdpa_at(S, q, q, q, NULL), "tyr_sdpa: no CUDA kernel for this op (cuda:0");
  tyr_tensor *cs, *sn;
  assert_int_equal(tyr_rotary_tables_at(S, 3, 4, 0, TYR_F32, dev(), &cs, &sn), 0);
  EXPECT_TYR_ERROR(tyr_rotary_at(S, q, cs, sn), "tyr_rotary: no CUDA kernel for this op (cuda:0");
}

static void test_missing_optimizer_and_norms(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_tensor *p = tyr_params_add(
      &ps, "w", on_fake(tyr_rand_at(S, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){5}, -1, 1)));
  assert_non_null(p);
  tyr_tensor *loss = tyr_sum_at(S, tyr_mul_at(S, p, p));
  assert_int_equal(tyr_backward_at(S, loss), 0);
  assert_non_null(p->grad);
  tyr_optim opt;
  assert_int_equal(tyr_optim_init(&opt, &ps, tyr_adamw_config(1e-3)), 0);
  EXPECT_TYR_ERROR(tyr_optim_step(&opt, -1), "tyr_optim_step: no CUDA kernel for this op (cuda:0)");
  tyr_optim_free(&opt);
  assert_int_equal(tyr_optim_init(&opt, &ps, tyr_sgd_config(1e-3, 0.9)), 0);
  EXPECT_TYR_ERROR(tyr_optim_step(&opt, -1), "tyr_optim_step: no CUDA kernel for this op (cuda:0)");
  tyr_optim_free(&opt);
  double n = 0;
  EXPECT_TYR_ERROR(n = tyr_params_grad_norm(&ps), "tyr_params_grad_norm: no CUDA kernel");
  assert_true(isnan(n));
  EXPECT_TYR_ERROR(n = tyr_params_clip_grad_norm(&ps, 1.0), "tyr_params_grad_norm: no CUDA kernel");
  assert_true(isnan(n));
  /* with sum_squares but no scale_: the norm works, clipping raises */
  g_fake.sum_squares = tyr_cpu_backend.sum_squares;
  double want = 0;
  tyr_tensor *g = tyr_to_device_at(S, p->grad, TYR_DEVICE_CPU);
  for (int i = 0; i < 5; i++) want += pow(((float *)tyr_data_ptr(g))[i], 2);
  ASSERT_CLOSE(tyr_params_grad_norm(&ps), sqrt(want), 1e-6, 1e-6);
  EXPECT_TYR_ERROR(tyr_params_clip_grad_norm(&ps, 1e-3),
                   "tyr_params_clip_grad_norm: no CUDA kernel for this op (cuda:0)");
  g_fake.sum_squares = NULL;
  tyr_params_free(&ps);
}

int main(void) {
  g_fake = tyr_cpu_backend;
  g_fake.name = "fake-cuda";
  g_fake.sdpa = NULL;
  g_fake.sdpa_backward = NULL;
  g_fake.rotary = NULL;
  g_fake.adamw_step = NULL;
  g_fake.sgd_step = NULL;
  g_fake.sum_squares = NULL;
  g_fake.sum_squares_many = NULL;
  g_fake.scale_ = NULL;
  tyr_backend_register(TYR_CUDA, &g_fake);
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_missing_attention_and_rotary),
      TYR_TEST(test_missing_optimizer_and_norms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
