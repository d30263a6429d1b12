/* The modded-nanogpt speedrun's GPT (tyr/models/nanochat_gpt.h): config,
 * initialisation, forward and loss, FLOPs, checkpoints with the config. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/checkpoint.h"
#include "tyr/models/nanochat_gpt.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_nanochat";
#define GD TYR_NANOCHAT_GATE_DIM

tyr_nanochat_config tyr_nanochat_config_d12(void) {
  tyr_nanochat_config c;
  memset(&c, 0, sizeof c);
  c.vocab_size = TYR_NANOCHAT_VOCAB;
  c.n_layer = TYR_NANOCHAT_LAYERS;
  c.n_head = TYR_NANOCHAT_HEADS;
  c.head_dim = TYR_NANOCHAT_HEAD_DIM;
  c.n_embd = TYR_NANOCHAT_WIDTH;
  c.mlp_hidden = 4 * TYR_NANOCHAT_WIDTH;
  c.max_seq_len = 2048;
  c.no_attn_layer = 7;
  c.qk_norm = c.rope_half = c.value_embeds = c.unet_skips = c.block_lambdas = true;
  c.smear_gate = c.attn_gate = c.zero_init_proj = true;
  c.rope_base = 10000;
  c.logit_softcap = 15;
  c.attn_scale = 0.12;
  c.norm_eps = 1e-6;
  return c;
}

tyr_nanochat_config tyr_nanochat_config_debug(void) {
  tyr_nanochat_config c = tyr_nanochat_config_d12();
  c.n_layer = 4;
  c.n_head = 2;
  c.n_embd = 256;
  c.mlp_hidden = 4 * 256;
  c.max_seq_len = 512;
  c.no_attn_layer = -1;
  return c;
}

/* The attention kind of layer l: 'L', 'S' or 'N'. */
static char layer_kind(const tyr_nanochat_config *c, int64_t l) {
  if (c->window_pattern[0]) return c->window_pattern[l];
  if (l == c->no_attn_layer) return 'N';
  static const char rec[] = "LSSSLSSLSSSL"; /* the record's long/short pattern */
  /* the last layer always has the long window */
  return l == c->n_layer - 1 ? 'L' : rec[l % 12];
}

int tyr_nanochat_config_check_at(tyr_site s, const tyr_nanochat_config *c) {
  const char *op = "tyr_nanochat_config";
  if (!c) return tyr_raise(TYR_ERR_ARG, s, op, "config is NULL");
#define POS(f)                                                                                     \
  if (c->f <= 0)                                                                                   \
  return tyr_raise(TYR_ERR_ARG, s, op, #f " must be positive, got %lld", (long long)c->f)
  POS(vocab_size);
  POS(n_layer);
  POS(n_head);
  POS(head_dim);
  POS(n_embd);
  POS(mlp_hidden);
  POS(max_seq_len);
#undef POS
  if (c->n_layer > TYR_NANOCHAT_MAX_LAYERS)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_layer must be at most %d, got %lld",
                     TYR_NANOCHAT_MAX_LAYERS, (long long)c->n_layer);
  if (c->head_dim % 2 || (c->rope_half && c->head_dim % 4))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "head_dim must be even (a multiple of 4 with rope_half), got %lld",
                     (long long)c->head_dim);
  if ((c->smear_gate || c->attn_gate) && c->n_embd < GD)
    return tyr_raise(TYR_ERR_ARG, s, op, "the gates read %d channels: n_embd must be >= %d", GD,
                     GD);
  size_t np = strlen(c->window_pattern);
  if (np && (int64_t)np != c->n_layer)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "window_pattern \"%s\" must have n_layer (%lld) characters, not %zu",
                     c->window_pattern, (long long)c->n_layer, np);
  for (size_t i = 0; i < np; i++)
    if (!strchr("LSN", c->window_pattern[i]))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "window_pattern \"%s\": character %zu is '%c', not L, S or N",
                       c->window_pattern, i, c->window_pattern[i]);
  if (c->no_attn_layer < -1 || c->no_attn_layer >= c->n_layer)
    return tyr_raise(TYR_ERR_ARG, s, op, "no_attn_layer must be -1 or a layer < %lld, got %lld",
                     (long long)c->n_layer, (long long)c->no_attn_layer);
  if (!(c->norm_eps >= 0) || !(c->logit_softcap >= 0) || !(c->attn_scale >= 0) ||
      !(c->rope_base >= 0))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "norm_eps, logit_softcap, attn_scale and rope_base must be >= 0");
  return 0;
}

