/* Batched KV-cache inference for tyr_gpt (tyr/models/gpt_engine.h).  The
 * blocks are tyr_gpt_hidden's, with the attention reading the keys and
 * values of earlier positions from the cache; sampling runs on the host
 * over the last position's logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/models/gpt_engine.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_gpt_engine";

static tyr_tensor *cast_to(tyr_site s, tyr_tensor *t, tyr_dtype dt) {
  return t && t->dtype != dt ? tyr_to_dtype_at(s, t, dt) : t;
}

int tyr_gpt_engine_init_at(tyr_site s, tyr_gpt_engine *e, tyr_gpt *g, int64_t batch,
                           int64_t max_len) {
  memset(e, 0, sizeof *e);
  if (!g) return tyr_raise(TYR_ERR_ARG, s, OP, "the model is NULL");
  if (batch < 1)
    return tyr_raise(TYR_ERR_ARG, s, OP, "batch must be >= 1, got %lld", (long long)batch);
  if (max_len < 1 || max_len > g->cfg.block_size)
    return tyr_raise(TYR_ERR_ARG, s, OP, "max_len must be in [1, block_size = %lld], got %lld",
                     (long long)g->cfg.block_size, (long long)max_len);
  const tyr_gpt_config *c = &g->cfg;
  e->g = g;
  e->batch = batch;
  e->max_len = max_len;
  e->k = calloc((size_t)c->n_layer, sizeof *e->k);
  e->v = calloc((size_t)c->n_layer, sizeof *e->v);
  if (!e->k || !e->v) {
    tyr_gpt_engine_free(e);
    return tyr_raise(TYR_ERR_MEMORY, s, OP, "out of host memory");
  }
  int64_t shape[4] = {batch, c->n_kv_head, max_len, c->n_embd / c->n_head};
  tyr_dtype dt = tyr_gpt_compute_dtype(g);
  for (int64_t l = 0; l < c->n_layer; l++) {
    e->k[l] = tyr_zeros_at(s, dt, g->device, 4, shape);
    e->v[l] = tyr_zeros_at(s, dt, g->device, 4, shape);
    if (!e->k[l] || !e->v[l]) {
      tyr_gpt_engine_free(e);
      return TYR_ERR_MEMORY;
    }
    tyr_keep_e(e->k[l]);
    tyr_keep_e(e->v[l]);
  }
  return 0;
}

void tyr_gpt_engine_free(tyr_gpt_engine *e) {
  if (e->g)
    for (int64_t l = 0; l < e->g->cfg.n_layer; l++) {
      if (e->k) tyr_tensor_free(e->k[l]);
      if (e->v) tyr_tensor_free(e->v[l]);
    }
  free(e->k);
  free(e->v);
  memset(e, 0, sizeof *e);
}

void tyr_gpt_engine_reset(tyr_gpt_engine *e) {
  e->len = 0;
}

/* writes src [b, H, T, D] at positions pos.. of every row of cache (b is
   the batch, or 1: copied to every row) */
static int cache_put(tyr_site s, tyr_tensor *cache, tyr_tensor *src, int64_t pos) {
  int64_t T = src->shape[2];
  tyr_tensor *dst = tyr_narrow_at(s, cache, 2, pos, T);
  if (!dst) return TYR_ERR_ARG;
  if (src->shape[0] != cache->shape[0]) src = tyr_expand_at(s, src, 4, dst->shape);
  return src ? tyr_copy_at(s, dst, src) : TYR_ERR_ARG;
}

