/* The masked diffusion LM (tyr/models/diffusion_lm.h) and its sampler
 * (tyr/models/diffusion_lm_sample.h): the mask schedule's statistics, the
 * context never masked, the masked CE and ELBO weights and losses against
 * hand computations, finite-difference gradients of the loss, the commit
 * rules, the live view's rendering, and generation from a saved checkpoint
 * reproducible with a seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/models/diffusion_lm.h"
#include "tyr/models/diffusion_lm_sample.h"
#include "tyr/tyr.h"

/* a small custom config: seq 8, 1 layer, 2 heads of 4, T 4 */
static tyr_dlm_config micro(int64_t context) {
  tyr_dlm_config c;
  tyr_dlm_config_named("tiny", &c);
  snprintf(c.name, sizeof c.name, "custom");
  c.seq_len = 8;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.steps = 4;
  c.context_len = context;
  return c;
}

/* every parameter ~ N(0, std) (the zero-initialised ones too) */
static void randomize(tyr_dlm *m, double std) {
  TYR_NO_GRAD;
  for (int i = 0; i < m->params.n; i++) {
    TYR_SCOPE;
    tyr_tensor *p = m->params.items[i].t;
    tyr_copy_e(p, tyr_randn_at(TYR_SITE, p->dtype, p->device, p->rank, p->shape, 0.0, std));
  }
}

static void test_configs(void **state) {
  (void)state;
  tyr_dlm_config c;
  assert_true(tyr_dlm_config_named("tiny", &c));
  assert_int_equal(c.seq_len, 64);
  assert_int_equal(c.n_layer, 2);
  assert_int_equal(c.n_head, 2);
  assert_int_equal(c.n_embd, 64);
  assert_int_equal(c.steps, 16);
  assert_true(tyr_dlm_config_named("small", &c));
  assert_int_equal(c.seq_len * 1000 + c.n_layer * 100 + c.n_head * 10, 128000 + 400 + 40);
  assert_int_equal(c.n_embd, 256);
  assert_int_equal(c.steps, 64);
  assert_true(tyr_dlm_config_named("full", &c));
  assert_int_equal(c.seq_len, 256);
  assert_int_equal(c.n_embd, 384);
  assert_int_equal(c.steps, 128);
  assert_int_equal(c.context_len, 16);
  assert_false(tyr_dlm_config_named("huge", &c));
  char js[512];
  tyr_dlm_config_json(&c, js, sizeof js);
  tyr_dlm_config back;
  assert_true(tyr_dlm_config_from_json(js, &back));
  assert_memory_equal(&back, &c, sizeof c);
  assert_false(tyr_dlm_config_from_json("{\"name\":\"x\"}", &back));
  c.n_head = 5;
  EXPECT_TYR_ERROR(tyr_dlm_config_check(&c), "n_head");
  c.n_head = 6;
  c.context_len = 256;
  EXPECT_TYR_ERROR(tyr_dlm_config_check(&c), "context_len");
}

/* For each t the masked count is Binomial(n_t (S - ctx), p_t): within five
 * standard deviations; t itself is uniform within five deviations; context
 * positions are never masked; masked cells hold 0, the others x0. */