/* ---- initialisation ---------------------------------------------------------------------- */
/* Value-embedding tables: 3, or n_layer / 2 for fewer than 6 layers (the
 * first and the last that many layers read one each, in order). */
static int ve_count(const tyr_nanochat_config *c) {
  return !c->value_embeds ? 0 : c->n_layer / 2 < 3 ? (int)(c->n_layer / 2) : 3;
}

static tyr_tensor *add_param(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *t, const char *fmt,
                             long long l) {
  if (!t) return NULL;
  char name[TYR_PARAM_NAME_MAX];
  snprintf(name, sizeof name, fmt, l);
  return tyr_params_add_at(s, &m->params, name, t);
}

/* [out, in] uniform with the speedrun's bound sqrt(3) / (2 sqrt(in)), or zeros */
static tyr_tensor *matrix(tyr_site s, tyr_device dev, int64_t out, int64_t in, bool zero) {
  int64_t sh[2] = {out, in};
  if (zero) return tyr_zeros_at(s, tyr_default_dtype(), dev, 2, sh);
  double b = sqrt(3.0) * 0.5 / sqrt((double)in);
  return tyr_rand_at(s, tyr_default_dtype(), dev, 2, sh, -b, b);
}

static tyr_tensor *vec2(tyr_site s, tyr_device dev, double a, double b) {
  double v[2] = {a, b};
  tyr_tensor *t = tyr_from_host_at(s, v, TYR_F64, dev, 1, (int64_t[]){2});
  return t && tyr_default_dtype() != TYR_F64 ? tyr_to_dtype_at(s, t, tyr_default_dtype()) : t;
}

/* cos and sin [T, D/2] of the rotary embedding (rotate-half convention) */
static int rope_tables(tyr_site s, tyr_nanochat_gpt *m) {
  const tyr_nanochat_config *c = &m->cfg;
  int64_t T = c->max_seq_len, H = c->head_dim / 2;
  /* f64 tables for an f64 model (tests), else f32 */
  const tyr_dtype tdt = m->embed->dtype == TYR_F64 ? TYR_F64 : TYR_F32;
  const size_t esz = tdt == TYR_F64 ? sizeof(double) : sizeof(float);
  void *cs = malloc(esz * (size_t)(T * H)), *sn = malloc(esz * (size_t)(T * H));
  double *freq = malloc(sizeof(double) * (size_t)H);
  if (!cs || !sn || !freq) {
    free(cs);
    free(sn);
    free(freq);
    return tyr_raise(TYR_ERR_MEMORY, s, OP, "out of host memory");
  }
  for (int64_t i = 0; i < H; i++) {
    if (c->rope_half) { /* H/2 frequencies from 1 down to 1/1024, then H/2 zeros */
      int64_t q = H / 2;
      freq[i] = i < q ? pow(1.0 / 1024, q > 1 ? (double)i / (double)(q - 1) : 0) : 0;
    } else {
      freq[i] =
          pow(c->rope_base > 0 ? c->rope_base : 10000, -2.0 * (double)i / (double)c->head_dim);
    }
  }
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < H; i++) {
      double a = (double)t * freq[i];
      if (tdt == TYR_F64) {
        ((double *)cs)[t * H + i] = cos(a);
        ((double *)sn)[t * H + i] = sin(a);
      } else {
        ((float *)cs)[t * H + i] = (float)cos(a);
        ((float *)sn)[t * H + i] = (float)sin(a);
      }
    }
  m->rope_cos = tyr_from_host_at(s, cs, tdt, m->device, 2, (int64_t[]){T, H});
  m->rope_sin = tyr_from_host_at(s, sn, tdt, m->device, 2, (int64_t[]){T, H});
  free(cs);
  free(sn);
  free(freq);
  if (!m->rope_cos || !m->rope_sin) return TYR_ERR_MEMORY;
  tyr_keep_e(m->rope_cos);
  tyr_keep_e(m->rope_sin);
  return 0;
}