/* the attention of block l over the cache; x [b, T, C] (normed) */
static tyr_tensor *attend(tyr_site s, tyr_gpt_engine *e, int64_t l, const tyr_nn_attention *m,
                          tyr_tensor *x, tyr_tensor *rcos, tyr_tensor *rsin) {
  const tyr_nn_attention_config *c = &m->cfg;
  int64_t b = x->shape[0], T = x->shape[1];
  tyr_tensor *q, *k, *v;
  if (tyr_nn_attention_project_at(s, m, x, rcos, rsin, e->len, &q, &k, &v) != 0) return NULL;
  if (cache_put(s, e->k[l], k, e->len) || cache_put(s, e->v[l], v, e->len)) return NULL;
  int64_t S = e->len + T;
  tyr_tensor *kc = tyr_narrow_at(s, e->k[l], 2, 0, S), *vc = tyr_narrow_at(s, e->v[l], 2, 0, S);
  if (b != e->batch) { /* a shared prompt: attend with its own row */
    kc = tyr_narrow_at(s, kc, 0, 0, b);
    vc = tyr_narrow_at(s, vc, 0, 0, b);
  }
  tyr_sdpa_opts opts = {.causal = true, .mask = NULL, .window = c->window, .scale = 0};
  tyr_tensor *y = tyr_sdpa_at(s, q, kc, vc, &opts);
  if (!y) return NULL;
  y = tyr_reshape_at(s, tyr_transpose_at(s, y, 1, 2), 3, (int64_t[]){b, T, c->dim});
  return y ? tyr_nn_linear_forward_at(s, &m->proj, y) : NULL;
}

tyr_tensor *tyr_gpt_engine_forward_at(tyr_site s, tyr_gpt_engine *e, tyr_tensor *idx) {
  if (!e || !e->g || !idx) {
    tyr_raise(TYR_ERR_ARG, s, OP, "%s is NULL", !e || !e->g ? "the engine" : "idx");
    return NULL;
  }
  tyr_gpt *g = e->g;
  const tyr_gpt_config *c = &g->cfg;
  char buf[128];
  if (idx->rank != 2 || (idx->shape[0] != e->batch && !(idx->shape[0] == 1 && e->len == 0)) ||
      idx->shape[1] < 1) {
    tyr_raise(TYR_ERR_SHAPE, s, OP,
              "idx must be [batch = %lld, T] (or [1, T] for a shared prompt), got %s",
              (long long)e->batch, tyr_shape_str(idx->shape, idx->rank, buf, sizeof buf));
    return NULL;
  }
  int64_t b = idx->shape[0], T = idx->shape[1];
  if (e->len + T > e->max_len) {
    tyr_raise(TYR_ERR_ARG, s, OP, "%lld cached + %lld new positions exceed max_len %lld",
              (long long)e->len, (long long)T, (long long)e->max_len);
    return NULL;
  }
  bool grad = tyr_set_grad_enabled(false);
  tyr_dtype dt = tyr_gpt_compute_dtype(g);
  tyr_tensor *x = tyr_gpt_embed_at(s, g, idx, e->len, false), *x0 = x;
  tyr_tensor *rcos = cast_to(s, g->rope_cos, dt), *rsin = cast_to(s, g->rope_sin, dt);
  /* as tyr_gpt_hidden: the residual stream and the norms in the parameters'
     dtype, attention and MLP in the compute dtype */
  for (int64_t l = 0; l < c->n_layer && x; l++) {
    tyr_gpt_block blk = tyr_gpt_block_as(s, &g->blocks[l], dt);
    x = tyr_gpt_mix_at(s, g, l, x, x0);
    tyr_tensor *h = x ? tyr_nn_norm_forward_to_at(s, &blk.ln1, x, dt) : NULL;
    tyr_tensor *a = h ? attend(s, e, l, &blk.attn, h, rcos, rsin) : NULL;
    x = a ? tyr_residual_add_at(s, x, a) : NULL;
    h = x ? tyr_nn_norm_forward_to_at(s, &blk.ln2, x, dt) : NULL;
    tyr_tensor *m = h ? tyr_nn_mlp_forward_at(s, &blk.mlp, h) : NULL;
    x = m ? tyr_residual_add_at(s, x, m) : NULL;
  }
  if (x) x = tyr_nn_norm_forward_to_at(s, &g->ln_f, x, dt);
  if (x && b != e->batch) x = tyr_expand_at(s, x, 3, (int64_t[]){e->batch, T, c->n_embd});
  if (x) e->len += T;
  tyr_set_grad_enabled(grad);
  return x;
}