static void test_mask_schedule(void **state) {
  (void)state;
  tyr_dlm_config c;
  tyr_dlm_config_named("full", &c); /* S 256, T 128, context 16 */
  c.steps = 16;
  const int64_t B = 4000, S = c.seq_len, T = c.steps, ctx = c.context_len;
  int64_t *x0 = malloc(sizeof(int64_t) * (size_t)(B * S)),
          *xt = malloc(sizeof(int64_t) * (size_t)(B * S));
  int64_t *t = malloc(sizeof(int64_t) * (size_t)B);
  uint8_t *masked = malloc((size_t)(B * S));
  for (int64_t i = 0; i < B * S; i++) x0[i] = 1 + i % 127;
  uint64_t counter = 0;
  tyr_dlm_noise(&c, B, x0, 42, &counter, xt, t, masked);
  assert_int_equal(counter, (uint64_t)(B * (1 + (S + 3) / 4)));
  int64_t nt[64] = {0}, cnt[64] = {0};
  for (int64_t b = 0; b < B; b++) {
    assert_true(t[b] >= 0 && t[b] < T);
    nt[t[b]]++;
    for (int64_t i = 0; i < S; i++) {
      int64_t k = b * S + i;
      if (i < ctx) assert_int_equal(masked[k], 0); /* the context is never masked */
      assert_int_equal(xt[k], masked[k] ? TYR_DLM_MASK : x0[k]);
      cnt[t[b]] += masked[k];
    }
  }
  for (int64_t s = 0; s < T; s++) {
    double p = tyr_dlm_mask_prob(&c, s);
    ASSERT_CLOSE(p, (double)(s + 1) / (double)T, 1e-15, 0);
    double n = (double)nt[s] * (double)(S - ctx), mean = n * p, sd = sqrt(n * p * (1 - p));
    if (fabs((double)cnt[s] - mean) > 5 * sd + 1e-9)
      fail_msg("t=%lld: %lld masked of %.0f, expected %.1f +- 5 * %.1f", (long long)s,
               (long long)cnt[s], n, mean, sd);
    double pt = 1.0 / (double)T, st = sqrt((double)B * pt * (1 - pt));
    if (fabs((double)nt[s] - (double)B * pt) > 5 * st)
      fail_msg("t=%lld drawn %lld times of %lld", (long long)s, (long long)nt[s], (long long)B);
  }
  assert_int_equal(cnt[T - 1], (int64_t)nt[T - 1] * (S - ctx)); /* p = 1: everything */
  /* one (seed, counter) gives one batch */
  int64_t *xt2 = malloc(sizeof(int64_t) * (size_t)(B * S)), t2[4];
  uint8_t m2[4 * 256];
  uint64_t c2 = 0;
  tyr_dlm_noise(&c, 4, x0, 42, &c2, xt2, t2, m2);
  assert_memory_equal(xt2, xt, sizeof(int64_t) * 4 * (size_t)S);
  free(xt2);
  free(x0);
  free(xt);
  free(t);
  free(masked);
}

