/* The nanochat GPT (tyr/models/nanochat_gpt.h) on a tiny config in f64:
 * shapes and the initial loss, finite-difference gradients of every kind
 * of parameter with every feature on and each feature alone, document
 * masks (a document packed after another gives the logits it gives alone),
 * windows per call, checkpoints that rebuild the model, a few optimizer
 * steps that lower the loss, and errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "tyr/models/nanochat_gpt.h"

#define CPU TYR_DEVICE_CPU
enum { V = 13, B = 2, T = 7 };

static tyr_nanochat_config tiny(void) {
  tyr_nanochat_config c = tyr_nanochat_config_d12();
  c.vocab_size = V;
  c.n_layer = 4;
  c.n_head = 2;
  c.head_dim = 4;
  c.n_embd = 12; /* what the gates read */
  c.mlp_hidden = 16;
  c.max_seq_len = 16;
  c.no_attn_layer = 2;
  c.zero_init_proj = false; /* every parameter gets a gradient */
  return c;
}

static tyr_tensor *ids(const int32_t *v, int64_t b, int64_t t) {
  return tyr_from_host_at(TYR_SITE, v, TYR_I32, CPU, 2, (int64_t[]){b, t});
}

static const int32_t IDX[B * T] = {1, 5, 3, 9, 10, 0, 2, 7, 7, 4, 12, 1, 8, 3};
static const int32_t TGT[B * T] = {5, 3, 9, 10, 0, 2, 11, 7, 4, 12, 1, 8, 3, 6};
static const int32_t DOC[B * T] = {0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1};

typedef struct {
  tyr_nanochat_gpt *m;
  tyr_nanochat_windows w;
  bool docs;
} ctx_t;

static tyr_tensor *call_loss(tyr_tensor **in, void *p) {
  (void)in; /* the inputs are the model's own parameters */
  ctx_t *c = p;
  return tyr_nanochat_loss_at(TYR_SITE, c->m, ids(IDX, B, T), ids(TGT, B, T),
                              c->docs ? ids(DOC, B, T) : NULL, &c->w);
}

