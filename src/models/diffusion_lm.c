/* The masked diffusion language model (tyr/models/diffusion_lm.h): configs,
 * parameters, the forward pass (src/models/diffusion_lm_forward.h, compiled
 * with static shapes for the tiny config), the weighted masked loss and the
 * forward (noising) process. */
#include "tyr/models/diffusion_lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/tyr.h"

bool tyr_dlm_config_named(const char *name, tyr_dlm_config *out) {
  tyr_dlm_config c = {.rope_base = 10000.0, .norm_eps = 1e-6};
  if (!strcmp(name, "tiny")) {
    c.seq_len = TYR_DLM_TINY_SEQ;
    c.n_layer = TYR_DLM_TINY_LAYERS;
    c.n_head = TYR_DLM_TINY_HEADS;
    c.n_embd = TYR_DLM_TINY_EMBD;
    c.steps = TYR_DLM_TINY_STEPS;
  } else if (!strcmp(name, "small")) {
    c.seq_len = 128;
    c.n_layer = 4;
    c.n_head = 4;
    c.n_embd = 256;
    c.steps = 64;
  } else if (!strcmp(name, "full")) {
    c.seq_len = 256;
    c.n_layer = 6;
    c.n_head = 6;
    c.n_embd = 384;
    c.steps = 128;
    c.context_len = 16;
  } else {
    return false;
  }
  snprintf(c.name, sizeof c.name, "%s", name);
  *out = c;
  return true;
}

int tyr_dlm_config_check_at(tyr_site s, const tyr_dlm_config *c) {
  const char *op = "tyr_dlm_config_check";
  if (c->seq_len <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_embd <= 0 || c->steps <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "seq_len %lld, n_layer %lld, n_head %lld, n_embd %lld and steps %lld must "
                     "all be positive",
                     (long long)c->seq_len, (long long)c->n_layer, (long long)c->n_head,
                     (long long)c->n_embd, (long long)c->steps);
  if (c->n_embd % c->n_head || (c->n_embd / c->n_head) % 2)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "n_head %lld must divide n_embd %lld into an even head dim (rotary)",
                     (long long)c->n_head, (long long)c->n_embd);
  if (c->context_len < 0 || c->context_len >= c->seq_len)
    return tyr_raise(TYR_ERR_ARG, s, op, "context_len %lld must be in [0, seq_len %lld)",
                     (long long)c->context_len, (long long)c->seq_len);
  return 0;
}

void tyr_dlm_config_json(const tyr_dlm_config *c, char *buf, size_t n) {
  snprintf(buf, n,
           "{\"name\":\"%s\",\"vocab\":%d,\"seq_len\":%lld,\"n_layer\":%lld,\"n_head\":%lld,"
           "\"n_embd\":%lld,\"steps\":%lld,\"context_len\":%lld,\"rope_base\":%g,\"norm_eps\":%g}",
           c->name, TYR_DLM_VOCAB, (long long)c->seq_len, (long long)c->n_layer,
           (long long)c->n_head, (long long)c->n_embd, (long long)c->steps,
           (long long)c->context_len, c->rope_base, c->norm_eps);
}

bool tyr_dlm_config_from_json(const char *json, tyr_dlm_config *out) {
  tyr_dlm_config c = {0};
  int vocab = 0;
  long long sl, nl, nh, ne, st, cl;
  char name[16] = {0};
  if (!json ||
      sscanf(
          json,
          "{\"name\":\"%15[^\"]\",\"vocab\":%d,\"seq_len\":%lld,\"n_layer\":%lld,\"n_head\":%lld,"
          "\"n_embd\":%lld,\"steps\":%lld,\"context_len\":%lld,\"rope_base\":%lf,"
          "\"norm_eps\":%lf}",
          name, &vocab, &sl, &nl, &nh, &ne, &st, &cl, &c.rope_base, &c.norm_eps) != 10 ||
      vocab != TYR_DLM_VOCAB)
    return false;
  snprintf(c.name, sizeof c.name, "%s", name);
  c.seq_len = sl;
  c.n_layer = nl;
  c.n_head = nh;
  c.n_embd = ne;
  c.steps = st;
  c.context_len = cl;
  *out = c;
  return true;
}

static tyr_tensor *param(tyr_site s, tyr_dlm *m, const char *name, int64_t rows, int64_t cols,
                         double std) {
  int64_t shape[2] = {rows, cols};
  tyr_tensor *t = std > 0 ? tyr_randn_at(s, tyr_default_dtype(), m->device, 2, shape, 0.0, std)
                          : tyr_zeros_at(s, tyr_default_dtype(), m->device, 2, shape);
  return t ? tyr_params_add_at(s, &m->params, name, t) : NULL;
}