static int init_params(tyr_site s, tyr_nanochat_gpt *m, const tyr_nanochat_config *cfg,
                       tyr_device dev) {
  memset(m, 0, sizeof *m);
  int st = tyr_nanochat_config_check_at(s, cfg);
  if (st) return st;
  m->cfg = *cfg;
  tyr_nanochat_config *c = &m->cfg;
  if (c->norm_eps == 0) c->norm_eps = 1e-6;
  m->device = dev;
  tyr_params_init(&m->params);
  const int64_t V = c->vocab_size, C = c->n_embd, HD = c->n_head * c->head_dim;
  const bool z = c->zero_init_proj;
  bool ok = true;
  ok = ok && (m->embed = add_param(
                  s, m, tyr_randn_at(s, tyr_default_dtype(), dev, 2, (int64_t[]){V, C}, 0, 1),
                  "embed", 0));
  for (int i = 0; i < ve_count(c) && ok; i++)
    ok = (m->value_embeds[i] = add_param(
              s, m, tyr_randn_at(s, tyr_default_dtype(), dev, 2, (int64_t[]){V, HD}, 0, 1),
              "value_embeds.%lld", i)) != NULL;
  if (ok && c->smear_gate) {
    ok = (m->smear_gate = add_param(s, m, matrix(s, dev, 1, GD, true), "smear_gate", 0)) &&
         (m->smear_lambda =
              add_param(s, m, tyr_zeros_at(s, tyr_default_dtype(), dev, 1, (int64_t[]){1}),
                        "smear_lambda", 0));
  }
  for (int64_t l = 0; l < c->n_layer && ok; l++) {
    tyr_nanochat_block *b = &m->blocks[l];
    long long ll = (long long)l;
    if (layer_kind(c, l) != 'N') {
      ok = (b->qkv = add_param(s, m, matrix(s, dev, 3 * HD, C, false), "blocks.%lld.qkv", ll)) &&
           (b->attn_proj = add_param(s, m, matrix(s, dev, C, HD, z), "blocks.%lld.attn_proj", ll));
      if (ok && c->value_embeds)
        ok = (b->v_lambdas = add_param(s, m, vec2(s, dev, 0.5, 0.5), "blocks.%lld.v_lambdas", ll));
      if (ok && c->attn_gate)
        ok = (b->attn_gate = add_param(s, m, matrix(s, dev, c->n_head, GD, true),
                                       "blocks.%lld.attn_gate", ll));
    }
    ok = ok &&
         (b->fc = add_param(s, m, matrix(s, dev, c->mlp_hidden, C, false), "blocks.%lld.fc", ll)) &&
         (b->mlp_proj =
              add_param(s, m, matrix(s, dev, C, c->mlp_hidden, z), "blocks.%lld.mlp_proj", ll));
    if (ok && c->block_lambdas)
      ok = (b->lambdas = add_param(s, m, vec2(s, dev, 1, 0), "blocks.%lld.lambdas", ll));
  }
  if (ok && c->unet_skips && c->n_layer >= 2)
    ok = (m->skip_weights = add_param(
              s, m, tyr_ones_at(s, tyr_default_dtype(), dev, 1, (int64_t[]){c->n_layer / 2}),
              "skip_weights", 0));
  ok = ok && (m->lm_head = add_param(s, m, matrix(s, dev, V, C, z), "lm_head", 0));
  if (!ok || (st = rope_tables(s, m))) {
    tyr_nanochat_free(m);
    return st ? st : TYR_ERR_ARG;
  }
  return 0;
}

/* in a scope of its own: the temporaries of initialisation go with it */
int tyr_nanochat_init_at(tyr_site s, tyr_nanochat_gpt *m, const tyr_nanochat_config *cfg,
                         tyr_device dev) {
  if (!m) return tyr_raise(TYR_ERR_ARG, s, OP, "model is NULL");
  tyr_scope_begin();
  int st = init_params(s, m, cfg, dev);
  tyr_scope_end();
  return st;
}

void tyr_nanochat_free(tyr_nanochat_gpt *m) {
  if (!m) return;
  tyr_params_free(&m->params);
  tyr_tensor_free(m->rope_cos);
  tyr_tensor_free(m->rope_sin);
  memset(m, 0, sizeof *m);
}

