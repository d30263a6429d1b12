/* Loading transformers GPT-2 checkpoints: the rule patterns, a checkpoint
 * written here in transformers' layout (one file and shards) giving the
 * logits of the model it came from, bad checkpoints refused by name, and
 * the logits transformers itself computed for tests/data/hf_gpt2 (made by
 * tests/data/hf_gpt2/make_fixture.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tyr/cuda.h"
#include "tyr/models/gpt.h"
#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

static void test_patterns(void **state) {
  (void)state;
  char out[64];
  assert_true(tyr_st_pattern_apply("h.*.attn.c_attn.weight", "blocks.*.attn.qkv.weight",
                                   "h.11.attn.c_attn.weight", out, sizeof out));
  assert_string_equal(out, "blocks.11.attn.qkv.weight");
  assert_false(
      tyr_st_pattern_apply("h.*.ln_1.weight", "x", "transformer.h.0.ln_1.weight", out, sizeof out));
  assert_false(tyr_st_pattern_apply("h.*.ln_1.weight", "x", "h..ln_1.weight", out, sizeof out));
  assert_false(tyr_st_pattern_apply("h.*.ln_1.weight", "x", "h.0.1.ln_1.weight", out, sizeof out));
  assert_true(tyr_st_pattern_apply("*.*.w", "*-*", "a.bc.w", out, sizeof out));
  assert_string_equal(out, "a-bc");
  assert_false(tyr_st_pattern_apply("*.w", "a_very_long_*", "abcdefghij.w", out, 16));
}

static tyr_gpt_config small_config(void) {
  tyr_gpt_config c = tyr_gpt_config_gpt2(13, 8, 2, 2, 16);
  c.norm_eps = 1e-2; /* far from the default, so that ignoring it shows */
  c.mlp_hidden = 24;
  return c;
}

/* a GPT with every parameter random (norm weights around 1) */
static void random_gpt(tyr_gpt *g, const tyr_gpt_config *c) {
  assert_int_equal(tyr_gpt_init(g, c, TYR_DEVICE_CPU), 0);
  TYR_NO_GRAD;
  for (int i = 0; i < g->params.n; i++) {
    TYR_SCOPE;
    tyr_tensor *t = g->params.items[i].t;
    tyr_tensor *r = tyr_randn_at(TYR_SITE, t->dtype, t->device, t->rank, t->shape, 0.0, 0.3);
    if (strstr(g->params.items[i].name, "ln") && strstr(g->params.items[i].name, "weight"))
      r = tyr_add_scalar_e(r, 1.0);
    tyr_copy_e(t, r);
  }
}

static const char *hf_name(const char *tyr_name, char *buf, size_t n, bool *transpose) {
  static const char *const pairs[][2] = {{"ln1", "ln_1"},
                                         {"ln2", "ln_2"},
                                         {"attn.qkv", "attn.c_attn"},
                                         {"attn.proj", "attn.c_proj"},
                                         {"mlp.fc", "mlp.c_fc"},
                                         {"mlp.proj", "mlp.c_proj"}};
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", tyr_name);
  if (strncmp(tmp, "blocks.", 7) == 0) {
    memmove(tmp + 1, tmp + 6, strlen(tmp + 6) + 1);
    tmp[0] = 'h';
  }
  *transpose = false;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    char *p = strstr(tmp, pairs[i][0]);
    if (!p) continue;
    char rest[256];
    snprintf(rest, sizeof rest, "%s", p + strlen(pairs[i][0]));
    snprintf(p, sizeof tmp - (size_t)(p - tmp), "%s%s", pairs[i][1], rest);
    *transpose = strstr(tmp, "weight") && pairs[i][0][0] != 'l';
    break;
  }
  snprintf(buf, n, "transformer.%s", tmp);
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void write_config(const char *dir, const tyr_gpt_config *c, const char *extra) {
  char path[512], text[1024];
  snprintf(path, sizeof path, "%s/config.json", dir);
  snprintf(text, sizeof text,
           "{\"model_type\": \"gpt2\", \"vocab_size\": %lld, \"n_positions\": %lld, "
           "\"n_embd\": %lld, \"n_layer\": %lld, \"n_head\": %lld, \"n_inner\": %lld, "
           "\"layer_norm_epsilon\": %g, \"activation_function\": \"gelu_new\"%s}",
           (long long)c->vocab_size, (long long)c->block_size, (long long)c->n_embd,
           (long long)c->n_layer, (long long)c->n_head, (long long)c->mlp_hidden, c->norm_eps,
           extra);
  write_file(path, text);
}

