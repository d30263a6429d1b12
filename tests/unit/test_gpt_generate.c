/* tyr_gpt_generate (greedy, temperature, top-k, top-p, seeds, the draws'
 * distribution against the softmax), and checkpoints that rebuild the
 * model (tyr_gpt_save / tyr_gpt_load, the config as JSON, weights loaded
 * without touching the RNG). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tyr/checkpoint.h"
#include "tyr/cuda.h"
#include "tyr/models/gpt.h"
#include "tyr/tyr.h"

enum { V = 11, BLOCK = 8 };

static void small_gpt(tyr_gpt *g) {
  tyr_gpt_config c = tyr_gpt_config_gpt2(V, BLOCK, 1, 2, 16);
  c.norm_eps = 1e-3;
  tyr_manual_seed(42);
  assert_int_equal(tyr_gpt_init(g, &c, TYR_DEVICE_CPU), 0);
  TYR_NO_GRAD;
  TYR_SCOPE;
  /* larger weights than the init, so that the next-token distribution is
     far from uniform */
  tyr_copy_e(g->wte.weight, tyr_mul_scalar_e(g->wte.weight, 60.0));
}

/* the next-token probabilities after ids[0..n) at temperature temp */
static void next_probs(tyr_gpt *g, const int64_t *ids, int64_t n, double temp, double *p) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  int64_t T = n < BLOCK ? n : BLOCK;
  tyr_tensor *x =
      tyr_from_host_at(TYR_SITE, ids + n - T, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, T});
  tyr_tensor *l = tyr_gpt_forward(g, x, NULL, NULL, false);
  float f[BLOCK * V];
  assert_int_equal(tyr_to_host_e(l, f, sizeof(float) * (size_t)(T * V)), 0);
  double mx = -INFINITY, sum = 0;
  for (int j = 0; j < V; j++) mx = fmax(mx, f[(T - 1) * V + j] / temp);
  for (int j = 0; j < V; j++) sum += p[j] = exp(f[(T - 1) * V + j] / temp - mx);
  for (int j = 0; j < V; j++) p[j] /= sum;
}

static int rank_of(const double *p, int j) {
  int r = 0;
  for (int i = 0; i < V; i++) r += p[i] > p[j];
  return r;
}

static void test_greedy_and_masks(void **state) {
  (void)state;
  tyr_gpt g;
  small_gpt(&g);
  int64_t prompt[3] = {1, 2, 3}, out[3 + 20], out2[3 + 20];
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.temperature = 0;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 20, &sc, out), 0);
  assert_memory_equal(out, prompt, sizeof prompt);
  double p[V];
  for (int k = 3; k < 23; k++) { /* greedy: the most likely token each step (past the block too) */
    next_probs(&g, out, k, 1.0, p);
    assert_int_equal(rank_of(p, (int)out[k]), 0);
  }
  /* top_k 1 and a tiny top_p are greedy as well */
  sc = tyr_gpt_sample_defaults();
  sc.top_k = 1;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 20, &sc, out2), 0);
  assert_memory_equal(out, out2, sizeof out);
  sc = tyr_gpt_sample_defaults();
  sc.top_p = 1e-6;
  sc.seed = 5;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 20, &sc, out2), 0);
  assert_memory_equal(out, out2, sizeof out);
  /* top_k 3: every token among the three most likely; top_p 0.5: among
     the fewest tokens whose mass reaches 0.5 */
  for (int seed = 0; seed < 4; seed++) {
    sc = tyr_gpt_sample_defaults();
    sc.top_k = 3;
    sc.temperature = 2.0;
    sc.seed = (uint64_t)seed;
    assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 12, &sc, out), 0);
    for (int k = 3; k < 15; k++) {
      next_probs(&g, out, k, 2.0, p);
      assert_true(rank_of(p, (int)out[k]) < 3);
    }
    sc.top_k = 0;
    sc.top_p = 0.5;
    assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 12, &sc, out), 0);
    for (int k = 3; k < 15; k++) {
      next_probs(&g, out, k, 2.0, p);
      double above = 0; /* mass of the tokens more likely than the one drawn */
      for (int j = 0; j < V; j++) above += p[j] > p[out[k]] ? p[j] : 0;
      assert_true(above < 0.5);
    }
  }
  tyr_gpt_free(&g);
}