/* The weights and both losses against sums written out by hand. */
static void test_loss_weights_by_hand(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_set_default_dtype(TYR_F64);
  tyr_dlm_config c = micro(2); /* S 8, T 4, context 2 */
  tyr_dlm m;
  tyr_manual_seed(5);
  assert_int_equal(tyr_dlm_init(&m, &c, TYR_DEVICE_CPU), 0);
  randomize(&m, 0.5);
  enum { B = 2, S = 8 };
  int64_t x0[B * S] = {'T', 'o', ' ', 'b', 'e', ',', ' ',  'o',
                       'r', ' ', 'n', 'o', 't', '!', '\n', 'A'};
  int64_t t[B] = {0, 3}; /* p = 1/4 and 1 */
  uint8_t mk[B * S] = {0, 0, 1, 0, 0, 1, 0, 0, /* */ 0, 0, 1, 1, 1, 0, 1, 1};
  int64_t xt[B * S];
  for (int i = 0; i < B * S; i++) xt[i] = mk[i] ? 0 : x0[i];
  float wc[B * S], we[B * S];
  tyr_dlm_loss_weights(&c, TYR_DLM_LOSS_CE, B, t, mk, wc);
  tyr_dlm_loss_weights(&c, TYR_DLM_LOSS_ELBO, B, t, mk, we);
  /* 7 masked cells; ELBO: 1 / (p_t * B * (S - context)) */
  for (int i = 0; i < B * S; i++) {
    ASSERT_CLOSE(wc[i], mk[i] ? 1.0 / 7.0 : 0.0, 1e-7, 0);
    double p = i < S ? 0.25 : 1.0;
    ASSERT_CLOSE(we[i], mk[i] ? 1.0 / (p * 2 * 6) : 0.0, 1e-7, 0);
  }
  tyr_tensor *ids = tyr_from_host_at(TYR_SITE, xt, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, S});
  tyr_tensor *tt = tyr_from_host_at(TYR_SITE, t, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){B});
  tyr_tensor *x0t = tyr_from_host_at(TYR_SITE, x0, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, S});
  double logits[B * S * TYR_DLM_VOCAB];
  tyr_tensor *lg = tyr_dlm_forward(&m, ids, tt);
  assert_int_equal(lg->shape[2], TYR_DLM_VOCAB);
  tyr_to_host_e(lg, logits, sizeof logits);
  double ce = 0, elbo = 0;
  int n = 0;
  for (int i = 0; i < B * S; i++) {
    if (!mk[i]) continue;
    const double *l = logits + i * TYR_DLM_VOCAB;
    double mx = l[0], z = 0;
    for (int j = 1; j < TYR_DLM_VOCAB; j++) mx = fmax(mx, l[j]);
    for (int j = 0; j < TYR_DLM_VOCAB; j++) z += exp(l[j] - mx);
    double nll = log(z) + mx - l[x0[i]];
    ce += nll;
    elbo += nll / (i < S ? 0.25 : 1.0);
    n++;
  }
  ce /= n;
  elbo /= (double)(B * (S - 2));
  double wcd[B * S], wed[B * S];
  for (int i = 0; i < B * S; i++) wcd[i] = wc[i], wed[i] = we[i];
  tyr_tensor *wct = tyr_from_host_at(TYR_SITE, wcd, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){B, S});
  tyr_tensor *wet = tyr_from_host_at(TYR_SITE, wed, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){B, S});
  ASSERT_CLOSE(tyr_item_e(tyr_dlm_loss(&m, ids, tt, x0t, wct)), ce, 1e-6, 1e-6);
  ASSERT_CLOSE(tyr_item_e(tyr_dlm_loss(&m, ids, tt, x0t, wet)), elbo, 1e-6, 1e-6);
  /* nothing masked: CE weights are all zero */
  uint8_t none[B * S] = {0};
  tyr_dlm_loss_weights(&c, TYR_DLM_LOSS_CE, B, t, none, wc);
  for (int i = 0; i < B * S; i++) assert_true(wc[i] == 0.0f);
  /* shapes are checked */
  EXPECT_TYR_ERROR(tyr_dlm_forward(&m, tt, tt), "tyr_dlm_forward");
  tyr_dlm_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

/* Finite differences of the loss against backward, for every parameter. */
typedef struct {
  tyr_dlm *m;
  tyr_tensor *ids, *t, *x0, *w;
} loss_ctx;
static tyr_tensor *call_loss(tyr_tensor **in, void *ctx) {
  (void)in;
  loss_ctx *c = ctx;
  return tyr_dlm_loss(c->m, c->ids, c->t, c->x0, c->w);
}

static void test_loss_gradients(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_set_default_dtype(TYR_F64);
  tyr_dlm_config c = micro(1);
  c.n_embd = 4;
  c.n_head = 1;
  c.seq_len = 4;
  tyr_dlm m;
  tyr_manual_seed(9);
  assert_int_equal(tyr_dlm_init(&m, &c, TYR_DEVICE_CPU), 0);
  randomize(&m, 0.5);
  int64_t x0[8] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}, xt[8], t[2];
  uint8_t mk[8];
  uint64_t counter = 0;
  tyr_dlm_noise(&c, 2, x0, 3, &counter, xt, t, mk);
  mk[1] = 1, xt[1] = 0, mk[6] = 1, xt[6] = 0; /* at least one masked in each */
  float w[8];
  tyr_dlm_loss_weights(&c, TYR_DLM_LOSS_ELBO, 2, t, mk, w);
  double wd[8];
  for (int i = 0; i < 8; i++) wd[i] = w[i];
  loss_ctx lc = {&m, tyr_from_host_at(TYR_SITE, xt, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 4}),
                 tyr_from_host_at(TYR_SITE, t, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){2}),
                 tyr_from_host_at(TYR_SITE, x0, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 4}),
                 tyr_from_host_at(TYR_SITE, wd, TYR_F64, TYR_DEVICE_CPU, 2, (int64_t[]){2, 4})};
  tyr_tensor *in[16];
  int n = 0;
  for (int i = 0; i < m.params.n; i++)
    if (strcmp(m.params.items[i].name, "tok_emb") && strcmp(m.params.items[i].name, "head"))
      in[n++] = m.params.items[i].t;
  tyr_gradcheck("tyr_dlm_loss", call_loss, &lc, n, in, 1e-6, 1e-5);
  tyr_dlm_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

