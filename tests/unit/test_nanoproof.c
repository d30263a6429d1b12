/* NanoProof's model (tyr/models/nanoproof.h): the value bins and their
 * expectation by hand, the value head and the combined loss against a
 * computation on the host, gradients reaching the value head, the special
 * tokens, and checkpoints that refuse another config. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/models/nanoproof.h"
#include "tyr/tyr.h"

static void test_bins(void **state) {
  (void)state;
  assert_int_equal(tyr_nanoproof_value_bin(0.0), 0);
  assert_int_equal(tyr_nanoproof_value_bin(-1.0), 0);
  assert_int_equal(tyr_nanoproof_value_bin(0.5), 32);
  assert_int_equal(tyr_nanoproof_value_bin(0.999), 63);
  assert_int_equal(tyr_nanoproof_value_bin(1.0), 63);
  assert_int_equal(tyr_nanoproof_value_bin(1.0 / 64), 1);
  float l[TYR_NANOPROOF_BINS] = {0};
  ASSERT_CLOSE(tyr_nanoproof_value_expect(l, NULL), 0.5, 1e-12, 0);
  /* all the mass on bin 10: (10 + 0.5) / 64 */
  l[10] = 100;
  ASSERT_CLOSE(tyr_nanoproof_value_expect(l, NULL), 10.5 / 64, 1e-12, 0);
  /* two bins, logits log 1 and log 3: 1/4 and 3/4 */
  memset(l, 0, sizeof l);
  for (int b = 0; b < TYR_NANOPROOF_BINS; b++) l[b] = -1000;
  l[0] = 0, l[63] = (float)log(3.0);
  double p[TYR_NANOPROOF_BINS];
  ASSERT_CLOSE(tyr_nanoproof_value_expect(l, p), 0.25 * 0.5 / 64 + 0.75 * 63.5 / 64, 1e-6, 0);
  ASSERT_CLOSE(p[63], 0.75, 1e-6, 0);
  int n;
  const char *const *sp = tyr_nanoproof_special_tokens(&n);
  assert_true(n > 150);
  assert_string_equal(sp[1], "<|bos|>");
  bool has_bin = false, has_value = false;
  for (int i = 0; i < n; i++) {
    has_bin |= !strcmp(sp[i], "<|bin_63|>");
    has_value |= !strcmp(sp[i], TYR_NANOPROOF_VALUE_TOKEN);
    for (int j = 0; j < i; j++) assert_true(strcmp(sp[i], sp[j]) != 0);
  }
  assert_true(has_bin && has_value);
}