/* Writes g in transformers' layout: prefixed names, [in, out] Conv1D
 * weights, the causal-mask buffers and the tied head's copy; nshards files
 * (with an index) or one model.safetensors. */
static void write_hf(const char *dir, tyr_gpt *g, int nshards, tyr_dtype file_dtype) {
  TYR_SCOPE;
  mkdir(dir, 0777);
  write_config(dir, &g->cfg, "");
  int n = g->params.n, total = n + (int)g->cfg.n_layer + 1;
  char(*names)[128] = calloc((size_t)total, sizeof *names);
  tyr_tensor **ts = calloc((size_t)total, sizeof *ts);
  for (int i = 0; i < n; i++) {
    bool tr;
    hf_name(g->params.items[i].name, names[i], sizeof names[i], &tr);
    tyr_tensor *t = tyr_detach_e(g->params.items[i].t);
    if (tr) t = tyr_contiguous_e(tyr_transpose_e(t, 0, 1));
    ts[i] = tyr_to_dtype_e(t, file_dtype);
  }
  for (int l = 0; l < g->cfg.n_layer; l++) {
    snprintf(names[n + l], sizeof names[n + l], "transformer.h.%d.attn.bias", l);
    ts[n + l] = tyr_ones_e(1, 1, g->cfg.block_size, g->cfg.block_size);
  }
  snprintf(names[total - 1], sizeof names[total - 1], "lm_head.weight");
  ts[total - 1] = tyr_to_dtype_e(tyr_detach_e(g->wte.weight), file_dtype);
  const char *ptrs[256];
  for (int i = 0; i < total; i++) ptrs[i] = names[i];
  char path[1200];
  if (nshards <= 1) {
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(tyr_safetensors_save(path, total, ptrs, ts, 0, NULL, NULL), 0);
  } else {
    char index[16384];
    int k = snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    int per = (total + nshards - 1) / nshards;
    for (int sh = 0; sh < nshards; sh++) {
      int lo = sh * per, hi = lo + per < total ? lo + per : total;
      char file[64];
      snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", sh + 1, nshards);
      snprintf(path, sizeof path, "%s/%s", dir, file);
      assert_int_equal(tyr_safetensors_save(path, hi - lo, ptrs + lo, ts + lo, 0, NULL, NULL), 0);
      for (int i = lo; i < hi; i++)
        k += snprintf(index + k, sizeof index - (size_t)k, "%s\"%s\": \"%s\"", i ? ", " : "",
                      names[i], file);
    }
    snprintf(index + k, sizeof index - (size_t)k, "}}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, index);
  }
  free(names);
  free(ts);
}

static double max_diff(tyr_tensor *a, tyr_tensor *b) {
  TYR_SCOPE;
  return tyr_item_e(
      tyr_max_e(tyr_abs_e(tyr_sub_e(tyr_to_dtype_e(a, TYR_F64), tyr_to_dtype_e(b, TYR_F64)))));
}

static void check_same_logits(tyr_gpt *a, tyr_gpt *b, double tol) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  int64_t ids[2 * 8];
  for (int i = 0; i < 16; i++) ids[i] = (i * 5 + 3) % a->cfg.vocab_size;
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 8});
  tyr_tensor *la = tyr_gpt_forward(a, x, NULL, NULL, false);
  tyr_tensor *lb = tyr_gpt_forward(b, x, NULL, NULL, false);
  assert_non_null(la);
  assert_non_null(lb);
  double d = max_diff(la, lb);
  if (!(d <= tol)) fail_msg("logits differ by %g (tolerance %g)", d, tol);
}