tyr_tensor *tyr_gpt_head_at(tyr_site s, tyr_gpt *g, tyr_tensor *h) {
  if (!h) return NULL;
  tyr_tensor *logits = tyr_linear_at(s, h, cast_to(s, g->lm_head.weight, h->dtype), NULL);
  if (logits && g->cfg.logit_softcap > 0) logits = tyr_softcap_at(s, logits, g->cfg.logit_softcap);
  return logits;
}

tyr_gpt_engine_sample tyr_gpt_engine_sample_defaults(void) {
  return (tyr_gpt_engine_sample){.temperature = 1.0, .top_p = 1.0};
}

/* ---- sampling on the host ---------------------------------------------------- */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* a uniform in [0, 1) from the stream (seed, row), draw k */
static double uniform(uint64_t seed, int64_t row, int64_t k) {
  uint64_t z = mix64(seed * 0x9E3779B97F4A7C15ull + mix64((uint64_t)row + 1) +
                     (uint64_t)k * 0xD1B54A32D192ED03ull);
  return (double)(z >> 11) * 0x1.0p-53;
}

typedef struct scored {
  float logit;
  int32_t id;
} scored;

static int by_logit_desc(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
  return x->id - y->id;
}

/* draws from one row of logits l[V]; *logp gets the model's log-probability */
static int64_t draw(const float *l, int64_t V, const tyr_gpt_engine_sample *sc, double u,
                    scored *tmp, double *logp) {
  double mx = -INFINITY, z = 0;
  for (int64_t j = 0; j < V; j++) mx = fmax(mx, l[j]);
  for (int64_t j = 0; j < V; j++) z += exp(l[j] - mx);
  int64_t pick = 0;
  if (sc->temperature == 0 || sc->top_k == 1) {
    for (int64_t j = 1; j < V; j++)
      if (l[j] > l[pick]) pick = j;
  } else {
    for (int64_t j = 0; j < V; j++) tmp[j] = (scored){(float)(l[j] / sc->temperature), (int32_t)j};
    qsort(tmp, (size_t)V, sizeof *tmp, by_logit_desc);
    int64_t n = sc->top_k > 0 && sc->top_k < V ? sc->top_k : V;
    double tm = tmp[0].logit, tz = 0;
    for (int64_t j = 0; j < n; j++) tz += exp(tmp[j].logit - tm);
    if (sc->top_p < 1) {
      double acc = 0;
      for (int64_t j = 0; j < n; j++) {
        acc += exp(tmp[j].logit - tm) / tz;
        if (acc >= sc->top_p) {
          n = j + 1;
          break;
        }
      }
      tz = 0;
      for (int64_t j = 0; j < n; j++) tz += exp(tmp[j].logit - tm);
    }
    double target = u * tz, acc = 0;
    pick = tmp[n - 1].id;
    for (int64_t j = 0; j < n; j++) {
      acc += exp(tmp[j].logit - tm);
      if (acc > target) {
        pick = tmp[j].id;
        break;
      }
    }
  }
  *logp = (double)l[pick] - mx - log(z);
  return pick;
}