static void test_seeds_and_rng(void **state) {
  (void)state;
  tyr_gpt g;
  small_gpt(&g);
  int64_t prompt[2] = {4, 5}, a[2 + 30], b[2 + 30], c[2 + 30];
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.temperature = 3.0;
  sc.seed = 11;
  tyr_manual_seed(7);
  tyr_rng_state before = tyr_rng_get_state();
  assert_int_equal(tyr_gpt_generate(&g, prompt, 2, 30, &sc, a), 0);
  tyr_rng_state after = tyr_rng_get_state();
  assert_true(before.seed == after.seed && before.counter == after.counter);
  tyr_tensor_free(tyr_rand_e(3)); /* the global stream moves: the text does not */
  assert_int_equal(tyr_gpt_generate(&g, prompt, 2, 30, &sc, b), 0);
  assert_memory_equal(a, b, sizeof a);
  sc.seed = 12;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 2, 30, &sc, c), 0);
  assert_true(memcmp(a, c, sizeof a) != 0);
  tyr_gpt_free(&g);
}

/* the draws follow softmax(logits / temperature) */
static void test_distribution(void **state) {
  (void)state;
  tyr_gpt g;
  small_gpt(&g);
  int64_t prompt[1] = {2}, out[2];
  double p[V];
  next_probs(&g, prompt, 1, 1.5, p);
  enum { N = 3000 };
  int count[V] = {0};
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.temperature = 1.5;
  for (int i = 0; i < N; i++) {
    sc.seed = (uint64_t)i;
    assert_int_equal(tyr_gpt_generate(&g, prompt, 1, 1, &sc, out), 0);
    count[out[1]]++;
  }
  double chi2 = 0;
  for (int j = 0; j < V; j++) {
    double e = N * p[j];
    if (e > 5) chi2 += (count[j] - e) * (count[j] - e) / e;
  }
  /* 10 degrees of freedom at most: P(chi2 > 35) < 1e-4 */
  if (chi2 > 35) fail_msg("the draws do not follow the softmax: chi2 = %g", chi2);
  tyr_gpt_free(&g);
}

static void test_bad_arguments(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_gpt g;
  small_gpt(&g);
  int64_t prompt[2] = {1, V}, out[8];
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  EXPECT_TYR_ERROR(tyr_gpt_generate(&g, prompt, 2, 3, &sc, out), "prompt[1] = 11");
  EXPECT_TYR_ERROR(tyr_gpt_generate(&g, prompt, 0, 3, &sc, out), "at least one token");
  sc.top_k = -1;
  EXPECT_TYR_ERROR(tyr_gpt_generate(&g, prompt, 1, 3, &sc, out), "top_k");
  sc = tyr_gpt_sample_defaults();
  sc.top_p = 0;
  EXPECT_TYR_ERROR(tyr_gpt_generate(&g, prompt, 1, 3, &sc, out), "top_p");
  sc = tyr_gpt_sample_defaults();
  sc.temperature = -1;
  EXPECT_TYR_ERROR(tyr_gpt_generate(&g, prompt, 1, 3, &sc, out), "temperature");
  tyr_gpt_free(&g);
}

static void test_save_load(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_gpt g, h;
  small_gpt(&g);
  char path[512];
  snprintf(path, sizeof path, "%s/gpt.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_gpt_save(&g, path), 0);
  tyr_manual_seed(3);
  tyr_rng_state before = tyr_rng_get_state();
  assert_int_equal(tyr_gpt_load(&h, path, TYR_DEVICE_CPU), 0);
  tyr_rng_state after = tyr_rng_get_state();
  assert_true(before.seed == after.seed && before.counter == after.counter);
  assert_true(h.cfg.norm_eps == 1e-3);
  assert_int_equal(h.cfg.vocab_size, V);
  int64_t prompt[2] = {1, 2}, a[10], b[10];
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.seed = 9;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 2, 8, &sc, a), 0);
  assert_int_equal(tyr_gpt_generate(&h, prompt, 2, 8, &sc, b), 0);
  assert_memory_equal(a, b, sizeof a);

  /* tyr_checkpoint_load_weights leaves the RNG alone as well */
  tyr_checkpoint *ck = tyr_checkpoint_open(path);
  assert_non_null(ck);
  tyr_manual_seed(4);
  before = tyr_rng_get_state();
  assert_int_equal(tyr_checkpoint_load_weights(ck, &h.params), 0);
  after = tyr_rng_get_state();
  assert_true(before.seed == after.seed && before.counter == after.counter);
  tyr_checkpoint_close(ck);
  tyr_gpt_free(&h);

  /* a file without the config */
  char bare[600];
  snprintf(bare, sizeof bare, "%s/bare.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_checkpoint_save(bare, &g.params, NULL, NULL), 0);
  EXPECT_TYR_ERROR(tyr_gpt_load(&h, bare, TYR_DEVICE_CPU), "tyr.gpt.config");
  tyr_gpt_free(&g);
}