static void test_own_checkpoint_in_hf_layout(void **state) {
  (void)state;
  tyr_gpt_config c = small_config();
  tyr_gpt ref, got;
  random_gpt(&ref, &c);
  char one[512], sharded[512], half[512];
  snprintf(one, sizeof one, "%s/hf_one", tyr_test_tmpdir());
  snprintf(sharded, sizeof sharded, "%s/hf_sharded", tyr_test_tmpdir());
  snprintf(half, sizeof half, "%s/hf_bf16", tyr_test_tmpdir());
  write_hf(one, &ref, 1, TYR_F32);
  write_hf(sharded, &ref, 3, TYR_F32);
  write_hf(half, &ref, 1, TYR_BF16);

  tyr_rng_state before = tyr_rng_get_state();
  assert_int_equal(tyr_gpt_from_hf(&got, one, TYR_DEVICE_CPU), 0);
  tyr_rng_state after = tyr_rng_get_state();
  assert_true(before.seed == after.seed && before.counter == after.counter);
  assert_true(got.cfg.norm_eps == c.norm_eps);
  assert_int_equal(got.cfg.mlp_hidden, 24);
  assert_true(got.lm_head.weight == got.wte.weight);
  check_same_logits(&ref, &got, 1e-5);
  tyr_gpt_free(&got);

  tyr_safetensors_set *set = tyr_safetensors_set_open(sharded);
  assert_non_null(set);
  assert_int_equal(tyr_safetensors_set_nfiles(set), 3);
  tyr_safetensors_set_close(set);
  assert_int_equal(tyr_gpt_from_hf(&got, sharded, TYR_DEVICE_CPU), 0);
  check_same_logits(&ref, &got, 1e-5);
  tyr_gpt_free(&got);

  /* a bf16 file into f32 parameters: converted */
  assert_int_equal(tyr_gpt_from_hf(&got, half, TYR_DEVICE_CPU), 0);
  check_same_logits(&ref, &got, 0.5);
  tyr_gpt_free(&got);

  /* the epsilon is the config's: with 1e-5 the logits move */
  write_config(one,
               &(tyr_gpt_config){.vocab_size = c.vocab_size,
                                 .block_size = c.block_size,
                                 .n_layer = c.n_layer,
                                 .n_head = c.n_head,
                                 .n_embd = c.n_embd,
                                 .mlp_hidden = c.mlp_hidden,
                                 .norm_eps = 1e-5},
               "");
  assert_int_equal(tyr_gpt_from_hf(&got, one, TYR_DEVICE_CPU), 0);
  {
    TYR_SCOPE;
    TYR_NO_GRAD;
    int64_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tyr_tensor *x = tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 8});
    double d = max_diff(tyr_gpt_forward(&ref, x, NULL, NULL, false),
                        tyr_gpt_forward(&got, x, NULL, NULL, false));
    assert_true(d > 1e-4);
  }
  tyr_gpt_free(&got);
  tyr_gpt_free(&ref);
}

