/* Checkpoints: round trip of parameters, optimizer state, step and RNG;
 * mismatches and damaged files refused without changing anything; the PNG
 * plot writer. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tyr/checkpoint.h"
#include "tyr/plot.h"
#include "tyr/tyr.h"

static void make_model(tyr_params *ps, int64_t width) {
  tyr_params_init(ps);
  tyr_params_add(ps, "layer.weight", tyr_randn_e(width, 3));
  tyr_params_add(ps, "layer.bias", tyr_randn_e(width));
}

static void train_steps(tyr_params *ps, tyr_optim *opt, int n) {
  for (int i = 0; i < n; i++) {
    TYR_SCOPE;
    tyr_tensor *loss = tyr_sum_e(tyr_square_e(tyr_add_row_e(ps->items[0].t, tyr_ones_e(3))));
    loss = tyr_add_e(loss, tyr_sum_e(tyr_exp_e(ps->items[1].t)));
    tyr_backward_e(loss);
    tyr_optim_step(opt, -1);
    tyr_optim_zero_grad(opt);
  }
}

static void test_round_trip_and_resume(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/ck.safetensors", tyr_test_tmpdir());
  tyr_params a, b;
  tyr_optim oa, ob;
  make_model(&a, 4);
  tyr_optim_init(&oa, &a, tyr_adamw_config(0.01));
  train_steps(&a, &oa, 3);
  tyr_checkpoint_info info = {
      .step = 3, .rng = tyr_rng_get_state(), .nmeta = 1, .keys = {"note"}, .values = {"hello"}};
  assert_int_equal(tyr_checkpoint_save(path, &a, &oa, &info), 0);
  tyr_rng_state rng_at_save = tyr_rng_get_state();
  train_steps(&a, &oa, 2); /* the straight run continues */

  make_model(&b, 4); /* different random values */
  tyr_optim_init(&ob, &b, tyr_adamw_config(0.01));
  tyr_manual_seed(999);
  tyr_checkpoint *ck = tyr_checkpoint_open(path);
  assert_non_null(ck);
  assert_string_equal(tyr_checkpoint_meta(ck, "note"), "hello");
  tyr_checkpoint_info got;
  assert_int_equal(tyr_checkpoint_load(ck, &b, &ob, &got), 0);
  tyr_checkpoint_close(ck);
  assert_int_equal(got.step, 3);
  assert_int_equal(ob.step, 3);
  assert_true(tyr_rng_get_state().counter == rng_at_save.counter);
  train_steps(&b, &ob, 2); /* the resumed run */
  for (int i = 0; i < a.n; i++) {
    int64_t n = tyr_numel(a.items[i].t);
    assert_memory_equal(tyr_data_ptr(a.items[i].t), tyr_data_ptr(b.items[i].t), (size_t)n * 4);
  }
  tyr_optim_free(&oa);
  tyr_optim_free(&ob);
  tyr_params_free(&a);
  tyr_params_free(&b);
}

static void test_mismatch_changes_nothing(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/ck2.safetensors", tyr_test_tmpdir());
  tyr_params a, b;
  make_model(&a, 4);
  assert_int_equal(tyr_checkpoint_save(path, &a, NULL, NULL), 0);
  make_model(&b, 5);
  float before = (float)tyr_get_e(b.items[1].t, 0);
  tyr_checkpoint *ck = tyr_checkpoint_open(path);
  EXPECT_TYR_ERROR(tyr_checkpoint_load(ck, &b, NULL, NULL),
                   "tensor 'layer.weight' is f32 [4, 3] in the file but f32 [5, 3] in the model");
  assert_true((float)tyr_get_e(b.items[1].t, 0) == before);
  tyr_checkpoint_close(ck);
  /* optimizer state missing from a model-only file */
  tyr_optim oa;
  tyr_optim_init(&oa, &a, tyr_adamw_config(0.01));
  ck = tyr_checkpoint_open(path);
  EXPECT_TYR_ERROR(tyr_checkpoint_load(ck, &a, &oa, NULL),
                   "tensor 'optim.layer.weight.m' is missing");
  tyr_checkpoint_close(ck);
  tyr_optim_free(&oa);
  tyr_params_free(&a);
  tyr_params_free(&b);
}

static void test_damaged_and_failed_writes(void **state) {
  (void)state;
  char path[512], trunc[512], bad[600];
  snprintf(path, sizeof path, "%s/ck3.safetensors", tyr_test_tmpdir());
  snprintf(trunc, sizeof trunc, "%s/ck3-trunc.safetensors", tyr_test_tmpdir());
  tyr_params a;
  make_model(&a, 4);
  assert_int_equal(tyr_checkpoint_save(path, &a, NULL, NULL), 0);
  FILE *f = fopen(path, "rb"), *g = fopen(trunc, "wb");
  char buf[100];
  size_t n = fread(buf, 1, sizeof buf, f);
  fwrite(buf, 1, n, g);
  fclose(f);
  fclose(g);
  EXPECT_TYR_ERROR(tyr_checkpoint_open(trunc), "ck3-trunc.safetensors");
  /* a failed save leaves the old file as it was */
  struct stat st0, st1;
  stat(path, &st0);
  snprintf(bad, sizeof bad, "%s/no/such/dir/ck.safetensors", tyr_test_tmpdir());
  EXPECT_TYR_ERROR(tyr_checkpoint_save(bad, &a, NULL, NULL), "no/such/dir");
  stat(path, &st1);
  assert_int_equal(st0.st_size, st1.st_size);
  tyr_params_free(&a);
}

static void test_plot_png(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/loss.png", tyr_test_tmpdir());
  double x[50], y[50], vx[3] = {10, 30, 50}, vy[3] = {2.0, 1.5, 1.4};
  for (int i = 0; i < 50; i++) {
    x[i] = i + 1;
    y[i] = 3.0 / (1 + 0.1 * i);
  }
  tyr_plot_series s[2] = {{"TRAIN", x, y, 50, 0x1f77b4}, {"VAL", vx, vy, 3, 0xd62728}};
  assert_int_equal(tyr_plot_png(path, 640, 400, "LOSS", "STEP", "LOSS", s, 2), 0);
  FILE *f = fopen(path, "rb");
  unsigned char sig[8];
  assert_int_equal(fread(sig, 1, 8, f), 8);
  fclose(f);
  assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
  EXPECT_TYR_ERROR(tyr_plot_png(path, 10, 10, NULL, NULL, NULL, s, 2), "size 10x10");
  double nan = 0.0 / 0.0;
  tyr_plot_series empty = {"X", &nan, &nan, 1, 0};
  EXPECT_TYR_ERROR(tyr_plot_png(path, 640, 400, NULL, NULL, NULL, &empty, 1), "no finite points");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_round_trip_and_resume),
      TYR_TEST(test_mismatch_changes_nothing),
      TYR_TEST(test_damaged_and_failed_writes),
      TYR_TEST(test_plot_png),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
