/* Parameter collections, optimizers and schedules against hand-written
 * double-precision references. */
#include <math.h>

#include "testutil.h"
#include "tyr/tyr.h"
#include "tyr/optim.h"
#include "tyr/params.h"

static tyr_tensor *host(const double *v, int64_t n) {
  return tyr_from_host_at(TYR_SITE, v, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){n});
}

static void test_params_collection(void **state) {
  (void)state;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_params_add(&ps, "blocks.0.w", tyr_zeros_e(2, 3));
  tyr_params_addf(&ps, tyr_ones_e(3), "blocks.%d.b", 0);
  assert_int_equal(ps.n, 2);
  assert_int_equal(tyr_params_numel(&ps), 9);
  assert_non_null(tyr_params_find(&ps, "blocks.0.b"));
  assert_null(tyr_params_find(&ps, "blocks.1.b"));
  assert_true(ps.items[0].t->requires_grad);
  tyr_tensor *dup = tyr_keep_e(tyr_zeros_e(1));
  EXPECT_TYR_ERROR(tyr_params_add(&ps, "blocks.0.w", dup),
                   "tyr_params_add: a parameter named 'blocks.0.w' already exists");
  tyr_tensor_free(dup);
  tyr_params other;
  tyr_params_init(&other);
  tyr_params_add(&other, "blocks.0.w", tyr_zeros_e(3, 2));
  tyr_params_add(&other, "blocks.0.b", tyr_zeros_e(3));
  EXPECT_TYR_ERROR(tyr_params_zip(&ps, &other, NULL, NULL),
                   "'blocks.0.w' is [2, 3] in one collection and [3, 2]");
  tyr_params_free(&other);
  tyr_params_group_by_rank(&ps);
  assert_int_equal(ps.items[0].group, 0);
  assert_int_equal(ps.items[1].group, 1);
  tyr_params_free(&ps);
}

static void test_clip_grad_norm(void **state) {
  (void)state;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_tensor *a = tyr_params_add(&ps, "a", host((double[]){1, 2}, 2));
  tyr_tensor *b = tyr_params_add(&ps, "b", host((double[]){0}, 1));
  a->grad = tyr_keep_e(host((double[]){3, 0}, 2));
  b->grad = tyr_keep_e(host((double[]){4}, 1));
  ASSERT_CLOSE(tyr_params_grad_norm(&ps), 5, 1e-12, 0);
  ASSERT_CLOSE(tyr_params_clip_grad_norm(&ps, 1.0), 5, 1e-12, 0);
  ASSERT_CLOSE(tyr_params_grad_norm(&ps), 1.0, 1e-6, 0);
  ASSERT_CLOSE(tyr_get_e(a->grad, 0), 0.6, 1e-6, 0);
  /* under the limit nothing changes */
  ASSERT_CLOSE(tyr_params_clip_grad_norm(&ps, 10.0), 1.0, 1e-6, 0);
  ASSERT_CLOSE(tyr_get_e(b->grad, 0), 0.8, 1e-6, 0);
  tyr_params_free(&ps);
}