/* ---- forward ----------------------------------------------------------------------------- */
static tyr_tensor *cast(tyr_site s, tyr_tensor *t, tyr_dtype dt) {
  return t && t->dtype != dt ? tyr_to_dtype_at(s, t, dt) : t;
}

/* x * p[i] (p a vector parameter), broadcast over x */
static tyr_tensor *scale_by(tyr_site s, tyr_tensor *x, tyr_tensor *p, int64_t i) {
  if (!x) return NULL;
  tyr_tensor *e = cast(s, tyr_narrow_at(s, p, 0, i, 1), x->dtype);
  return tyr_mul_at(s, x, tyr_expand_at(s, e, x->rank, x->shape));
}

static tyr_tensor *rms(tyr_site s, const tyr_nanochat_gpt *m, tyr_tensor *x) {
  return tyr_rms_norm_at(s, x, NULL, m->cfg.norm_eps);
}

/* sigmoid(x[..., :12] W^T) for W [n, 12]: [..., n] */
static tyr_tensor *gate(tyr_site s, tyr_tensor *x, tyr_tensor *w) {
  if (!x) return NULL;
  return tyr_sigmoid_at(
      s, tyr_linear_at(s, tyr_narrow_at(s, x, x->rank - 1, 0, GD), cast(s, w, x->dtype), NULL));
}

/* x[:, t] += lambda sigmoid(g . x[:, t, :12]) x[:, t - 1] for t >= 1 */
static tyr_tensor *smear(tyr_site s, const tyr_nanochat_gpt *m, tyr_tensor *x) {
  int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
  if (T < 2) return x;
  tyr_tensor *cur = tyr_narrow_at(s, x, 1, 1, T - 1), *prev = tyr_narrow_at(s, x, 1, 0, T - 1);
  tyr_tensor *g = scale_by(s, gate(s, cur, m->smear_gate), m->smear_lambda, 0); /* [B, T-1, 1] */
  if (!g) return NULL;
  tyr_tensor *mixed =
      tyr_add_at(s, cur, tyr_mul_at(s, tyr_expand_at(s, g, 3, (int64_t[]){B, T - 1, C}), prev));
  tyr_tensor *parts[2] = {tyr_narrow_at(s, x, 1, 0, 1), mixed};
  if (!mixed || !parts[0]) return NULL;
  return tyr_cat_at(s, 2, parts, 1);
}

/* [B, T, H*D] -> [B, H, T, D] */
static tyr_tensor *heads(tyr_site s, tyr_tensor *x, int64_t H, int64_t D) {
  if (!x) return NULL;
  int64_t B = x->shape[0], T = x->shape[1];
  return tyr_transpose_at(s, tyr_reshape_at(s, x, 4, (int64_t[]){B, T, H, D}), 1, 2);
}

static tyr_tensor *attention(tyr_site s, const tyr_nanochat_gpt *m, const tyr_nanochat_block *b,
                             tyr_tensor *h, tyr_tensor *ve, tyr_tensor *doc, int64_t window,
                             tyr_tensor *rcos, tyr_tensor *rsin) {
  const tyr_nanochat_config *c = &m->cfg;
  const int64_t B = h->shape[0], T = h->shape[1], H = c->n_head, D = c->head_dim, HD = H * D;
  tyr_dtype dt = h->dtype;
  tyr_tensor *qkv = tyr_linear_at(s, h, cast(s, b->qkv, dt), NULL);
  if (!qkv) return NULL;
  tyr_tensor *q = tyr_narrow_at(s, qkv, 2, 0, HD), *k = tyr_narrow_at(s, qkv, 2, HD, HD);
  tyr_tensor *v = tyr_narrow_at(s, qkv, 2, 2 * HD, HD);
  if (b->v_lambdas) {
    v = scale_by(s, v, b->v_lambdas, 0);
    if (ve) v = tyr_add_at(s, v, scale_by(s, ve, b->v_lambdas, 1));
  }
  q = heads(s, q, H, D);
  k = heads(s, k, H, D);
  v = heads(s, v, H, D);
  if (c->qk_norm) {
    q = rms(s, m, q);
    k = rms(s, m, k);
  }
  q = tyr_rotary_at(s, tyr_contiguous_at(s, q), rcos, rsin);
  k = tyr_rotary_at(s, tyr_contiguous_at(s, k), rcos, rsin);
  if (!q || !k || !v) return NULL;
  tyr_sdpa_opts o = {.causal = true, .window = window, .scale = c->attn_scale, .doc_ids = doc};
  tyr_tensor *y = tyr_transpose_at(s, tyr_sdpa_at(s, q, k, tyr_contiguous_at(s, v), &o), 1, 2);
  if (!y) return NULL; /* y [B, T, H, D] */
  if (b->attn_gate) {
    tyr_tensor *g = gate(s, h, b->attn_gate); /* [B, T, H] */
    if (!g) return NULL;
    y = tyr_mul_at(s, y, tyr_expand_at(s, tyr_unsqueeze_at(s, g, 3), 4, (int64_t[]){B, T, H, D}));
  }
  y = tyr_reshape_at(s, tyr_contiguous_at(s, y), 3, (int64_t[]){B, T, HD});
  return tyr_linear_at(s, y, cast(s, b->attn_proj, dt), NULL);
}