static void test_bad_checkpoints(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_gpt_config c = small_config();
  tyr_gpt ref, got;
  random_gpt(&ref, &c);
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/hf_bad", tyr_test_tmpdir());
  write_hf(dir, &ref, 1, TYR_F32);

  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, "/nonexistent/gpt2", TYR_DEVICE_CPU),
                   "/nonexistent/gpt2/config.json");
  write_config(dir, &c, ", \"add_cross_attention\": true");
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "add_cross_attention");
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_file(path, "{\"model_type\": \"llama\"}");
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "model_type is \"llama\"");
  write_file(path, "{\"model_type\": \"gpt2\",\n \"vocab_size\": }");
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "config.json: line 2");
  write_config(dir, &c, ", \"activation_function\": \"mish\"");
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "activation_function \"mish\"");

  /* a config with a wider model than the weights: the tensor is named */
  tyr_gpt_config wide = c;
  wide.n_embd = 32;
  write_config(dir, &wide, "");
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "transformer.");
  /* a weight missing */
  write_config(dir, &c, "");
  {
    TYR_SCOPE;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tyr_safetensors *f = tyr_safetensors_open(path);
    assert_non_null(f);
    const char *names[64];
    tyr_tensor *ts[64];
    int k = 0;
    for (int i = 0; i < tyr_safetensors_count(f); i++) {
      const char *nm = tyr_safetensors_name(f, i);
      if (strcmp(nm, "transformer.h.1.mlp.c_fc.bias") == 0) continue;
      names[k] = nm;
      ts[k++] = tyr_safetensors_load(f, nm);
    }
    assert_int_equal(tyr_safetensors_save(path, k, names, ts, 0, NULL, NULL), 0);
    tyr_safetensors_close(f);
  }
  EXPECT_TYR_ERROR(tyr_gpt_from_hf(&got, dir, TYR_DEVICE_CPU), "blocks.1.mlp.fc.bias");
  /* an index naming a shard without the tensor */
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  write_file(path, "{\"weight_map\": {\"transformer.wte.weight\": \"model.safetensors\", "
                   "\"transformer.h.1.mlp.c_fc.bias\": \"model.safetensors\"}}");
  EXPECT_TYR_ERROR(tyr_safetensors_set_open(path), "transformer.h.1.mlp.c_fc.bias");
  tyr_gpt_free(&ref);
}

static void test_rules_split_merge(void **state) {
  (void)state;
  tyr_test_record_errors();
  char path[512];
  snprintf(path, sizeof path, "%s/fused.safetensors", tyr_test_tmpdir());
  {
    TYR_SCOPE;
    tyr_tensor *qkv = tyr_arange_e(24);
    qkv = tyr_reshape_e(qkv, 6, 4);
    tyr_tensor *a = tyr_full_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 2}, 4.0);
    const char *names[] = {"fused", "half_a"};
    tyr_tensor *ts[] = {qkv, a};
    assert_int_equal(tyr_safetensors_save(path, 2, names, ts, 0, NULL, NULL), 0);
  }
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_params_add(&ps, "q", tyr_zeros_e(2, 4));
  tyr_params_add(&ps, "k", tyr_zeros_e(2, 4));
  tyr_params_add(&ps, "v", tyr_zeros_e(2, 4));
  tyr_params_add(&ps, "m", tyr_zeros_e(2, 4));
  tyr_safetensors_set *set = tyr_safetensors_set_open(path);
  assert_non_null(set);
  tyr_st_rule rules[] = {
      {.from = "fused", .to = "q", .split_dim = 0, .split_n = 3, .split_i = 0},
      {.from = "fused", .to = "k", .split_dim = 0, .split_n = 3, .split_i = 1},
      {.from = "fused", .to = "v", .split_dim = 0, .split_n = 3, .split_i = 2},
      /* [2,2] f64 into the left half of m, transposed and cast; the right
         half from the same tensor */
      {.from = "half_a",
       .to = "m",
       .flags = TYR_ST_CAST | TYR_ST_TRANSPOSE,
       .merge_dim = 1,
       .merge_n = 2,
       .merge_i = 0},
      {.from = "half_a",
       .to = "m",
       .flags = TYR_ST_CAST,
       .merge_dim = 1,
       .merge_n = 2,
       .merge_i = 1},
  };
  /* without the cast flag the dtype is refused, and nothing changes */
  rules[4].flags = 0;
  EXPECT_TYR_ERROR(tyr_safetensors_load_mapped(set, &ps, rules, 5, 0), "is f64 but");
  {
    TYR_SCOPE;
    assert_true(tyr_item_e(tyr_sum_e(ps.items[0].t)) == 0);
  }
  rules[4].flags = TYR_ST_CAST;
  /* a merge slot left empty */
  EXPECT_TYR_ERROR(tyr_safetensors_load_mapped(set, &ps, rules, 4, 0), "only partly filled");
  assert_int_equal(tyr_safetensors_load_mapped(set, &ps, rules, 5, 0), 0);
  {
    TYR_SCOPE;
    float v[8];
    tyr_to_host_e(ps.items[1].t, v, sizeof v); /* k: rows 2..3 of [6, 4] */
    assert_true(v[0] == 8 && v[7] == 15);
    tyr_to_host_e(ps.items[2].t, v, sizeof v); /* v: rows 4..5 */
    assert_true(v[0] == 16 && v[7] == 23);
    tyr_to_host_e(ps.items[3].t, v, sizeof v);
    for (int i = 0; i < 8; i++) assert_true(v[i] == 4);
  }
  /* an unmatched source with no parameter of its name */
  EXPECT_TYR_ERROR(tyr_safetensors_load_mapped(set, &ps, rules, 3, 0), "half_a");
  assert_int_equal(
      tyr_safetensors_load_mapped(set, &ps, rules, 3, TYR_ST_ALLOW_UNUSED | TYR_ST_ALLOW_MISSING),
      0);
  tyr_safetensors_set_close(set);
  tyr_params_free(&ps);
}

