/* The Qwen3 text encoder: transformers' hidden states of a tiny random
 * Qwen3 (tests/data/flux/qwen3_tiny, sharded, bf16, made by
 * make_qwen3_fixtures.py) within tolerance, right padding and any other
 * mask, the first layers only, FLUX.2's text stage against the same
 * pipeline in transformers, a save / load round trip, and bad checkpoints
 * refused with the names of what is missing, unexpected or misshapen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tyr/cuda.h"
#include "tyr/models/qwen3.h"
#include "tyr/safetensors.h"
#include "tyr/tokenizer.h"
#include "tyr/tyr.h"

extern bool tyr__qwen3_mask_always;

static void test_configs(void **state) {
  (void)state;
  tyr_qwen3_config c = tyr_qwen3_config_4b();
  assert_int_equal(c.n_layer, 36);
  assert_int_equal(c.hidden, 2560);
  assert_int_equal(c.n_head, 32);
  assert_int_equal(c.n_kv_head, 8);
  assert_int_equal(c.head_dim, 128);
  assert_int_equal(c.intermediate, 9728);
  assert_int_equal(c.vocab_size, 151936);
  assert_int_equal(tyr_qwen3_config_check(&c), 0);
  int l[3];
  tyr_flux2_text_layers(36, l);
  assert_int_equal(l[0], 9);
  assert_int_equal(l[1], 18);
  assert_int_equal(l[2], 27);
  tyr_flux2_text_layers(4, l);
  assert_int_equal(l[0], 1);
  assert_int_equal(l[2], 3);
  tyr_qwen3_config h;
  assert_int_equal(tyr_qwen3_config_from_hf(tyr_test_data("flux/qwen3_tiny/config.json"), &h), 0);
  tyr_qwen3_config t = tyr_qwen3_config_tiny();
  assert_int_equal(h.n_layer, t.n_layer);
  assert_int_equal(h.hidden, t.hidden);
  assert_int_equal(h.head_dim, t.head_dim);
  assert_int_equal(h.n_kv_head, t.n_kv_head);
  assert_int_equal(h.intermediate, t.intermediate);
  ASSERT_CLOSE(h.rope_theta, 1e6, 0, 0);
  ASSERT_CLOSE(h.rms_eps, 1e-6, 0, 0);
  c.n_kv_head = 5;
  EXPECT_TYR_ERROR(tyr_qwen3_config_check(&c), "not a multiple of n_kv_head");
  char *p = tyr_qwen3_chat_prompt("a cat");
  assert_string_equal(p, "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n<think>\n\n"
                         "</think>\n\n");
  free(p);
}

/* max |a - b| over two tensors of one shape (b may be a narrower view) */
static double max_diff(tyr_tensor *a, tyr_tensor *b) {
  TYR_SCOPE;
  assert_int_equal(a->rank, b->rank);
  for (int d = 0; d < a->rank; d++) assert_int_equal(a->shape[d], b->shape[d]);
  a = tyr_to_dtype_e(tyr_to_device_e(a, TYR_DEVICE_CPU), TYR_F32);
  b = tyr_to_dtype_e(tyr_to_device_e(b, TYR_DEVICE_CPU), TYR_F32);
  tyr_tensor *d = tyr_abs_e(tyr_sub_e(a, b));
  return tyr_item_e(tyr_max_e(d));
}

static double max_abs(tyr_tensor *a) {
  TYR_SCOPE;
  return tyr_item_e(
      tyr_max_e(tyr_abs_e(tyr_to_dtype_e(tyr_to_device_e(a, TYR_DEVICE_CPU), TYR_F32))));
}

/* the fixture's states against ours, all five at once (concatenated), to
 * within tol of the largest value (plus tol) */
static void check_states_tol(tyr_qwen3 *m, tyr_safetensors *f, int n, double tol) {
  TYR_SCOPE;
  tyr_tensor *ids = tyr_safetensors_load(f, "input_ids");
  tyr_tensor *mask = tyr_safetensors_load(f, "attention_mask");
  int layers[5] = {0, 1, 2, 3, 4};
  tyr_tensor *hs = tyr_qwen3_hidden_states(m, ids, mask, layers, n);
  assert_non_null(hs);
  assert_int_equal(hs->shape[2], 64 * n);
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "hidden_%d", i);
    tyr_tensor *want = tyr_safetensors_load(f, name);
    tyr_tensor *got = tyr_narrow_e(hs, 2, 64 * i, 64);
    double d = max_diff(got, want), scale = max_abs(want);
    if (d > tol * (1 + scale)) fail_msg("hidden state %d differs by %g (scale %g)", i, d, scale);
  }
}