/* top-k commits exactly min(k, masked) a step, threshold every cell at or
 * above tau (at least the best one); committed cells never change. */
static void test_commit_rules(void **state) {
  (void)state;
  enum { S = 37 };
  for (int kind = 0; kind < 2; kind++)
    for (int trial = 0; trial < 20; trial++) {
      tyr_dlm_sample_opts o = tyr_dlm_sample_defaults();
      o.commit = kind ? TYR_DLM_COMMIT_THRESHOLD : TYR_DLM_COMMIT_TOPK;
      o.k = 1 + trial % 7;
      o.tau = 0.2 + 0.04 * trial;
      int64_t ids[S], pred[S], before[S];
      float conf[S], cell[S];
      int64_t masked = 0;
      for (int i = 0; i < S; i++) {
        ids[i] = (i * 7 + trial) % 5 == 0 ? 'x' : TYR_DLM_MASK;
        masked += ids[i] == TYR_DLM_MASK;
      }
      int64_t steps = 0, m0 = masked;
      while (masked > 0) {
        for (int i = 0; i < S; i++) {
          pred[i] = 'a' + (i + steps) % 26;
          conf[i] = tyr_philox_uniform((uint64_t)trial, (uint64_t)(steps * S + i));
        }
        memcpy(before, ids, sizeof ids);
        int64_t n = tyr_dlm_commit(&o, S, ids, pred, conf, cell);
        int64_t got = 0;
        float min_in = 2, max_out = -1;
        for (int i = 0; i < S; i++) {
          if (before[i] != TYR_DLM_MASK) {
            assert_int_equal(ids[i], before[i]); /* committed cells stay */
          } else if (ids[i] != TYR_DLM_MASK) {
            assert_int_equal(ids[i], pred[i]);
            assert_true(cell[i] == conf[i]);
            got++;
            min_in = fminf(min_in, conf[i]);
          } else {
            max_out = fmaxf(max_out, conf[i]);
          }
        }
        assert_int_equal(got, n);
        assert_true(min_in >= max_out); /* the most confident ones */
        if (kind == 0) {
          assert_int_equal(n, masked < o.k ? masked : o.k);
        } else {
          int64_t above = 0;
          for (int i = 0; i < S; i++) above += before[i] == TYR_DLM_MASK && conf[i] >= o.tau;
          assert_int_equal(n, above ? above : 1);
          if (above) assert_true(max_out < o.tau && min_in >= o.tau);
        }
        masked -= n;
        steps++;
      }
      if (kind == 0) assert_int_equal(steps, (m0 + o.k - 1) / o.k);
      assert_int_equal(tyr_dlm_commit(&o, S, ids, pred, conf, cell), 0);
    }
  /* bad options are refused */
  tyr_dlm_config c;
  tyr_dlm_config_named("tiny", &c);
  tyr_dlm_sample_opts o = tyr_dlm_sample_defaults();
  o.k = 0;
  EXPECT_TYR_ERROR(tyr_dlm_sample_opts_check(&o, &c), "k 0");
  o = tyr_dlm_sample_defaults();
  o.commit = TYR_DLM_COMMIT_THRESHOLD;
  o.tau = 0;
  EXPECT_TYR_ERROR(tyr_dlm_sample_opts_check(&o, &c), "tau");
  o.tau = 1.01;
  EXPECT_TYR_ERROR(tyr_dlm_sample_opts_check(&o, &c), "tau");
  o.tau = 1.0;
  assert_int_equal(tyr_dlm_sample_opts_check(&o, &c), 0);
}

