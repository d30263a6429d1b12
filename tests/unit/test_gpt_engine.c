/* The KV-cache engine (tyr/models/gpt_engine.h): prefill + decode equal to a
 * full forward at every position (nanochat's layout and GPT-2's, shared and
 * per-row prompts), greedy generation equal to tyr_gpt_generate, stop
 * tokens, log-probabilities, seeds, bad arguments; and the GPT's nanochat
 * flags (layer lambdas, zero-initialised projections, weightless norms). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tyr/cuda.h"
#include "tyr/models/gpt.h"
#include "tyr/models/gpt_engine.h"
#include "tyr/tyr.h"

enum { V = 13, BLOCK = 16 };

static tyr_gpt_config nanochat_config(void) {
  tyr_gpt_config c = tyr_gpt_config_gpt2(V, BLOCK, 2, 4, 32);
  c.n_kv_head = 2;
  c.bias = false;
  c.tied_head = false;
  c.learned_pos = false;
  c.rope = true;
  c.qk_norm = true;
  c.norm = TYR_NORM_RMS;
  c.act = TYR_ACT_RELU2;
  c.logit_softcap = 15;
  c.layer_lambdas = true;
  c.norm_no_weight = true;
  c.embed_norm = true;
  return c;
}

/* lambdas away from their init, so that the test sees them */
static void perturb_lambdas(tyr_gpt *g) {
  TYR_NO_GRAD;
  TYR_SCOPE;
  float r[2] = {0.7f, 1.3f}, x0[2] = {0.25f, -0.5f};
  tyr_copy_e(g->resid_lambdas,
             tyr_from_host_at(TYR_SITE, r, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){2}));
  tyr_copy_e(g->x0_lambdas,
             tyr_from_host_at(TYR_SITE, x0, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){2}));
}

/* logits of the full forward of rows ids[B][T] -> host [B, T, V] */
static void full_logits(tyr_gpt *g, const int64_t *ids, int64_t B, int64_t T, float *out) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  tyr_tensor *l = tyr_gpt_forward(g, x, NULL, NULL, false);
  assert_non_null(l);
  assert_int_equal(tyr_to_host_e(l, out, sizeof(float) * (size_t)(B * T * V)), 0);
}

static void check_decode(tyr_gpt *g) {
  enum { B = 3, T = 12, P = 5 };
  int64_t ids[B][T];
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) ids[b][t] = t < P ? (t * 5 + 1) % V : (b * 7 + t * 3) % V;
  static float ref[B * T * V];
  full_logits(g, &ids[0][0], B, T, ref);
  tyr_gpt_engine e;
  assert_int_equal(tyr_gpt_engine_init(&e, g, B, BLOCK), 0);
  double worst = 0;
  {
    TYR_SCOPE;
    /* a shared prompt of P tokens, then one token per row per step */
    tyr_tensor *x =
        tyr_from_host_at(TYR_SITE, ids[0], TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, P});
    tyr_tensor *h = tyr_gpt_engine_forward(&e, x);
    assert_non_null(h);
    assert_int_equal(h->shape[0], B);
    float lg[B * P * V];
    assert_int_equal(tyr_to_host_e(tyr_contiguous_e(tyr_gpt_head(g, h)), lg, sizeof lg), 0);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < P; t++)
        for (int j = 0; j < V; j++)
          worst = fmax(worst, fabs(lg[(b * P + t) * V + j] - ref[(b * T + t) * V + j]));
    for (int t = P; t < T; t++) {
      TYR_SCOPE;
      int64_t col[B];
      for (int b = 0; b < B; b++) col[b] = ids[b][t];
      tyr_tensor *xt =
          tyr_from_host_at(TYR_SITE, col, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, 1});
      float l1[B * V];
      assert_int_equal(
          tyr_to_host_e(tyr_contiguous_e(tyr_gpt_head(g, tyr_gpt_engine_forward(&e, xt))), l1,
                        sizeof l1),
          0);
      for (int b = 0; b < B; b++)
        for (int j = 0; j < V; j++)
          worst = fmax(worst, fabs(l1[b * V + j] - ref[(b * T + t) * V + j]));
    }
  }
  assert_int_equal(e.len, T);
  /* per-row prompts of the same length in one prefill */
  tyr_gpt_engine_reset(&e);
  {
    TYR_SCOPE;
    int64_t rows[B * 8];
    for (int b = 0; b < B; b++)
      for (int t = 0; t < 8; t++) rows[b * 8 + t] = ids[b][t];
    tyr_tensor *x = tyr_from_host_at(TYR_SITE, rows, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, 8});
    float lg[B * 8 * V];
    assert_int_equal(tyr_to_host_e(tyr_contiguous_e(tyr_gpt_head(g, tyr_gpt_engine_forward(&e, x))),
                                   lg, sizeof lg),
                     0);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < 8; t++)
        for (int j = 0; j < V; j++)
          worst = fmax(worst, fabs(lg[(b * 8 + t) * V + j] - ref[(b * T + t) * V + j]));
  }
  printf("  decode vs full forward: max |diff| %.3g\n", worst);
  assert_true(worst < 1e-4);
  tyr_gpt_engine_free(&e);
}