/* the loss's parts against host arithmetic on the same weights */
static void test_loss_by_hand(void **state) {
  (void)state;
  tyr_nanoproof_config c;
  assert_true(tyr_nanoproof_config_preset("tiny", 40, &c));
  assert_int_equal(c.gpt.vocab_size, 64);
  c.gpt.block_size = 16;
  c.value_weight = 0.5;
  tyr_nanoproof m;
  tyr_manual_seed(9);
  assert_int_equal(tyr_nanoproof_init(&m, &c, TYR_DEVICE_CPU), 0);
  enum { B = 2, T = 6, E = 64, H = 256, NB = TYR_NANOPROOF_BINS, V = 64 };
  {
    TYR_NO_GRAD;
    TYR_SCOPE; /* a non-zero value projection, so that the bins differ */
    tyr_tensor *w = m.value_proj.weight;
    tyr_copy_e(w, tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, w->shape, 0.0, 0.3));
  }
  int64_t ids[B * T] = {1, 5, 9, 3, 7, 2, 4, 4, 8, 12, 6, 1};
  int64_t tg[B * T] = {-1, -1, 3, 7, 2, -1, -1, -1, -1, 6, 1, 9};
  int64_t pos[B] = {2, 3}, bin[B] = {40, 7};
  TYR_SCOPE;
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  tyr_tensor *t = tyr_from_host_at(TYR_SITE, tg, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  tyr_tensor *vp = tyr_from_host_at(TYR_SITE, pos, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){B});
  tyr_tensor *vb = tyr_from_host_at(TYR_SITE, bin, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){B});
  tyr_tensor *pl = NULL, *vl = NULL;
  tyr_tensor *loss = tyr_nanoproof_loss(&m, x, t, vp, vb, true, &pl, &vl);
  assert_non_null(loss);
  float lv, pv, vv;
  tyr_to_host_e(loss, &lv, sizeof lv);
  tyr_to_host_e(pl, &pv, sizeof pv);
  tyr_to_host_e(vl, &vv, sizeof vv);
  ASSERT_CLOSE(lv, pv + 0.5 * vv, 1e-5, 1e-5);
  /* by hand: hidden states, policy CE over the 7 targets, value head */
  static float h[B * T * E], logits[B * T * V], w1[H * E], w2[NB * H];
  {
    TYR_NO_GRAD;
    TYR_SCOPE;
    tyr_to_host_e(tyr_gpt_hidden_at(TYR_SITE, &m.gpt, x, false), h, sizeof h);
    tyr_to_host_e(tyr_gpt_forward(&m.gpt, x, NULL, NULL, false), logits, sizeof logits);
  }
  tyr_to_host_e(m.value_fc.weight, w1, sizeof w1);
  tyr_to_host_e(m.value_proj.weight, w2, sizeof w2);
  double ce = 0;
  int cnt = 0;
  for (int i = 0; i < B * T; i++) {
    if (tg[i] < 0) continue;
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, logits[i * V + j]);
    for (int j = 0; j < V; j++) z += exp(logits[i * V + j] - mx);
    ce += log(z) + mx - logits[i * V + tg[i]];
    cnt++;
  }
  ASSERT_CLOSE(pv, ce / cnt, 1e-4, 1e-4);
  double vce = 0;
  for (int b = 0; b < B; b++) {
    const float *hv = h + (b * T + pos[b]) * E;
    static double a[H];
    for (int k = 0; k < H; k++) {
      double acc = 0;
      for (int e = 0; e < E; e++) acc += (double)w1[k * E + e] * hv[e];
      a[k] = acc > 0 ? acc * acc : 0; /* ReLU² */
    }
    float vlog[NB];
    for (int o = 0; o < NB; o++) {
      double acc = 0;
      for (int k = 0; k < H; k++) acc += (double)w2[o * H + k] * a[k];
      vlog[o] = (float)acc;
    }
    double pr[NB];
    tyr_nanoproof_value_expect(vlog, pr);
    vce += -log(pr[bin[b]]);
  }
  ASSERT_CLOSE(vv, vce / B, 1e-4, 1e-4);
  /* the gradient reaches the value head, the lambdas and the embedding */
  tyr_params_zero_grad(&m.gpt.params);
  assert_int_equal(tyr_backward_e(loss), 0);
  assert_non_null(m.value_fc.weight->grad);
  assert_non_null(m.value_proj.weight->grad);
  assert_non_null(m.gpt.x0_lambdas->grad);
  /* a row without a value target (-1) leaves only the others' */
  int64_t bin2[B] = {-1, 7};
  tyr_tensor *vb2 = tyr_from_host_at(TYR_SITE, bin2, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){B});
  tyr_tensor *vl2 = NULL;
  assert_non_null(tyr_nanoproof_loss(&m, x, t, vp, vb2, false, NULL, &vl2));
  float v2;
  tyr_to_host_e(vl2, &v2, sizeof v2);
  assert_true(isfinite(v2) && v2 > 0);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_nanoproof_loss(&m, x, t, vb, t, false, NULL, NULL), "tyr_nanoproof_loss");
  tyr_nanoproof_free(&m);
}

static void test_checkpoint(void **state) {
  (void)state;
  tyr_nanoproof_config c, other;
  assert_true(tyr_nanoproof_config_preset("tiny", 100, &c));
  assert_true(tyr_nanoproof_config_preset("small", 100, &other));
  assert_false(tyr_nanoproof_config_preset("huge", 100, &other));
  tyr_nanoproof m, r;
  tyr_manual_seed(2);
  assert_int_equal(tyr_nanoproof_init(&m, &c, TYR_DEVICE_CPU), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/np.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_nanoproof_save(&m, path), 0);
  assert_int_equal(tyr_nanoproof_load(&r, path, TYR_DEVICE_CPU, &c), 0);
  assert_int_equal(r.gpt.cfg.n_layer, 2);
  assert_true(r.gpt.cfg.layer_lambdas);
  float a[64], b[64];
  TYR_SCOPE;
  tyr_to_host_e(tyr_narrow_e(m.value_fc.weight, 0, 0, 1), a, sizeof a);
  tyr_to_host_e(tyr_narrow_e(r.value_fc.weight, 0, 0, 1), b, sizeof b);
  assert_memory_equal(a, b, sizeof a);
  tyr_nanoproof_free(&r);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_nanoproof_load(&r, path, TYR_DEVICE_CPU, &other),
                   "another config: its n_layer is 2, the run asks 4");
  EXPECT_TYR_ERROR(tyr_nanoproof_load(&r, "/nonexistent/np.safetensors", TYR_DEVICE_CPU, NULL),
                   "np.safetensors");
  tyr_nanoproof_free(&m);
}