static tyr_tensor *mlp(tyr_site s, const tyr_nanochat_block *b, tyr_tensor *h) {
  tyr_dtype dt = h->dtype;
  tyr_tensor *u = tyr_relu2_at(s, tyr_linear_at(s, h, cast(s, b->fc, dt), NULL));
  return u ? tyr_linear_at(s, u, cast(s, b->mlp_proj, dt), NULL) : NULL;
}

/* the value-embedding table layer l reads (0..2), or -1 */
static int ve_table(const tyr_nanochat_config *c, int64_t l) {
  if (!c->value_embeds) return -1;
  int64_t n = ve_count(c);
  if (l < n) return (int)l;
  if (l >= c->n_layer - n) return (int)(l - (c->n_layer - n));
  return -1;
}

static tyr_tensor *check_ids(tyr_site s, const tyr_nanochat_gpt *m, tyr_tensor *idx,
                             tyr_tensor *doc, tyr_tensor *targets) {
  char a[128], b[128];
  if (!idx) {
    tyr_raise(TYR_ERR_ARG, s, OP, "idx is NULL");
    return NULL;
  }
  if (idx->rank != 2 || idx->shape[1] < 1 || idx->shape[1] > m->cfg.max_seq_len ||
      (idx->dtype != TYR_I32 && idx->dtype != TYR_I64)) {
    tyr_raise(TYR_ERR_SHAPE, s, OP,
              "idx must be [B, T] i32/i64 with 1 <= T <= max_seq_len (%lld), got %s %s",
              (long long)m->cfg.max_seq_len, tyr_dtype_name(idx->dtype),
              tyr_shape_str(idx->shape, idx->rank, a, sizeof a));
    return NULL;
  }
  tyr_tensor *o[2] = {doc, targets};
  const char *names[2] = {"doc_ids", "targets"};
  for (int i = 0; i < 2; i++)
    if (o[i] &&
        (o[i]->rank != 2 || o[i]->shape[0] != idx->shape[0] || o[i]->shape[1] != idx->shape[1])) {
      tyr_raise(TYR_ERR_SHAPE, s, OP, "%s must be [B, T] like idx %s, got %s", names[i],
                tyr_shape_str(idx->shape, idx->rank, a, sizeof a),
                tyr_shape_str(o[i]->shape, o[i]->rank, b, sizeof b));
      return NULL;
    }
  return idx;
}