static void test_adamw_matches_reference(void **state) {
  (void)state;
  double p0[3] = {0.5, -1.0, 2.0},
         grads[3][3] = {{0.1, -0.2, 0.3}, {0.05, 0.4, -0.1}, {-0.3, 0.0, 0.2}};
  double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
  TYR_SCOPE;
  for (int dt = 0; dt < 2; dt++) {
    tyr_params ps;
    tyr_params_init(&ps);
    tyr_tensor *p =
        tyr_params_add(&ps, "p", dt ? host(p0, 3) : tyr_to_dtype_e(host(p0, 3), TYR_F32));
    tyr_optim opt;
    tyr_optim_config cfg = tyr_adamw_config(lr);
    cfg.beta1 = b1;
    cfg.beta2 = b2;
    cfg.eps = eps;
    cfg.weight_decay = wd;
    assert_int_equal(tyr_optim_init(&opt, &ps, cfg), 0);
    double ref[3] = {p0[0], p0[1], p0[2]}, m[3] = {0}, v[3] = {0};
    for (int t = 1; t <= 3; t++) {
      tyr_zero_grad_e(p);
      p->grad = tyr_keep_e(tyr_to_dtype_e(host(grads[t - 1], 3), p->dtype));
      tyr_optim_step(&opt, -1);
      for (int i = 0; i < 3; i++) {
        double g = grads[t - 1][i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        ref[i] = ref[i] * (1 - lr * wd) - lr * mh / (sqrt(vh) + eps);
      }
    }
    for (int i = 0; i < 3; i++) ASSERT_CLOSE(tyr_get_e(p, i), ref[i], 1e-6, 1e-6);
    tyr_optim_free(&opt);
    tyr_params_free(&ps);
  }
}

static void test_sgd_momentum_nesterov(void **state) {
  (void)state;
  for (int nest = 0; nest < 2; nest++) {
    tyr_params ps;
    tyr_params_init(&ps);
    tyr_tensor *p = tyr_params_add(&ps, "p", host((double[]){1.0, -2.0}, 2));
    tyr_optim opt;
    tyr_optim_config cfg = tyr_sgd_config(0.1, 0.9);
    cfg.nesterov = nest;
    cfg.weight_decay = 0.01;
    assert_int_equal(tyr_optim_init(&opt, &ps, cfg), 0);
    double ref[2] = {1.0, -2.0}, buf[2] = {0};
    double grads[2][2] = {{0.5, -0.5}, {0.25, 1.0}};
    for (int t = 0; t < 2; t++) {
      tyr_zero_grad_e(p);
      p->grad = tyr_keep_e(host(grads[t], 2));
      tyr_optim_step(&opt, -1);
      for (int i = 0; i < 2; i++) {
        double d = grads[t][i] + 0.01 * ref[i];
        buf[i] = t == 0 ? d : 0.9 * buf[i] + d;
        d = nest ? d + 0.9 * buf[i] : buf[i];
        ref[i] -= 0.1 * d;
      }
    }
    for (int i = 0; i < 2; i++) ASSERT_CLOSE(tyr_get_e(p, i), ref[i], 1e-6, 1e-6);
    tyr_optim_free(&opt);
    tyr_params_free(&ps);
  }
}

static void test_param_groups(void **state) {
  (void)state;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_tensor *w = tyr_params_add(
      &ps, "w", tyr_ones_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 1}));
  tyr_tensor *b = tyr_params_add(&ps, "b", host((double[]){1.0}, 1));
  tyr_params_group_by_rank(&ps);
  tyr_optim_config cfg = tyr_sgd_config(0.5, 0);
  cfg.ngroups = 2;
  cfg.groups[0] = (tyr_param_group){1.0, 0.1};
  cfg.groups[1] = (tyr_param_group){2.0, 0.0};
  tyr_optim opt;
  assert_int_equal(tyr_optim_init(&opt, &ps, cfg), 0);
  w->grad = tyr_keep_e(tyr_zeros_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 1}));
  b->grad = tyr_keep_e(host((double[]){1.0}, 1));
  tyr_optim_step(&opt, TYR_LR_CONFIGURED);
  ASSERT_CLOSE(tyr_get_e(w, 0, 0), 1 - 0.5 * 0.1, 1e-12, 0); /* decay only */
  ASSERT_CLOSE(tyr_get_e(b, 0), 1 - 1.0 * 1.0, 1e-12, 0);    /* lr x2, no decay */
  tyr_optim_free(&opt);
  cfg.ngroups = 1;
  EXPECT_TYR_ERROR(tyr_optim_init(&opt, &ps, cfg),
                   "parameter 'b' is in group 1, but there are 1 groups");
  tyr_params_free(&ps);
}

static void test_schedules(void **state) {
  (void)state;
  tyr_lr_schedule c = {.kind = TYR_LR_WARMUP_COSINE,
                       .max_lr = 1e-3,
                       .min_lr = 1e-4,
                       .warmup = 100,
                       .decay_steps = 2000};
  ASSERT_CLOSE(tyr_lr_at(&c, 0), 1e-5, 1e-15, 0);
  ASSERT_CLOSE(tyr_lr_at(&c, 99), 1e-3, 1e-15, 0);
  ASSERT_CLOSE(tyr_lr_at(&c, 100), 1e-3, 1e-15, 0);
  ASSERT_CLOSE(tyr_lr_at(&c, 1050), 5.5e-4, 1e-12, 0);
  ASSERT_CLOSE(tyr_lr_at(&c, 2000), 1e-4, 1e-15, 0);
  ASSERT_CLOSE(tyr_lr_at(&c, 4999), 1e-4, 1e-15, 0);
  tyr_lr_schedule l = {
      .kind = TYR_LR_WARMUP_LINEAR, .max_lr = 1, .min_lr = 0, .warmup = 10, .total = 110};
  ASSERT_CLOSE(tyr_lr_at(&l, 60), 0.5, 1e-12, 0);
  tyr_lr_schedule w = {.kind = TYR_LR_WARMUP_PLATEAU_WARMDOWN,
                       .max_lr = 1,
                       .min_lr = 0,
                       .warmup = 10,
                       .total = 100,
                       .warmdown = 40};
  ASSERT_CLOSE(tyr_lr_at(&w, 30), 1, 0, 0);
  ASSERT_CLOSE(tyr_lr_at(&w, 80), 0.5, 1e-12, 0);
  tyr_lr_schedule k = {.kind = TYR_LR_CONSTANT, .max_lr = 0.3};
  ASSERT_CLOSE(tyr_lr_at(&k, 12345), 0.3, 0, 0);
  tyr_lr_kind kind;
  assert_true(tyr_lr_kind_parse("cosine", &kind) && kind == TYR_LR_WARMUP_COSINE);
  assert_false(tyr_lr_kind_parse("exp", &kind));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_params_collection),
      TYR_TEST(test_clip_grad_norm),
      TYR_TEST(test_adamw_matches_reference),
      TYR_TEST(test_sgd_momentum_nesterov),
      TYR_TEST(test_param_groups),
      TYR_TEST(test_schedules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