/* The fixtures' reference is transformers in float32 on the CPU, as Tyr's
 * CPU compute.  These fixtures were made with the rotary inverse
 * frequencies rounded to bf16 (the script cast the model to bf16 and back,
 * which rounds that buffer; the real pipeline keeps it in float32, as Tyr
 * does): later positions differ by up to 3e-4 of the largest value.  The
 * same math in plain PyTorch with the rounded frequencies agrees with the
 * fixtures to 3e-6. */
#define FIXTURE_TOL 1e-3

static void check_states(tyr_qwen3 *m, tyr_safetensors *f, int n) {
  check_states_tol(m, f, n, FIXTURE_TOL);
}

static void test_fixture_states(void **state) {
  (void)state;
  tyr_qwen3 *m = tyr_qwen3_load(tyr_test_data("flux/qwen3_tiny"), 0, TYR_DEVICE_CPU);
  assert_non_null(m);
  assert_int_equal(tyr_qwen3_storage(m), TYR_BF16);
  assert_int_equal(tyr_qwen3_n_loaded(m), 4);
  tyr_safetensors *f = tyr_safetensors_open(tyr_test_data("flux/qwen3_hidden.safetensors"));
  assert_non_null(f);
  check_states(m, f, 5);
  /* the same through the general mask path */
  tyr__qwen3_mask_always = true;
  check_states(m, f, 5);
  tyr__qwen3_mask_always = false;
  /* out of range */
  {
    TYR_SCOPE;
    tyr_tensor *ids = tyr_safetensors_load(f, "input_ids");
    EXPECT_TYR_ERROR(tyr_qwen3_hidden_states(m, ids, NULL, (int[]){5}, 1),
                     "hidden state 5 does not exist");
    tyr_tensor *bad = tyr_full_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 3}, 512.0);
    EXPECT_TYR_ERROR(tyr_qwen3_hidden_states(m, bad, NULL, (int[]){1}, 1),
                     "outside the vocabulary");
    tyr_tensor *mk = tyr_ones_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 5});
    EXPECT_TYR_ERROR(tyr_qwen3_hidden_states(m, ids, mk, (int[]){1}, 1), "mask must be");
  }
  tyr_qwen3_free(m);
  /* the first two layers only: the same states 0..2, nothing past them */
  m = tyr_qwen3_load(tyr_test_data("flux/qwen3_tiny"), 2, TYR_DEVICE_CPU);
  assert_non_null(m);
  assert_int_equal(tyr_qwen3_n_loaded(m), 2);
  check_states(m, f, 3);
  {
    TYR_SCOPE;
    tyr_tensor *ids = tyr_safetensors_load(f, "input_ids");
    EXPECT_TYR_ERROR(tyr_qwen3_hidden_states(m, ids, NULL, (int[]){3}, 1), "holds 2 of 4 layers");
  }
  tyr_qwen3_free(m);
  tyr_safetensors_close(f);
}