/* The blocks and the final norm: [B, T, n_embd] in the compute dtype. */
static tyr_tensor *hidden(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *idx, tyr_tensor *doc,
                          const tyr_nanochat_windows *w, tyr_tensor *targets) {
  if (!m) {
    tyr_raise(TYR_ERR_ARG, s, OP, "model is NULL");
    return NULL;
  }
  if (!check_ids(s, m, idx, doc, targets)) return NULL;
  const tyr_nanochat_config *c = &m->cfg;
  const int64_t T = idx->shape[1], L = c->n_layer;
  tyr_dtype dt = c->compute_dtype == TYR_BF16 || c->compute_dtype == TYR_F16 ? c->compute_dtype
                                                                             : m->embed->dtype;
  /* after an error the forward stops: each step below raises at most once */
  tyr_tensor *x = tyr_embedding_at(s, m->embed, idx);
  if (x && c->smear_gate) x = smear(s, m, x);
  if (!x || !(x = cast(s, rms(s, m, x), dt))) return NULL;
  tyr_tensor *x0 = x, *ve[3] = {NULL, NULL, NULL};
  for (int i = 0; i < ve_count(c); i++)
    if (!(ve[i] = cast(s, tyr_embedding_at(s, m->value_embeds[i], idx), dt))) return NULL;
  tyr_tensor *rcos = cast(s, tyr_narrow_at(s, m->rope_cos, 0, 0, T), dt);
  tyr_tensor *rsin = cast(s, tyr_narrow_at(s, m->rope_sin, 0, 0, T), dt);
  tyr_tensor *skips[TYR_NANOCHAT_MAX_LAYERS];
  int nskip = 0;
  const int64_t half = L / 2;
  if (!rcos || !rsin) return NULL;
  for (int64_t l = 0; l < L; l++) {
    const tyr_nanochat_block *b = &m->blocks[l];
    tyr_tensor *y;
    if (m->skip_weights && l >= half && nskip > 0) {
      if (!(y = scale_by(s, skips[--nskip], m->skip_weights, l - half))) return NULL;
      if (!(x = tyr_add_at(s, x, y))) return NULL;
    }
    if (b->lambdas) {
      tyr_tensor *a = scale_by(s, x, b->lambdas, 0),
                 *a0 = a ? scale_by(s, x0, b->lambdas, 1) : NULL;
      if (!a0 || !(x = tyr_add_at(s, a, a0))) return NULL;
    }
    char kind = layer_kind(c, l);
    if (kind != 'N') {
      int64_t win = w ? (kind == 'L' ? w->long_window : w->short_window) : 0;
      int t = ve_table(c, l);
      tyr_tensor *h = rms(s, m, x);
      if (!h || !(y = attention(s, m, b, h, t >= 0 ? ve[t] : NULL, doc, win, rcos, rsin)) ||
          !(x = tyr_add_at(s, x, y)))
        return NULL;
    }
    tyr_tensor *h = rms(s, m, x);
    if (!h || !(y = mlp(s, b, h)) || !(x = tyr_add_at(s, x, y))) return NULL;
    if (m->skip_weights && l < half) skips[nskip++] = x;
  }
  return rms(s, m, x);
}

tyr_tensor *tyr_nanochat_forward_at(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *idx,
                                    tyr_tensor *doc, const tyr_nanochat_windows *w,
                                    tyr_tensor *targets, tyr_tensor **loss) {
  tyr_tensor *x = hidden(s, m, idx, doc, w, targets);
  if (!x) return NULL;
  const tyr_nanochat_config *c = &m->cfg;
  tyr_dtype dt = x->dtype;
  tyr_tensor *logits = tyr_linear_at(s, x, cast(s, m->lm_head, dt), NULL);
  logits = cast(s, logits, dt == TYR_F64 ? TYR_F64 : TYR_F32);
  if (logits && c->logit_softcap > 0) logits = tyr_softcap_at(s, logits, c->logit_softcap);
  if (logits && targets && loss) *loss = tyr_cross_entropy_at(s, logits, targets, -1);
  return logits;
}

tyr_tensor *tyr_nanochat_loss_at(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *idx,
                                 tyr_tensor *targets, tyr_tensor *doc,
                                 const tyr_nanochat_windows *w) {
  if (!targets) {
    tyr_raise(TYR_ERR_ARG, s, OP, "targets is NULL");
    return NULL;
  }
  /* the head, the softcap and the loss in one op: the [B, T, vocab]
     logits are never held, only a chunk of them at a time */
  tyr_tensor *x = hidden(s, m, idx, doc, w, targets);
  return x ? tyr_linear_cross_entropy_softcap_at(s, x, cast(s, m->lm_head, x->dtype), targets, -1,
                                                 m->cfg.logit_softcap)
           : NULL;
}