/* temperature 0: the arg max (never MASK) with its softmax probability;
 * otherwise draws that follow the tempered distribution */
static void test_predict(void **state) {
  (void)state;
  enum { S = 3, V = TYR_DLM_VOCAB };
  static float logits[S * V];
  for (int i = 0; i < S * V; i++) logits[i] = (float)((i * 37) % 11) * 0.1f;
  logits[0 * V + 0] = 50;   /* MASK is never predicted */
  logits[0 * V + 'q'] = 3;  /* cell 0: q */
  logits[2 * V + 'z'] = 40; /* cell 2: z, confidence ~1 */
  int64_t ids[S] = {0, 'k', 0}, pred[S] = {-1, -1, -1};
  float conf[S] = {0};
  tyr_dlm_predict(logits, S, ids, 0.0, 1, 0, pred, conf);
  assert_int_equal(pred[0], 'q');
  assert_int_equal(pred[1], -1); /* not masked: left alone */
  assert_int_equal(pred[2], 'z');
  double z = 0;
  for (int j = 1; j < V; j++) z += exp(logits[j] - 3.0);
  ASSERT_CLOSE(conf[0], 1.0 / z, 1e-6, 1e-5);
  assert_true(conf[2] > 0.999f);
  /* sampling at temperature 1: the frequency of q near its probability */
  int hits = 0, N = 4000;
  for (int r = 0; r < N; r++) {
    int64_t one[1] = {0}, p1;
    float c1;
    tyr_dlm_predict(logits, 1, one, 1.0, 7, (uint64_t)r, &p1, &c1);
    assert_true(p1 != 0);
    hits += p1 == 'q';
  }
  double pq = 1.0 / z, sd = sqrt(N * pq * (1 - pq));
  assert_true(fabs(hits - N * pq) < 5 * sd);
}

/* The view: plain lines with the step and the masked count; colour frames
 * with escapes, ↵ for newlines, blocks for masked cells, colours by
 * confidence, 80 cells a row, each frame drawn over the last. */
static void test_view_render(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  tyr_dlm_view v;
  tyr_dlm_view_init(&v, f, false, 80, 0);
  int64_t ids[100];
  float conf[100];
  for (int i = 0; i < 100; i++) {
    ids[i] = i < 50 ? (i == 10 ? '\n' : 'a' + i % 26) : TYR_DLM_MASK;
    conf[i] = i < 20 ? 0.9f : i < 40 ? 0.5f : 0.1f;
  }
  tyr_dlm_view_frame(&v, ids, conf, 100, 1, 2, 3, 13, 50);
  fflush(f);
  assert_non_null(strstr(buf, "block 1/2  step 3/13 ["));
  assert_non_null(strstr(buf, "] masked 50\n"));
  assert_null(strchr(buf, '\x1b'));
  fclose(f);
  free(buf);
  buf = NULL;
  f = open_memstream(&buf, &len);
  tyr_dlm_view_init(&v, f, true, 80, 0);
  tyr_dlm_view_frame(&v, ids, conf, 100, 1, 1, 3, 13, 50);
  fflush(f);
  assert_non_null(strstr(buf, "step 3/13"));
  assert_non_null(strstr(buf, "masked 50"));
  assert_non_null(strstr(buf, "\xe2\x86\xb5"));         /* ↵ */
  assert_non_null(strstr(buf, "\x1b[31m\xe2\x96\x88")); /* a red block */
  assert_non_null(strstr(buf, "\x1b[32mabcdefghij"));   /* green characters */
  assert_non_null(strstr(buf, "\x1b[33mu"));            /* yellow from cell 20 */
  assert_int_equal(v.lines, 3);                         /* header + 2 rows of 80 */
  size_t first = len;
  tyr_dlm_view_frame(&v, ids, conf, 100, 1, 1, 4, 13, 46);
  fflush(f);
  assert_non_null(strstr(buf + first, "\r\x1b[3A\x1b[J")); /* over the last frame */
  /* rows hold 80 cells: the first row's last cell is cell 79 (red block) */
  char *row = strstr(buf, "\n") + 1, *eol = strstr(row, "\x1b[0m\n");
  int cells = 0;
  for (char *p = row; p < eol; p++) {
    if (*p == '\x1b') {
      p = strchr(p, 'm');
      continue;
    }
    if (((unsigned char)*p & 0xc0) != 0x80) cells++;
  }
  assert_int_equal(cells, 80);
  fclose(f);
  free(buf);
}