static void test_config_json(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_gpt_config c = tyr_gpt_config_gpt2(50, 16, 3, 4, 32), d;
  c.rope = true;
  c.learned_pos = false;
  c.norm = TYR_NORM_RMS;
  c.act = TYR_ACT_RELU2;
  c.norm_eps = 1e-6;
  c.compute_dtype = TYR_BF16;
  c.n_kv_head = 2;
  char buf[1024];
  assert_true(tyr_gpt_config_to_json(&c, buf, sizeof buf) > 0);
  assert_int_equal(tyr_gpt_config_from_json(buf, "test", &d), 0);
  assert_memory_equal(&c, &d, sizeof c);
  EXPECT_TYR_ERROR(tyr_gpt_config_to_json(&c, buf, 20), "too small");
  EXPECT_TYR_ERROR(tyr_gpt_config_from_json("{\"vocab_size\": 5, \"n_layers\": 2}", "f.st", &d),
                   "unknown GPT config field \"n_layers\"");
  EXPECT_TYR_ERROR(tyr_gpt_config_from_json("{\"bias\": 1}", "f.st", &d), "\"bias\" must be true");
  EXPECT_TYR_ERROR(tyr_gpt_config_from_json("{\"norm\": \"batch\"}", "f.st", &d), "\"norm\"");
  EXPECT_TYR_ERROR(tyr_gpt_config_from_json("{\"n_head\": 3, \"n_embd\": 32}", "f.st", &d),
                   "n_head (3) must divide n_embd (32)");
  EXPECT_TYR_ERROR(tyr_gpt_config_from_json("{", "f.st", &d), "not JSON");
}

/* on a GPU: the same greedy text as on the CPU, masks that hold, one text
 * per seed (runs in scripts/gpu-suite.sh; skipped without a GPU) */
static void test_generate_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  tyr_gpt g, h;
  small_gpt(&g);
  char path[512];
  snprintf(path, sizeof path, "%s/gpt_cuda.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_gpt_save(&g, path), 0);
  assert_int_equal(tyr_gpt_load(&h, path, TYR_DEVICE_CUDA(0)), 0);
  int64_t prompt[3] = {1, 2, 3}, a[3 + 16], b[3 + 16], c[3 + 16];
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.temperature = 0;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 3, 16, &sc, a), 0);
  assert_int_equal(tyr_gpt_generate(&h, prompt, 3, 16, &sc, b), 0);
  assert_memory_equal(a, b, sizeof a);
  sc = tyr_gpt_sample_defaults();
  sc.temperature = 2.0;
  sc.top_k = 3;
  sc.seed = 5;
  assert_int_equal(tyr_gpt_generate(&h, prompt, 3, 16, &sc, b), 0);
  assert_int_equal(tyr_gpt_generate(&h, prompt, 3, 16, &sc, c), 0);
  assert_memory_equal(b, c, sizeof b);
  double p[V];
  for (int k = 3; k < 19; k++) {
    next_probs(&g, b, k, 2.0, p);
    assert_true(rank_of(p, (int)b[k]) < 3);
  }
  tyr_gpt_free(&h);
  tyr_gpt_free(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_greedy_and_masks), TYR_TEST(test_seeds_and_rng), TYR_TEST(test_distribution),
      TYR_TEST(test_bad_arguments),    TYR_TEST(test_save_load),     TYR_TEST(test_config_json),
      TYR_TEST(test_generate_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