double tyr_nanochat_flops_per_token(const tyr_nanochat_gpt *m, int64_t T,
                                    const tyr_nanochat_windows *w) {
  const tyr_nanochat_config *c = &m->cfg;
  const double C = (double)c->n_embd, HD = (double)(c->n_head * c->head_dim);
  double mats = (double)c->vocab_size * C, attn = 0;
  for (int64_t l = 0; l < c->n_layer; l++) {
    char kind = layer_kind(c, l);
    mats += 2.0 * (double)c->mlp_hidden * C;
    if (kind == 'N') continue;
    mats += 4.0 * HD * C;
    int64_t win = w ? (kind == 'L' ? w->long_window : w->short_window) : 0;
    double keys = 0; /* keys each query sees, on average over the T positions */
    for (int64_t i = 0; i < T; i++) keys += (double)(win > 0 && win < i + 1 ? win : i + 1);
    attn += 4.0 * HD * keys / (double)(T > 0 ? T : 1); /* q k^T and p v, 2 FLOPs a MAC */
  }
  return 6.0 * mats + 3.0 * attn; /* backward = 2 forwards */
}

/* ---- checkpoints ------------------------------------------------------------------------- */
int tyr_nanochat_config_to_json_at(tyr_site s, const tyr_nanochat_config *c, char *buf, size_t n) {
  const char *op = "tyr_nanochat_config_to_json";
  if (!c || !buf) return -tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", c ? "buf" : "config");
#define B(f) (c->f ? "true" : "false")
  int k = snprintf(
      buf, n,
      "{\"vocab_size\":%lld,\"n_layer\":%lld,\"n_head\":%lld,\"head_dim\":%lld,\"n_embd\":%lld,"
      "\"mlp_hidden\":%lld,\"max_seq_len\":%lld,\"window_pattern\":\"%s\",\"no_attn_layer\":%lld,"
      "\"qk_norm\":%s,\"rope_half\":%s,\"rope_base\":%.17g,\"value_embeds\":%s,\"unet_skips\":%s,"
      "\"block_lambdas\":%s,\"smear_gate\":%s,\"attn_gate\":%s,\"zero_init_proj\":%s,"
      "\"logit_softcap\":%.17g,\"attn_scale\":%.17g,\"norm_eps\":%.17g,\"compute_dtype\":\"%s\"}",
      (long long)c->vocab_size, (long long)c->n_layer, (long long)c->n_head, (long long)c->head_dim,
      (long long)c->n_embd, (long long)c->mlp_hidden, (long long)c->max_seq_len, c->window_pattern,
      (long long)c->no_attn_layer, B(qk_norm), B(rope_half), c->rope_base, B(value_embeds),
      B(unet_skips), B(block_lambdas), B(smear_gate), B(attn_gate), B(zero_init_proj),
      c->logit_softcap, c->attn_scale, c->norm_eps,
      c->compute_dtype == TYR_BF16  ? "bf16"
      : c->compute_dtype == TYR_F16 ? "f16"
                                    : "f32");
#undef B
  if (k < 0 || (size_t)k >= n)
    return -tyr_raise(TYR_ERR_ARG, s, op, "the buffer (%zu bytes) is too small: %d needed", n,
                      k + 1);
  return k;
}