int tyr_dlm_init_at(tyr_site s, tyr_dlm *m, const tyr_dlm_config *cfg, tyr_device dev) {
  memset(m, 0, sizeof *m);
  int st = tyr_dlm_config_check_at(s, cfg);
  if (st) return st;
  m->cfg = *cfg;
  m->device = dev;
  tyr_params_init(&m->params);
  const int64_t E = cfg->n_embd, F = 4 * E, V = TYR_DLM_VOCAB;
  m->tok_emb = param(s, m, "tok_emb", V, E, 1.0);
  m->time_emb = param(s, m, "time_emb", cfg->steps, E, 1.0 / sqrt((double)E));
  if (!m->tok_emb || !m->time_emb) goto fail;
  m->blocks = calloc((size_t)cfg->n_layer, sizeof *m->blocks);
  if (!m->blocks) {
    st = tyr_raise(TYR_ERR_MEMORY, s, "tyr_dlm_init", "out of host memory");
    goto fail;
  }
  for (int64_t l = 0; l < cfg->n_layer; l++) {
    tyr_dlm_block *b = &m->blocks[l];
    char name[TYR_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "blocks.%lld.attn.qkv", (long long)l);
    b->qkv = param(s, m, name, 3 * E, E, 1.0 / sqrt((double)E));
    snprintf(name, sizeof name, "blocks.%lld.attn.proj", (long long)l);
    b->attn_proj = param(s, m, name, E, E, 0);
    snprintf(name, sizeof name, "blocks.%lld.mlp.fc", (long long)l);
    b->fc = param(s, m, name, F, E, 1.0 / sqrt((double)E));
    snprintf(name, sizeof name, "blocks.%lld.mlp.proj", (long long)l);
    b->mlp_proj = param(s, m, name, E, F, 0);
    if (!b->qkv || !b->attn_proj || !b->fc || !b->mlp_proj) goto fail;
  }
  m->head = param(s, m, "head", V, E, 0);
  if (!m->head) goto fail;
  if ((st = tyr_rotary_tables_at(s, cfg->seq_len, E / cfg->n_head, cfg->rope_base,
                                 tyr_default_dtype(), dev, &m->rope_cos, &m->rope_sin)))
    goto fail;
  tyr_keep_e(m->rope_cos);
  tyr_keep_e(m->rope_sin);
  return 0;
fail:
  tyr_dlm_free(m);
  return st ? st : TYR_ERR_ARG;
}

void tyr_dlm_free(tyr_dlm *m) {
  tyr_params_free(&m->params);
  free(m->blocks);
  tyr_tensor_free(m->rope_cos);
  tyr_tensor_free(m->rope_sin);
  memset(m, 0, sizeof *m);
}

/* the tiny config: every dim but the batch is a constant */
static tyr_tensor *forward_tiny(tyr_dlm *m, tyr_tensor *ids_e, tyr_tensor *t_e) {
  enum {
    S = TYR_DLM_TINY_SEQ,
    C = TYR_DLM_TINY_EMBD,
    H = TYR_DLM_TINY_HEADS,
    D = TYR_DLM_TINY_EMBD / TYR_DLM_TINY_HEADS,
    F = 4 * TYR_DLM_TINY_EMBD,
    V = TYR_DLM_VOCAB,
    NT = TYR_DLM_TINY_STEPS,
  };
  const int64_t Bn = ids_e->shape[0];
  tyr_tensor *out = NULL;
#include "diffusion_lm_forward.h"
  return out;
}

/* any config: the same code with run-time dims */
static tyr_tensor *forward_any(tyr_dlm *m, tyr_tensor *ids_e, tyr_tensor *t_e) {
  const int64_t Bn = ids_e->shape[0], S = ids_e->shape[1], C = m->cfg.n_embd, H = m->cfg.n_head,
                D = C / H, F = 4 * C, V = TYR_DLM_VOCAB, NT = m->cfg.steps;
  tyr_tensor *out = NULL;
#include "diffusion_lm_forward.h"
  return out;
}

static bool is_tiny(const tyr_dlm_config *c, int64_t S) {
  return S == TYR_DLM_TINY_SEQ && c->seq_len == TYR_DLM_TINY_SEQ &&
         c->n_layer == TYR_DLM_TINY_LAYERS && c->n_head == TYR_DLM_TINY_HEADS &&
         c->n_embd == TYR_DLM_TINY_EMBD && c->steps == TYR_DLM_TINY_STEPS;
}