static void test_text_stage(void **state) {
  (void)state;
  tyr_qwen3 *m = tyr_qwen3_load(tyr_test_data("flux/qwen3_tiny"), 3, TYR_DEVICE_CPU);
  tyr_tokenizer *tok = tyr_tokenizer_load_hf(tyr_test_data("flux/tokenizer.json"));
  tyr_safetensors *f = tyr_safetensors_open(tyr_test_data("flux/flux2_text.safetensors"));
  assert_non_null(m);
  assert_non_null(tok);
  assert_non_null(f);
  {
    TYR_SCOPE;
    tyr_tensor *feat, *mask;
    int64_t n = 0;
    tyr_tensor *want_ids = tyr_safetensors_load(f, "input_ids");
    int64_t max_len = want_ids->shape[1];
    assert_int_equal(tyr_flux2_text_encode_at(TYR_SITE, m, tok,
                                              "a cat sitting on a windowsill, photorealistic",
                                              max_len, &feat, &mask, &n),
                     0);
    assert_int_equal(feat->shape[0], 1);
    assert_int_equal(feat->shape[1], max_len);
    assert_int_equal(feat->shape[2], 192);
    tyr_tensor *want_mask = tyr_safetensors_load(f, "attention_mask");
    assert_true(max_diff(mask, want_mask) == 0);
    assert_int_equal(n, (int64_t)tyr_item_e(tyr_sum_e(tyr_to_dtype_e(want_mask, TYR_F32))));
    tyr_tensor *want = tyr_safetensors_load(f, "features");
    double d = max_diff(feat, want), scale = max_abs(want);
    if (d > FIXTURE_TOL * (1 + scale)) fail_msg("text features differ by %g (scale %g)", d, scale);
    /* truncated: the first 8 tokens, all valid, and their states are the same (causal) */
    assert_int_equal(tyr_flux2_text_encode_at(TYR_SITE, m, tok,
                                              "a cat sitting on a windowsill, photorealistic", 8,
                                              &feat, &mask, &n),
                     0);
    assert_int_equal(n, 8);
    assert_int_equal(feat->shape[1], 8);
    d = max_diff(feat, tyr_narrow_e(want, 1, 0, 8));
    if (d > FIXTURE_TOL * (1 + scale)) fail_msg("truncated features differ by %g", d);
    EXPECT_TYR_ERROR(tyr_flux2_text_encode(m, tok, "", 32, &feat, &mask), "the prompt is empty");
    assert_null(feat);
  }
  tyr_safetensors_close(f);
  tyr_tokenizer_free(tok);
  tyr_qwen3_free(m);
}

/* ---- checkpoints written here ----------------------------------------------- */
static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static char *read_text(const char *path) {
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = 0;
  fclose(fp);
  return buf;
}

/* config.json of dir with one "key": value replaced */
static void edit_config(const char *dir, const char *key, const char *value) {
  char path[4200], out[4096], pat[128];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *text = read_text(path);
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  char *at = strstr(text, pat);
  assert_non_null(at);
  char *end = strpbrk(at + strlen(pat), ",\n");
  snprintf(out, sizeof out, "%.*s%s%s%s", (int)(at - text), text, pat, value, end);
  write_text(path, out);
}

static void test_round_trip_and_bad(void **state) {
  (void)state;
  tyr_qwen3_config c = tyr_qwen3_config_tiny();
  c.n_layer = 2;
  tyr_qwen3 *m = tyr_qwen3_init_random(&c, 0, 7, TYR_BF16, TYR_DEVICE_CPU);
  assert_non_null(m);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/qwen3_rt", tyr_test_tmpdir());
  assert_int_equal(tyr_qwen3_save_hf(m, dir), 0);
  tyr_qwen3 *r = tyr_qwen3_load(dir, 0, TYR_DEVICE_CPU);
  assert_non_null(r);
  {
    TYR_SCOPE;
    tyr_tensor *ids =
        tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 6}, 0, c.vocab_size);
    tyr_tensor *mask = tyr_ones_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 6});
    tyr_set_e(mask, 0.0, 1, 5);
    tyr_set_e(mask, 0.0, 0, 0); /* left padding: the mask tensor */
    int layers[3] = {2, 0, 1};
    tyr_tensor *a = tyr_qwen3_hidden_states(m, ids, mask, layers, 3);
    tyr_tensor *b = tyr_qwen3_hidden_states(r, ids, mask, layers, 3);
    assert_non_null(a);
    assert_true(max_diff(a, b) == 0);
    assert_true(max_abs(a) > 0.1);
    /* a padded key changes nothing for the queries that cannot see it */
    tyr_tensor *ids2 = tyr_clone_e(ids);
    tyr_set_e(ids2, 3.0, 1, 5);
    tyr_tensor *b2 = tyr_qwen3_hidden_states(r, ids2, mask, layers, 3);
    assert_true(max_diff(tyr_narrow_e(b2, 1, 0, 5), tyr_narrow_e(b, 1, 0, 5)) == 0);
  }
  tyr_qwen3_free(r);
  tyr_qwen3_free(m);

  /* a config with a layer more: layers.2.* are missing */
  edit_config(dir, "num_hidden_layers", "3");
  EXPECT_TYR_ERROR(tyr_qwen3_load(dir, 0, TYR_DEVICE_CPU),
                   "11 missing: layers.2.input_layernorm.weight, layers.2.self_attn.q_proj.weight");
  /* one layer fewer: its tensors are unexpected, unless only the first is loaded */
  edit_config(dir, "num_hidden_layers", "1");
  EXPECT_TYR_ERROR(tyr_qwen3_load(dir, 0, TYR_DEVICE_CPU), "11 unexpected: layers.1.");
  edit_config(dir, "num_hidden_layers", "2");
  r = tyr_qwen3_load(dir, 1, TYR_DEVICE_CPU);
  assert_non_null(r);
  tyr_qwen3_free(r);
  /* a shape the config does not give */
  edit_config(dir, "intermediate_size", "96");
  EXPECT_TYR_ERROR(tyr_qwen3_load(dir, 0, TYR_DEVICE_CPU),
                   "tensor layers.0.mlp.gate_proj.weight is [128, 64], but the config");
  edit_config(dir, "intermediate_size", "128");
  edit_config(dir, "model_type", "\"llama\"");
  EXPECT_TYR_ERROR(tyr_qwen3_load(dir, 0, TYR_DEVICE_CPU), "model_type is \"llama\"");
  EXPECT_TYR_ERROR(tyr_qwen3_load("/nonexistent/qwen3", 0, TYR_DEVICE_CPU),
                   "/nonexistent/qwen3/config.json: cannot open");

  /* the sharded fixture without one of its shards */
  char sh[4200], cmd[16384];
  snprintf(sh, sizeof sh, "%s/qwen3_shards", tyr_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "rm -rf '%s' && cp -r '%s' '%s' && rm '%s'/model-00002-of-*.safetensors", sh,
           tyr_test_data("flux/qwen3_tiny"), sh, sh);
  assert_int_equal(system(cmd), 0);
  EXPECT_TYR_ERROR(tyr_qwen3_load(sh, 0, TYR_DEVICE_CPU), "model-00002-of-");
}