/* finite differences (f64) of the combined loss with respect to the value
 * head's first layer and the per-layer lambdas */
typedef struct fd_ctx {
  tyr_nanoproof *m;
  tyr_tensor *x, *t, *vp, *vb;
} fd_ctx;

static tyr_tensor *call_loss(tyr_tensor **in, void *vctx) {
  fd_ctx *c = vctx;
  tyr_tensor *w = c->m->value_fc.weight, *r = c->m->gpt.resid_lambdas, *z = c->m->gpt.x0_lambdas;
  c->m->value_fc.weight = in[0], c->m->gpt.resid_lambdas = in[1], c->m->gpt.x0_lambdas = in[2];
  tyr_tensor *l = tyr_nanoproof_loss(c->m, c->x, c->t, c->vp, c->vb, false, NULL, NULL);
  c->m->value_fc.weight = w, c->m->gpt.resid_lambdas = r, c->m->gpt.x0_lambdas = z;
  return l;
}

static void test_gradcheck(void **state) {
  (void)state;
  tyr_dtype prev = tyr_default_dtype();
  tyr_set_default_dtype(TYR_F64);
  tyr_nanoproof_config c;
  assert_true(tyr_nanoproof_config_preset("tiny", 24, &c));
  c.gpt.n_embd = 16, c.gpt.n_head = 2, c.gpt.n_kv_head = 1, c.gpt.block_size = 8;
  c.value_weight = 0.7;
  tyr_nanoproof m;
  tyr_manual_seed(4);
  assert_int_equal(tyr_nanoproof_init(&m, &c, TYR_DEVICE_CPU), 0);
  {
    TYR_NO_GRAD;
    TYR_SCOPE; /* non-zero projections, so that every path carries a gradient */
    for (int l = 0; l < 2; l++) {
      tyr_tensor *ws[2] = {m.gpt.blocks[l].attn.proj.weight, m.gpt.blocks[l].mlp.proj.weight};
      for (int k = 0; k < 2; k++)
        tyr_copy_e(ws[k], tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, ws[k]->shape, 0, 0.3));
    }
    tyr_tensor *w = m.value_proj.weight;
    tyr_copy_e(w, tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 2, w->shape, 0, 0.3));
  }
  int64_t ids[2 * 5] = {1, 5, 9, 3, 7, 2, 4, 8, 12, 6},
                  tg[2 * 5] = {-1, 3, 7, 2, -1, -1, -1, 6, 1, 9};
  int64_t pos[2] = {1, 2}, bin[2] = {40, 7};
  TYR_SCOPE;
  fd_ctx ctx = {&m, tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 5}),
                tyr_from_host_at(TYR_SITE, tg, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 5}),
                tyr_from_host_at(TYR_SITE, pos, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2}),
                tyr_from_host_at(TYR_SITE, bin, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2})};
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-0.5, 0.5, 64, 16), TYR_TEST_LEAF(0.5, 1.5, 2),
                       TYR_TEST_LEAF(-0.5, 0.5, 2)};
  double err = tyr_gradcheck("nanoproof loss", call_loss, &ctx, 3, in, 1e-6, 1e-5);
  printf("  combined loss vs finite differences: max relative error %.3g\n", err);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  tyr_nanoproof_free(&m);
  tyr_set_default_dtype(prev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_bins),
      TYR_TEST(test_loss_by_hand),
      TYR_TEST(test_checkpoint),
      TYR_TEST(test_gradcheck),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