tyr_tensor *tyr_dlm_forward_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t) {
  const char *op = "tyr_dlm_forward";
  if (!ids || !t) return (tyr_raise(TYR_ERR_ARG, s, op, "ids and t must not be NULL"), NULL);
  if (ids->rank != 2 || t->rank != 1 || t->shape[0] != ids->shape[0] || ids->shape[1] < 1 ||
      ids->shape[1] > m->cfg.seq_len)
    return (tyr_raise(TYR_ERR_SHAPE, s, op,
                      "ids must be [B, S] with 1 <= S <= seq_len %lld and t [B]; got ids of rank "
                      "%d and t of rank %d",
                      (long long)m->cfg.seq_len, ids->rank, t->rank),
            NULL);
  return is_tiny(&m->cfg, ids->shape[1]) ? forward_tiny(m, ids, t) : forward_any(m, ids, t);
}

tyr_tensor *tyr_dlm_token_logp_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t,
                                  tyr_tensor *x0) {
  tyr_tensor *logits = tyr_dlm_forward_at(s, m, ids, t);
  if (!logits) return NULL;
  if (!x0 || x0->rank != 2 || x0->shape[0] != ids->shape[0] || x0->shape[1] != ids->shape[1])
    return (tyr_raise(TYR_ERR_SHAPE, s, "tyr_dlm_token_logp", "x0 must be [B, S] like ids"), NULL);
  tyr_tensor *logp = tyr_log_softmax_at(s, logits, -1);
  tyr_tensor *picked = tyr_gather_at(s, logp, 2, tyr_unsqueeze_at(s, x0, 2));
  return picked ? tyr_squeeze_at(s, picked, 2) : NULL;
}

tyr_tensor *tyr_dlm_loss_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t, tyr_tensor *x0,
                            tyr_tensor *w) {
  tyr_tensor *lp = tyr_dlm_token_logp_at(s, m, ids, t, x0);
  if (!lp) return NULL;
  if (!w || w->rank != 2 || w->shape[0] != lp->shape[0] || w->shape[1] != lp->shape[1])
    return (tyr_raise(TYR_ERR_SHAPE, s, "tyr_dlm_loss", "w must be [B, S] like ids"), NULL);
  return tyr_neg_at(s, tyr_sum_at(s, tyr_mul_at(s, lp, w)));
}

/* ---- the forward process ---------------------------------------------------- */
double tyr_dlm_mask_prob(const tyr_dlm_config *c, int64_t t) {
  return (double)(t + 1) / (double)c->steps;
}

void tyr_dlm_noise(const tyr_dlm_config *c, int64_t B, const int64_t *x0, uint64_t seed,
                   uint64_t *counter, int64_t *xt, int64_t *t, uint8_t *masked) {
  const int64_t S = c->seq_len;
  for (int64_t b = 0; b < B; b++) {
    uint32_t r[4];
    tyr_philox4x32(seed, (*counter)++, r);
    t[b] = (int64_t)(((uint64_t)r[0] * (uint64_t)c->steps) >> 32);
    double p = tyr_dlm_mask_prob(c, t[b]);
    for (int64_t i = 0; i < S; i++) {
      if (i % 4 == 0) tyr_philox4x32(seed, (*counter)++, r);
      double u = (double)r[i % 4] * (1.0 / 4294967296.0);
      bool m = i >= c->context_len && u < p;
      masked[b * S + i] = m;
      xt[b * S + i] = m ? TYR_DLM_MASK : x0[b * S + i];
    }
  }
}

bool tyr_dlm_loss_kind_parse(const char *name, tyr_dlm_loss_kind *out) {
  if (!strcmp(name, "ce"))
    *out = TYR_DLM_LOSS_CE;
  else if (!strcmp(name, "elbo"))
    *out = TYR_DLM_LOSS_ELBO;
  else
    return false;
  return true;
}

void tyr_dlm_loss_weights(const tyr_dlm_config *c, tyr_dlm_loss_kind kind, int64_t B,
                          const int64_t *t, const uint8_t *masked, float *w) {
  const int64_t S = c->seq_len;
  int64_t count = 0;
  for (int64_t i = 0; i < B * S; i++) count += masked[i] != 0;
  for (int64_t b = 0; b < B; b++) {
    double wb = kind == TYR_DLM_LOSS_CE
                    ? (count ? 1.0 / (double)count : 0.0)
                    : 1.0 / (tyr_dlm_mask_prob(c, t[b]) * (double)B * (double)(S - c->context_len));
    for (int64_t i = 0; i < S; i++) w[b * S + i] = masked[b * S + i] ? (float)wb : 0.0f;
  }
}