/* On a GPU: the fixture in bf16 (both paths of the mask), and a random
 * model against the same on the CPU. */
static void test_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  tyr_qwen3 *m = tyr_qwen3_load(tyr_test_data("flux/qwen3_tiny"), 0, TYR_DEVICE_CUDA(0));
  assert_non_null(m);
  tyr_safetensors *f = tyr_safetensors_open(tyr_test_data("flux/qwen3_hidden.safetensors"));
  check_states_tol(m, f, 5, 5e-2);
  tyr__qwen3_mask_always = true;
  check_states_tol(m, f, 5, 5e-2);
  tyr__qwen3_mask_always = false;
  tyr_safetensors_close(f);
  tyr_qwen3_free(m);
  tyr_qwen3_config c = tyr_qwen3_config_tiny();
  tyr_qwen3 *a = tyr_qwen3_init_random(&c, 3, 5, TYR_F32, TYR_DEVICE_CPU);
  tyr_qwen3 *b = tyr_qwen3_init_random(&c, 3, 5, TYR_F32, TYR_DEVICE_CUDA(0));
  {
    TYR_SCOPE;
    tyr_tensor *ids =
        tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 40}, 0, c.vocab_size);
    tyr_tensor *mask = tyr_ones_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 40});
    for (int64_t i = 30; i < 40; i++) tyr_set_e(mask, 0.0, 0, i);
    int layers[3] = {1, 2, 3};
    tyr_tensor *x = tyr_qwen3_hidden_states(a, ids, mask, layers, 3);
    tyr_tensor *y = tyr_qwen3_hidden_states(b, tyr_to_device_e(ids, TYR_DEVICE_CUDA(0)),
                                            tyr_to_device_e(mask, TYR_DEVICE_CUDA(0)), layers, 3);
    assert_int_equal(y->device.type, TYR_CUDA);
    double d = max_diff(x, tyr_to_device_e(y, TYR_DEVICE_CPU)), scale = max_abs(x);
    if (d > 1e-3 * (1 + scale)) fail_msg("CUDA f32 states differ from the CPU's by %g", d);
  }
  tyr_qwen3_free(a);
  tyr_qwen3_free(b);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_configs),    TYR_TEST(test_fixture_states),
      TYR_TEST(test_text_stage), TYR_TEST(test_round_trip_and_bad),
      TYR_TEST(test_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