/* A checkpoint written and read back generates the same text for a seed,
 * another text for another seed; the prompt is kept and checked. */
static void test_generate_from_checkpoint(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/dlm.safetensors", tyr_test_tmpdir());
  tyr_dlm_config c;
  tyr_dlm_config_named("tiny", &c);
  tyr_dlm a, b;
  tyr_manual_seed(11);
  assert_int_equal(tyr_dlm_init(&a, &c, TYR_DEVICE_CPU), 0);
  randomize(&a, 0.3);
  char js[512];
  tyr_dlm_config_json(&c, js, sizeof js);
  tyr_checkpoint_info info = {.step = 1,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 1,
                              .keys = {"train_diffusion.config"},
                              .values = {js}};
  assert_int_equal(tyr_checkpoint_save(path, &a.params, NULL, &info), 0);
  tyr_checkpoint *ck = tyr_checkpoint_open(path);
  tyr_dlm_config c2;
  assert_true(tyr_dlm_config_from_json(tyr_checkpoint_meta(ck, "train_diffusion.config"), &c2));
  assert_int_equal(tyr_dlm_init(&b, &c2, TYR_DEVICE_CPU), 0);
  assert_int_equal(tyr_checkpoint_load(ck, &b.params, NULL, NULL), 0);
  tyr_checkpoint_close(ck);
  tyr_dlm_sample_opts o = tyr_dlm_sample_defaults();
  o.seed = 5;
  o.blocks = 2;
  char *t1 = tyr_dlm_generate(&a, &o, "ROMEO:", NULL);
  char *t2 = tyr_dlm_generate(&b, &o, "ROMEO:", NULL);
  o.seed = 6;
  char *t3 = tyr_dlm_generate(&b, &o, "ROMEO:", NULL);
  o.commit = TYR_DLM_COMMIT_THRESHOLD;
  o.tau = 0.5;
  o.temperature = 0;
  char *t4 = tyr_dlm_generate(&b, &o, NULL, NULL);
  assert_non_null(t1);
  assert_string_equal(t1, t2);
  assert_string_not_equal(t1, t3);
  assert_int_equal(strlen(t1), 6 + 64 - 6 + 64 - 32);
  assert_memory_equal(t1, "ROMEO:", 6);
  assert_int_equal(strlen(t4), 64 + 32);
  for (const char *p = t1; *p; p++) assert_true(*p > 0);
  /* a prompt longer than the sequence, a non-ASCII one */
  char longp[100];
  memset(longp, 'a', 99);
  longp[99] = 0;
  EXPECT_TYR_ERROR(tyr_dlm_generate(&b, &o, longp, NULL), "more than the sequence");
  EXPECT_TYR_ERROR(tyr_dlm_generate(&b, &o, "caf\xc3\xa9", NULL), "not ASCII");
  free(t1);
  free(t2);
  free(t3);
  free(t4);
  tyr_dlm_free(&a);
  tyr_dlm_free(&b);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_configs),
      TYR_TEST(test_mask_schedule),
      TYR_TEST(test_loss_weights_by_hand),
      TYR_TEST(test_loss_gradients),
      TYR_TEST(test_commit_rules),
      TYR_TEST(test_predict),
      TYR_TEST(test_view_render),
      TYR_TEST(test_generate_from_checkpoint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