static void test_decode_equals_forward(void **state) {
  (void)state;
  tyr_gpt g;
  tyr_gpt_config c = nanochat_config();
  tyr_manual_seed(3);
  assert_int_equal(tyr_gpt_init(&g, &c, TYR_DEVICE_CPU), 0);
  perturb_lambdas(&g);
  check_decode(&g);
  tyr_gpt_free(&g);
  c = tyr_gpt_config_gpt2(V, BLOCK, 2, 4, 32); /* learned positions, LayerNorm, packed attention */
  tyr_manual_seed(4);
  assert_int_equal(tyr_gpt_init(&g, &c, TYR_DEVICE_CPU), 0);
  check_decode(&g);
  tyr_gpt_free(&g);
}

static void test_generate(void **state) {
  (void)state;
  tyr_gpt g;
  tyr_gpt_config c = nanochat_config();
  tyr_manual_seed(5);
  assert_int_equal(tyr_gpt_init(&g, &c, TYR_DEVICE_CPU), 0);
  {
    TYR_NO_GRAD;
    TYR_SCOPE;
    tyr_copy_e(g.lm_head.weight, tyr_mul_scalar_e(g.lm_head.weight, 40.0));
  }
  int64_t prompt[4] = {1, 2, 3, 4}, ref[4 + 8];
  tyr_gpt_sample_config gs = tyr_gpt_sample_defaults();
  gs.temperature = 0;
  assert_int_equal(tyr_gpt_generate(&g, prompt, 4, 8, &gs, ref), 0);
  tyr_gpt_engine e;
  assert_int_equal(tyr_gpt_engine_init(&e, &g, 2, BLOCK), 0);
  tyr_gpt_engine_sample sc = tyr_gpt_engine_sample_defaults();
  sc.temperature = 0;
  int64_t out[2 * 8], len[2];
  double lp[2];
  tyr_tensor *hid = NULL;
  assert_int_equal(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, out, len, lp, &hid), 0);
  assert_non_null(hid);
  assert_int_equal(hid->shape[1], 32);
  tyr_tensor_free(hid);
  for (int r = 0; r < 2; r++) {
    assert_int_equal(len[r], 8);
    assert_memory_equal(out + r * 8, ref + 4, 8 * sizeof(int64_t));
    assert_true(lp[r] <= 0);
  }
  /* the log-probability of the greedy continuation, from full forwards */
  double want = 0;
  for (int k = 0; k < 8; k++) {
    static float fl[(4 + 8) * V];
    full_logits(&g, ref, 1, 4 + k, fl);
    const float *l = fl + (3 + k) * V;
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, l[j]);
    for (int j = 0; j < V; j++) z += exp(l[j] - mx);
    want += l[ref[4 + k]] - mx - log(z);
  }
  ASSERT_CLOSE(lp[0], want, 1e-4, 1e-4);
  /* a stop token ends a row; seeds give the same draws */
  int64_t stop = ref[4 + 2];
  sc.stop = &stop;
  sc.n_stop = 1;
  assert_int_equal(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, out, len, NULL, NULL), 0);
  assert_int_equal(len[0], 3);
  assert_int_equal(out[2], stop);
  sc = tyr_gpt_engine_sample_defaults();
  sc.temperature = 1.5;
  sc.top_k = 4;
  sc.top_p = 0.9;
  sc.seed = 11;
  int64_t o2[2 * 8], l2[2];
  assert_int_equal(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, out, len, NULL, NULL), 0);
  assert_int_equal(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, o2, l2, NULL, NULL), 0);
  assert_memory_equal(out, o2, sizeof o2);
  /* bad arguments, named */
  tyr_test_record_errors();
  sc.top_p = 0;
  EXPECT_TYR_ERROR(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, out, len, NULL, NULL), "top_p");
  sc.top_p = 1;
  EXPECT_TYR_ERROR(tyr_gpt_engine_generate(&e, prompt, 4, BLOCK, &sc, out, len, NULL, NULL),
                   "do not fit max_len");
  prompt[1] = V;
  EXPECT_TYR_ERROR(tyr_gpt_engine_generate(&e, prompt, 4, 8, &sc, out, len, NULL, NULL),
                   "outside the vocabulary");
  tyr_gpt_engine_free(&e);
  tyr_gpt_free(&g);
}