/* transformers' own logits (tests/data/hf_gpt2, see make_fixture.py) */
static void check_fixture(const char *model_dir, const char *logits_path, tyr_device dev) {
  tyr_gpt g;
  assert_int_equal(tyr_gpt_from_hf(&g, model_dir, dev), 0);
  assert_true(g.cfg.norm_eps != 1e-5);
  TYR_SCOPE;
  TYR_NO_GRAD;
  tyr_safetensors *f = tyr_safetensors_open(logits_path);
  assert_non_null(f);
  tyr_tensor *ids = tyr_safetensors_load(f, "input_ids");
  tyr_tensor *want = tyr_safetensors_load(f, "logits");
  assert_non_null(ids);
  assert_non_null(want);
  tyr_tensor *got = tyr_gpt_forward(&g, tyr_to_device_e(ids, dev), NULL, NULL, false);
  assert_non_null(got);
  got = tyr_to_device_e(got, TYR_DEVICE_CPU);
  assert_int_equal(got->rank, 3);
  assert_memory_equal(got->shape, want->shape, sizeof(int64_t) * 3);
  double d = max_diff(got, want);
  double scale = tyr_item_e(tyr_max_e(tyr_abs_e(want)));
  printf("# %s on %s: max |tyr - transformers| = %.3g (logits up to %.3g)\n", model_dir,
         tyr_device_name(dev), d, scale);
  if (!(d < 1e-5 * (1 + scale))) fail_msg("logits differ from transformers' by %g", d);
  tyr_safetensors_close(f);
  tyr_gpt_free(&g);
}

static void test_transformers_logits(void **state) {
  (void)state;
  const char *data = getenv("TYR_TEST_DATA");
  char dir[512], sharded[600], logits[600];
  snprintf(dir, sizeof dir, "%s/hf_gpt2", data ? data : "tests/data");
  snprintf(sharded, sizeof sharded, "%s/sharded", dir);
  snprintf(logits, sizeof logits, "%s/logits.safetensors", dir);
  struct stat st;
  if (stat(logits, &st) != 0) {
    printf("# %s is missing: run tests/data/hf_gpt2/make_fixture.py\n", logits);
    skip();
  }
  check_fixture(dir, logits, TYR_DEVICE_CPU);
  check_fixture(sharded, logits, TYR_DEVICE_CPU);
  if (tyr_cuda_available()) check_fixture(sharded, logits, TYR_DEVICE_CUDA(0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_patterns),
      TYR_TEST(test_own_checkpoint_in_hf_layout),
      TYR_TEST(test_bad_checkpoints),
      TYR_TEST(test_rules_split_merge),
      TYR_TEST(test_transformers_logits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