static void test_shapes_and_init(void **state) {
  (void)state;
  tyr_set_default_dtype(TYR_F64);
  tyr_nanochat_config c = tiny();
  c.zero_init_proj = true;
  tyr_nanochat_gpt m;
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  {
    TYR_SCOPE;
    tyr_tensor *loss = NULL;
    tyr_tensor *lg = tyr_nanochat_forward(&m, ids(IDX, B, T), NULL, NULL, ids(TGT, B, T), &loss);
    assert_non_null(lg);
    assert_int_equal(lg->rank, 3);
    assert_int_equal(lg->shape[0], B);
    assert_int_equal(lg->shape[1], T);
    assert_int_equal(lg->shape[2], V);
    /* a zero head: uniform predictions, loss ln V */
    ASSERT_CLOSE(tyr_item_e(loss), log((double)V), 1e-12, 0);
  }
  /* parameters: the layer without attention has none of its own */
  assert_non_null(tyr_params_find(&m.params, "blocks.1.qkv"));
  assert_null(tyr_params_find(&m.params, "blocks.2.qkv"));
  assert_non_null(tyr_params_find(&m.params, "value_embeds.1"));
  assert_null(tyr_params_find(&m.params, "value_embeds.2")); /* 4 layers: two tables */
  assert_non_null(tyr_params_find(&m.params, "skip_weights"));
  assert_int_equal(m.skip_weights->shape[0], 2);
  assert_true(tyr_nanochat_flops_per_token(&m, T, NULL) > 0);
  tyr_nanochat_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

/* gradients against finite differences: of every parameter, or (!all)
 * of the vectors, the gates, the embeddings and layer 0's matrices */
static void gradcheck_config(const char *name, tyr_nanochat_config c, bool docs, int64_t win,
                             bool all) {
  tyr_set_default_dtype(TYR_F64);
  tyr_nanochat_gpt m;
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  /* lambdas and gates away from their initial values, so that every path
     carries a gradient */
  for (int i = 0; i < m.params.n; i++) {
    tyr_tensor *t = m.params.items[i].t;
    if (t->rank == 1 || strstr(m.params.items[i].name, "gate")) {
      double *d = tyr_data_ptr(t);
      for (int64_t k = 0; k < tyr_numel(t); k++) d[k] += 0.3 + 0.1 * (double)k;
    }
  }
  tyr_tensor *in[128];
  int n = 0;
  assert_true(m.params.n <= 128);
  for (int i = 0; i < m.params.n; i++) {
    const char *pn = m.params.items[i].name;
    if (all || m.params.items[i].t->rank == 1 || strstr(pn, "gate") || strstr(pn, "embed") ||
        strstr(pn, "blocks.0."))
      in[n++] = m.params.items[i].t;
  }
  ctx_t cx = {&m, {win, win > 0 ? win / 2 : 0}, docs};
  tyr_gradcheck(name, call_loss, &cx, n, in, 1e-6, 1e-6);
  tyr_nanochat_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

static void test_gradients(void **state) {
  (void)state;
  gradcheck_config("nanochat all features, docs, windows", tiny(), true, 4, true);
  gradcheck_config("nanochat all features, no windows", tiny(), false, 0, false);
  /* each feature alone */
  const char *names[] = {"qk_norm",       "rope_half",  "value_embeds", "unet_skips",
                         "block_lambdas", "smear_gate", "attn_gate"};
  for (int f = 0; f < 7; f++) {
    tyr_nanochat_config c = tiny();
    c.qk_norm = f == 0;
    c.rope_half = f == 1;
    c.value_embeds = f == 2;
    c.unet_skips = f == 3;
    c.block_lambdas = f == 4;
    c.smear_gate = f == 5;
    c.attn_gate = f == 6;
    c.no_attn_layer = -1;
    c.logit_softcap = 0;
    char name[64];
    snprintf(name, sizeof name, "nanochat %s alone", names[f]);
    gradcheck_config(name, c, true, 0, false);
  }
}

/* With document ids and without the smear gate (which mixes the previous
 * token across a boundary), the logits of a document packed after another
 * are those of the document alone: attention is relative in position. */
static void test_documents(void **state) {
  (void)state;
  tyr_set_default_dtype(TYR_F64);
  tyr_nanochat_config c = tiny();
  c.smear_gate = false;
  tyr_nanochat_gpt m;
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  {
    TYR_SCOPE;
    const int32_t packed[10] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3},
                  docs[10] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    tyr_nanochat_windows w = {8, 3};
    tyr_tensor *a = tyr_nanochat_forward(&m, ids(packed, 1, 10), ids(docs, 1, 10), &w, NULL, NULL);
    tyr_tensor *b = tyr_nanochat_forward(&m, ids(packed + 4, 1, 6), NULL, &w, NULL, NULL);
    tyr_tensor *nodoc = tyr_nanochat_forward(&m, ids(packed, 1, 10), NULL, &w, NULL, NULL);
    const double *pa = tyr_data_ptr(a), *pb = tyr_data_ptr(b), *pn = tyr_data_ptr(nodoc);
    for (int64_t i = 0; i < 6 * V; i++) ASSERT_CLOSE(pa[4 * V + i], pb[i], 1e-10, 1e-10);
    double diff = 0; /* without the ids the second document sees the first */
    for (int64_t i = 0; i < 6 * V; i++) diff = fmax(diff, fabs(pn[4 * V + i] - pb[i]));
    assert_true(diff > 1e-6);
    /* the window changes from call to call */
    tyr_nanochat_windows w2 = {2, 1};
    tyr_tensor *d = tyr_nanochat_forward(&m, ids(packed, 1, 10), NULL, &w2, NULL, NULL);
    const double *pd = tyr_data_ptr(d);
    diff = 0;
    for (int64_t i = 0; i < 10 * V; i++) diff = fmax(diff, fabs(pd[i] - pn[i]));
    assert_true(diff > 1e-6);
  }
  tyr_nanochat_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

static void test_checkpoint(void **state) {
  (void)state;
  tyr_nanochat_config c = tiny();
  strcpy(c.window_pattern, "LSNL");
  c.no_attn_layer = -1;
  tyr_nanochat_gpt m, r;
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/nanochat.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_nanochat_save(&m, path), 0);
  assert_int_equal(tyr_nanochat_load(&r, path, CPU), 0);
  assert_string_equal(r.cfg.window_pattern, "LSNL");
  assert_int_equal(r.params.n, m.params.n);
  assert_null(tyr_params_find(&r.params, "blocks.2.qkv"));
  {
    TYR_SCOPE;
    tyr_nanochat_windows w = {4, 2};
    tyr_tensor *a = tyr_nanochat_forward(&m, ids(IDX, B, T), ids(DOC, B, T), &w, NULL, NULL);
    tyr_tensor *b = tyr_nanochat_forward(&r, ids(IDX, B, T), ids(DOC, B, T), &w, NULL, NULL);
    assert_true(tyr_item_e(tyr_sum_e(tyr_abs_e(tyr_sub_e(a, b)))) == 0.0);
  }
  tyr_nanochat_free(&r);
  /* a file without the config, and a missing file */
  snprintf(path, sizeof path, "%s/plain.safetensors", tyr_test_tmpdir());
  assert_int_equal(tyr_checkpoint_save(path, &m.params, NULL, NULL), 0);
  EXPECT_TYR_ERROR(tyr_nanochat_load(&r, path, CPU), "not a nanochat model checkpoint");
  EXPECT_TYR_ERROR(tyr_nanochat_load(&r, "/nonexistent/x.safetensors", CPU), "/nonexistent");
  tyr_nanochat_free(&m);
}

static void test_training_lowers_loss(void **state) {
  (void)state;
  tyr_nanochat_config c = tiny();
  c.zero_init_proj = true;
  tyr_nanochat_gpt m;
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  tyr_optim opt;
  assert_int_equal(tyr_optim_init(&opt, &m.params, tyr_adamw_config(0.01)), 0);
  double first = 0, last = 0;
  for (int step = 0; step < 30; step++) {
    TYR_SCOPE;
    tyr_nanochat_windows w = {4, 2};
    tyr_tensor *loss = tyr_nanochat_loss(&m, ids(IDX, B, T), ids(TGT, B, T), ids(DOC, B, T), &w);
    assert_non_null(loss);
    if (step == 0) first = tyr_item_e(loss);
    last = tyr_item_e(loss);
    assert_int_equal(tyr_backward_e(loss), 0);
    assert_int_equal(tyr_optim_step(&opt, TYR_LR_CONFIGURED), 0);
    tyr_params_zero_grad(&m.params);
  }
  assert_true(last < 0.5 * first);
  tyr_optim_free(&opt);
  tyr_nanochat_free(&m);
}

static void test_errors(void **state) {
  (void)state;
  tyr_nanochat_config c = tiny();
  tyr_nanochat_gpt m;
  c.head_dim = 6; /* not a multiple of 4 with rope_half */
  EXPECT_TYR_ERROR(tyr_nanochat_init(&m, &c, CPU), "head_dim must be even");
  c = tiny();
  strcpy(c.window_pattern, "LSX");
  EXPECT_TYR_ERROR(tyr_nanochat_init(&m, &c, CPU), "must have n_layer (4) characters, not 3");
  strcpy(c.window_pattern, "LSXL");
  EXPECT_TYR_ERROR(tyr_nanochat_init(&m, &c, CPU), "character 2 is 'X', not L, S or N");
  c = tiny();
  c.n_layer = 65;
  EXPECT_TYR_ERROR(tyr_nanochat_init(&m, &c, CPU), "n_layer must be at most 64");
  tyr_nanochat_config out;
  EXPECT_TYR_ERROR(
      tyr_nanochat_config_from_json_at(TYR_SITE, "{\"n_layers\": 3}", "cfg.json", &out),
      "cfg.json: unknown or bad nanochat config field \"n_layers\"");
  EXPECT_TYR_ERROR(tyr_nanochat_config_from_json_at(TYR_SITE, "{\"qk_norm\": 3}", "cfg.json", &out),
                   "field \"qk_norm\" has the wrong type");
  c = tiny();
  assert_int_equal(tyr_nanochat_init(&m, &c, CPU), 0);
  {
    TYR_SCOPE;
    int32_t long_ids[17] = {0};
    EXPECT_TYR_ERROR(tyr_nanochat_forward(&m, ids(long_ids, 1, 17), NULL, NULL, NULL, NULL),
                     "1 <= T <= max_seq_len (16), got i32 [1, 17]");
    EXPECT_TYR_ERROR(tyr_nanochat_forward(&m, ids(IDX, B, T), ids(IDX, 1, T), NULL, NULL, NULL),
                     "doc_ids must be [B, T] like idx [2, 7], got [1, 7]");
    int32_t bad[B * T];
    memcpy(bad, TGT, sizeof bad);
    bad[3] = V; /* a token beyond the vocabulary, as input and as target */
    EXPECT_TYR_ERROR(tyr_nanochat_loss(&m, ids(bad, B, T), ids(TGT, B, T), NULL, NULL),
                     "tyr_embedding: index 13 (at position 3 of idx) is out of range");
    EXPECT_TYR_ERROR(
        tyr_nanochat_loss(&m, ids(IDX, B, T), ids(bad, B, T), NULL, NULL),
        "tyr_linear_cross_entropy_softcap: target 13 at (flat) position 3 is out of range");
  }
  /* the JSON round trip */
  char buf[2048];
  assert_true(tyr_nanochat_config_to_json_at(TYR_SITE, &m.cfg, buf, sizeof buf) > 0);
  assert_int_equal(tyr_nanochat_config_from_json_at(TYR_SITE, buf, "x", &out), 0);
  assert_int_equal(memcmp(&out, &m.cfg, sizeof out), 0);
  /* -0 reads as 0, so that the JSON written back ("0") reads to the same
     config (fuzz_nanochat_config found "-0" read back as the integer 0) */
  tyr_nanochat_config z, back;
  assert_int_equal(tyr_nanochat_config_from_json_at(TYR_SITE, "{\"attn_scale\": -0.0}", "x", &z),
                   0);
  assert_false(signbit(z.attn_scale));
  assert_true(tyr_nanochat_config_to_json_at(TYR_SITE, &z, buf, sizeof buf) > 0);
  assert_int_equal(tyr_nanochat_config_from_json_at(TYR_SITE, buf, "x", &back), 0);
  assert_int_equal(memcmp(&back, &z, sizeof z), 0);
  tyr_nanochat_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_shapes_and_init),
      TYR_TEST(test_gradients),
      TYR_TEST(test_documents),
      TYR_TEST(test_checkpoint),
      TYR_TEST(test_training_lowers_loss),
      TYR_TEST(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