static void test_nanochat_flags(void **state) {
  (void)state;
  tyr_gpt g, h;
  tyr_gpt_config c = nanochat_config();
  c.zero_init_proj = true;
  tyr_manual_seed(1);
  assert_int_equal(tyr_gpt_init(&g, &c, TYR_DEVICE_CPU), 0);
  assert_non_null(tyr_params_find(&g.params, "resid_lambdas"));
  assert_non_null(tyr_params_find(&g.params, "x0_lambdas"));
  assert_null(tyr_params_find(&g.params, "blocks.0.ln1.weight"));
  float w[32 * 32];
  assert_int_equal(tyr_to_host_e(g.blocks[1].attn.proj.weight, w, sizeof w), 0);
  for (int i = 0; i < 32 * 32; i++) assert_true(w[i] == 0.0f);
  /* the flags travel in the config JSON and checkpoints */
  char js[2048];
  assert_true(tyr_gpt_config_to_json(&c, js, sizeof js) > 0);
  assert_non_null(strstr(js, "\"layer_lambdas\":true"));
  tyr_gpt_config back;
  assert_int_equal(tyr_gpt_config_from_json(js, "test", &back), 0);
  assert_true(back.layer_lambdas && back.zero_init_proj && back.norm_no_weight && back.embed_norm);
  char path[512];
  snprintf(path, sizeof path, "%s/nanochat.safetensors", tyr_test_tmpdir());
  perturb_lambdas(&g);
  assert_int_equal(tyr_gpt_save(&g, path), 0);
  assert_int_equal(tyr_gpt_load(&h, path, TYR_DEVICE_CPU), 0);
  float a[2], b[2];
  assert_int_equal(tyr_to_host_e(h.x0_lambdas, a, sizeof a), 0);
  assert_int_equal(tyr_to_host_e(g.x0_lambdas, b, sizeof b), 0);
  assert_memory_equal(a, b, sizeof a);
  /* GPT-2 configs keep their JSON */
  tyr_gpt_config c2 = tyr_gpt_config_gpt2(V, BLOCK, 1, 2, 16);
  assert_true(tyr_gpt_config_to_json(&c2, js, sizeof js) > 0);
  assert_null(strstr(js, "lambdas"));
  /* the lambdas get gradients */
  {
    TYR_SCOPE;
    int64_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, tg[8] = {2, 3, 4, 5, 6, 7, 8, 9};
    tyr_params_zero_grad(&h.params);
    tyr_tensor *loss = tyr_gpt_loss(
        &h, tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 8}),
        tyr_from_host_at(TYR_SITE, tg, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){1, 8}), true);
    assert_int_equal(tyr_backward_e(loss), 0);
    assert_non_null(h.x0_lambdas->grad);
  }
  tyr_gpt_free(&h);
  tyr_gpt_free(&g);
}

/* the engine on the GPU: decode equal to the CPU's full forward, greedy
 * generation equal to the CPU engine's (runs in scripts/gpu-suite.sh;
 * skipped without a GPU) */
static void test_engine_cuda(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  tyr_gpt g, h;
  tyr_gpt_config c = nanochat_config();
  tyr_manual_seed(3);
  assert_int_equal(tyr_gpt_init(&g, &c, TYR_DEVICE_CPU), 0);
  perturb_lambdas(&g);
  char path[512];
  snprintf(path, sizeof path, "%s/engine_cuda.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_gpt_save(&g, path), 0);
  assert_int_equal(tyr_gpt_load(&h, path, TYR_DEVICE_CUDA(0)), 0);
  enum { T = 12 };
  int64_t ids[T];
  for (int t = 0; t < T; t++) ids[t] = (t * 5 + 2) % V;
  static float ref[T * V];
  full_logits(&g, ids, 1, T, ref);
  tyr_gpt_engine e;
  assert_int_equal(tyr_gpt_engine_init(&e, &h, 1, BLOCK), 0);
  double worst = 0;
  for (int t = 0; t < T; t++) {
    TYR_SCOPE;
    tyr_tensor *x =
        tyr_from_host_at(TYR_SITE, ids + t, TYR_I64, TYR_DEVICE_CUDA(0), 2, (int64_t[]){1, 1});
    tyr_tensor *l = tyr_to_device_e(
        tyr_contiguous_e(tyr_gpt_head(&h, tyr_gpt_engine_forward(&e, x))), TYR_DEVICE_CPU);
    float lt[V];
    assert_int_equal(tyr_to_host_e(l, lt, sizeof lt), 0);
    for (int j = 0; j < V; j++) worst = fmax(worst, fabs(lt[j] - ref[t * V + j]));
  }
  printf("  CUDA decode vs CPU full forward: max |diff| %.3g\n", worst);
  assert_true(worst < 1e-3);
  tyr_gpt_engine_free(&e);
  tyr_gpt_engine a, b;
  assert_int_equal(tyr_gpt_engine_init(&a, &g, 4, BLOCK), 0);
  assert_int_equal(tyr_gpt_engine_init(&b, &h, 4, BLOCK), 0);
  tyr_gpt_engine_sample sc = tyr_gpt_engine_sample_defaults();
  sc.temperature = 0;
  int64_t oa[4 * 6], ob[4 * 6], la[4], lb[4];
  assert_int_equal(tyr_gpt_engine_generate(&a, ids, 4, 6, &sc, oa, la, NULL, NULL), 0);
  assert_int_equal(tyr_gpt_engine_generate(&b, ids, 4, 6, &sc, ob, lb, NULL, NULL), 0);
  assert_memory_equal(oa, ob, sizeof oa);
  tyr_gpt_engine_free(&a);
  tyr_gpt_engine_free(&b);
  tyr_gpt_free(&h);
  tyr_gpt_free(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_decode_equals_forward),
      TYR_TEST(test_generate),
      TYR_TEST(test_nanochat_flags),
      TYR_TEST(test_engine_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