int tyr_nanochat_config_from_json_at(tyr_site s, const char *text, const char *what,
                                     tyr_nanochat_config *out) {
  if (!what) what = "tyr_nanochat_config_from_json";
  if (!text || !out) return tyr_raise(TYR_ERR_ARG, s, what, "%s is NULL", text ? "out" : "json");
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    return tyr_raise(TYR_ERR_FORMAT, s, what, "the nanochat config is not a JSON object");
  }
  tyr_nanochat_config c = tyr_nanochat_config_d12();
  struct {
    const char *key;
    int64_t *i;
    double *d;
    bool *b;
  } f[] = {{"vocab_size", &c.vocab_size, 0, 0},
           {"n_layer", &c.n_layer, 0, 0},
           {"n_head", &c.n_head, 0, 0},
           {"head_dim", &c.head_dim, 0, 0},
           {"n_embd", &c.n_embd, 0, 0},
           {"mlp_hidden", &c.mlp_hidden, 0, 0},
           {"max_seq_len", &c.max_seq_len, 0, 0},
           {"no_attn_layer", &c.no_attn_layer, 0, 0},
           {"qk_norm", 0, 0, &c.qk_norm},
           {"rope_half", 0, 0, &c.rope_half},
           {"rope_base", 0, &c.rope_base, 0},
           {"value_embeds", 0, 0, &c.value_embeds},
           {"unet_skips", 0, 0, &c.unet_skips},
           {"block_lambdas", 0, 0, &c.block_lambdas},
           {"smear_gate", 0, 0, &c.smear_gate},
           {"attn_gate", 0, 0, &c.attn_gate},
           {"zero_init_proj", 0, 0, &c.zero_init_proj},
           {"logit_softcap", 0, &c.logit_softcap, 0},
           {"attn_scale", 0, &c.attn_scale, 0},
           {"norm_eps", 0, &c.norm_eps, 0}};
  const char *key;
  json_t *v;
  int st = 0;
  json_object_foreach(root, key, v) {
    size_t i = 0, nf = sizeof f / sizeof f[0];
    while (i < nf && strcmp(f[i].key, key)) i++;
    if (i < nf) {
      if (f[i].i && json_is_integer(v))
        *f[i].i = (int64_t)json_integer_value(v);
      else if (f[i].d && json_is_number(v))
        *f[i].d = json_number_value(v) + 0.0; /* -0 is 0: the JSON written back says "-0",
                                                 which jansson reads as the integer 0 */
      else if (f[i].b && json_is_boolean(v))
        *f[i].b = json_is_true(v);
      else
        st = tyr_raise(TYR_ERR_FORMAT, s, what, "nanochat config field \"%s\" has the wrong type",
                       key);
    } else if (!strcmp(key, "window_pattern") && json_is_string(v) &&
               strlen(json_string_value(v)) <= TYR_NANOCHAT_MAX_LAYERS) {
      strcpy(c.window_pattern, json_string_value(v));
    } else if (!strcmp(key, "compute_dtype") && json_is_string(v)) {
      const char *d = json_string_value(v);
      c.compute_dtype = !strcmp(d, "bf16") ? TYR_BF16 : !strcmp(d, "f16") ? TYR_F16 : TYR_F32;
    } else {
      st = tyr_raise(TYR_ERR_FORMAT, s, what, "unknown or bad nanochat config field \"%s\"", key);
    }
    if (st) break;
  }
  json_decref(root);
  if (st || (st = tyr_nanochat_config_check_at(s, &c))) return st;
  *out = c;
  return 0;
}

int tyr_nanochat_save_at(tyr_site s, tyr_nanochat_gpt *m, const char *path) {
  if (!m) return tyr_raise(TYR_ERR_ARG, s, "tyr_nanochat_save", "model is NULL");
  char cfg[2048];
  if (tyr_nanochat_config_to_json_at(s, &m->cfg, cfg, sizeof cfg) < 0) return TYR_ERR_ARG;
  tyr_checkpoint_info info = {.step = 0,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 1,
                              .keys = {TYR_NANOCHAT_CONFIG_KEY},
                              .values = {cfg}};
  return tyr_checkpoint_save_at(s, path, &m->params, NULL, &info);
}

int tyr_nanochat_load_at(tyr_site s, tyr_nanochat_gpt *m, const char *path, tyr_device dev) {
  if (!m) return tyr_raise(TYR_ERR_ARG, s, "tyr_nanochat_load", "model is NULL");
  memset(m, 0, sizeof *m);
  tyr_checkpoint *ck = tyr_checkpoint_open_at(s, path);
  if (!ck) return TYR_ERR_IO;
  int st;
  tyr_nanochat_config c;
  const char *json = tyr_checkpoint_meta(ck, TYR_NANOCHAT_CONFIG_KEY);
  if (!json) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "no \"" TYR_NANOCHAT_CONFIG_KEY "\" metadata: not a nanochat model checkpoint");
    goto done;
  }
  if ((st = tyr_nanochat_config_from_json_at(s, json, path, &c))) goto done;
  tyr_rng_state rng = tyr_rng_get_state();
  st = tyr_nanochat_init_at(s, m, &c, dev);
  tyr_rng_set_state(rng);
  if (st) goto done;
  if ((st = tyr_checkpoint_load_weights_at(s, ck, &m->params))) tyr_nanochat_free(m);
done:
  tyr_checkpoint_close(ck);
  return st;
}