int tyr_gpt_engine_generate_at(tyr_site s, tyr_gpt_engine *e, const int64_t *prompt,
                               int64_t n_prompt, int64_t max_new, const tyr_gpt_engine_sample *sc,
                               int64_t *out, int64_t *out_len, double *logp,
                               tyr_tensor **last_hidden) {
  if (last_hidden) *last_hidden = NULL;
  if (!e || !e->g || !prompt || !out || !out_len)
    return tyr_raise(TYR_ERR_ARG, s, OP, "%s is NULL",
                     !e || !e->g ? "the engine"
                     : !prompt   ? "prompt"
                     : !out      ? "out"
                                 : "out_len");
  tyr_gpt_engine_sample c = sc ? *sc : tyr_gpt_engine_sample_defaults();
  int64_t V = e->g->cfg.vocab_size, B = e->batch;
  if (n_prompt < 1 || n_prompt + max_new - 1 > e->max_len)
    return tyr_raise(TYR_ERR_ARG, s, OP,
                     "the prompt (%lld tokens) and %lld new tokens do not fit max_len %lld",
                     (long long)n_prompt, (long long)max_new, (long long)e->max_len);
  if (!(c.temperature >= 0) || !isfinite(c.temperature) || c.top_k < 0 ||
      !(c.top_p > 0 && c.top_p <= 1))
    return tyr_raise(TYR_ERR_ARG, s, OP,
                     "bad sampling parameters: temperature %g (>= 0), top_k %lld (>= 0), "
                     "top_p %g (in (0, 1])",
                     c.temperature, (long long)c.top_k, c.top_p);
  for (int64_t i = 0; i < n_prompt; i++)
    if (prompt[i] < 0 || prompt[i] >= V)
      return tyr_raise(TYR_ERR_ARG, s, OP,
                       "prompt[%lld] = %lld is outside the vocabulary [0, %lld)", (long long)i,
                       (long long)prompt[i], (long long)V);
  float *lg = malloc(sizeof *lg * (size_t)(B * V));
  scored *tmp = malloc(sizeof *tmp * (size_t)V);
  int64_t *tok = malloc(sizeof *tok * (size_t)B);
  bool *done = calloc((size_t)B, sizeof *done);
  if (!lg || !tmp || !tok || !done) {
    free(lg), free(tmp), free(tok), free(done);
    return tyr_raise(TYR_ERR_MEMORY, s, OP, "out of host memory");
  }
  for (int64_t r = 0; r < B; r++) {
    out_len[r] = 0;
    if (logp) logp[r] = 0;
  }
  tyr_gpt_engine_reset(e);
  int st = 0;
  int64_t left = B;
  for (int64_t k = 0; k < max_new && left > 0 && !st; k++) {
    TYR_SCOPE;
    tyr_tensor *h;
    if (k == 0) {
      tyr_tensor *x =
          tyr_from_host_at(s, prompt, TYR_I64, e->g->device, 2, (int64_t[]){1, n_prompt});
      h = x ? tyr_gpt_engine_forward_at(s, e, x) : NULL;
      h = h ? tyr_narrow_at(s, h, 1, n_prompt - 1, 1) : NULL; /* [B, 1, C] */
      if (h && last_hidden) {
        tyr_tensor *lh = tyr_contiguous_at(
            s, tyr_reshape_at(s, tyr_narrow_at(s, h, 0, 0, 1), 2, (int64_t[]){1, h->shape[2]}));
        if (lh) *last_hidden = tyr_keep_e(lh);
      }
    } else {
      tyr_tensor *x = tyr_from_host_at(s, tok, TYR_I64, e->g->device, 2, (int64_t[]){B, 1});
      h = x ? tyr_gpt_engine_forward_at(s, e, x) : NULL;
    }
    tyr_tensor *l = h ? tyr_gpt_head_at(s, e->g, h) : NULL;
    l = l ? tyr_to_device_at(s, tyr_to_dtype_at(s, tyr_contiguous_at(s, l), TYR_F32),
                             TYR_DEVICE_CPU)
          : NULL;
    if (!l || tyr_to_host_at(s, l, lg, sizeof *lg * (size_t)(B * V))) {
      st = TYR_ERR_ARG;
      break;
    }
    for (int64_t r = 0; r < B; r++) {
      if (done[r]) continue; /* keeps feeding its last token; its output is ignored */
      double lp;
      int64_t id = draw(lg + r * V, V, &c, uniform(c.seed, r, k), tmp, &lp);
      tok[r] = id;
      out[r * max_new + out_len[r]++] = id;
      if (logp) logp[r] += lp;
      for (int i = 0; i < c.n_stop && c.stop; i++)
        if (id == c.stop[i]) {
          done[r] = true;
          left--;
          break;
        }
    }
  }
  free(lg), free(tmp), free(tok), free(done);
  if (st && last_hidden && *last_hidden) {
    tyr_tensor_free(*last_hidden);
    *last_hidden = NULL;
  }
  return st;
}
