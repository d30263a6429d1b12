/* The Branching Flows transformer (tyr/models/branching_flows.h): config,
 * parameters, the bidirectional time-conditioned forward, the training
 * losses of a packed batch, and generation with the Euler sampler. */
#include "tyr/models/branching_flows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/tyr.h"

int tyr_bfm_config_check_at(tyr_site s, const tyr_bfm_config *c) {
  const char *op = "tyr_bfm_config_check";
  if (c->dim < 0 || c->dim > TYR_BF_MAX_DIM || c->vocab < 0 || (c->dim == 0 && c->vocab == 0))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "dim %lld must be in 0..%d and vocab %lld >= 0, not both 0", (long long)c->dim,
                     TYR_BF_MAX_DIM, (long long)c->vocab);
  if (c->max_len < 1 || c->n_layer < 1 || c->n_head < 1 || c->n_embd < 1)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "max_len %lld, n_layer %lld, n_head %lld and n_embd %lld must be positive",
                     (long long)c->max_len, (long long)c->n_layer, (long long)c->n_head,
                     (long long)c->n_embd);
  if (c->n_embd % c->n_head)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_head %lld must divide n_embd %lld",
                     (long long)c->n_head, (long long)c->n_embd);
  return 0;
}

void tyr_bfm_config_json(const tyr_bfm_config *c, char *buf, size_t n) {
  snprintf(buf, n,
           "{\"dim\":%lld,\"vocab\":%lld,\"max_len\":%lld,\"n_layer\":%lld,\"n_head\":%lld,"
           "\"n_embd\":%lld}",
           (long long)c->dim, (long long)c->vocab, (long long)c->max_len, (long long)c->n_layer,
           (long long)c->n_head, (long long)c->n_embd);
}

bool tyr_bfm_config_from_json(const char *json, tyr_bfm_config *out) {
  long long v[6];
  if (!json || sscanf(json,
                      "{\"dim\":%lld,\"vocab\":%lld,\"max_len\":%lld,\"n_layer\":%lld,\"n_head\":%"
                      "lld,\"n_embd\":%lld}",
                      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  *out = (tyr_bfm_config){v[0], v[1], v[2], v[3], v[4], v[5]};
  return true;
}

void tyr_bfm_free(tyr_bfm *m) {
  tyr_params_free(&m->params);
  free(m->blocks);
  tyr_tensor_free(m->freqs);
  memset(m, 0, sizeof *m);
}

int tyr_bfm_init_at(tyr_site s, tyr_bfm *m, const tyr_bfm_config *cfg) {
  memset(m, 0, sizeof *m);
  int st = tyr_bfm_config_check_at(s, cfg);
  if (st) return st;
  m->cfg = *cfg;
  tyr_params_init(&m->params);
  const int64_t E = cfg->n_embd, NF = TYR_BFM_TIME_FREQS;
  const double std = 0.02, pstd = 0.02 / sqrt(2.0 * (double)cfg->n_layer);
  tyr_params *ps = &m->params;
  char name[TYR_PARAM_NAME_MAX];
  if (cfg->dim > 0 && (st = tyr_nn_linear_init_at(s, &m->in_x, ps, "in_x", cfg->dim, E, true, std)))
    goto fail;
  if (cfg->vocab > 0 &&
      (st = tyr_nn_embedding_init_at(s, &m->tok_emb, ps, "tok_emb", cfg->vocab + 1, E, std)))
    goto fail;
  m->pos_emb = tyr_params_add_at(s, ps, "pos_emb",
                                 tyr_randn_at(s, tyr_default_dtype(), tyr_default_device(), 2,
                                              (int64_t[]){cfg->max_len, E}, 0.0, std));
  if (!m->pos_emb) {
    st = TYR_ERR_ARG;
    goto fail;
  }
  if ((st = tyr_nn_linear_init_at(s, &m->time_fc1, ps, "time.fc1", 2 * NF, E, true, std)) ||
      (st = tyr_nn_linear_init_at(s, &m->time_fc2, ps, "time.fc2", E, E, true, std)))
    goto fail;
  m->blocks = calloc((size_t)cfg->n_layer, sizeof *m->blocks);
  if (!m->blocks) {
    st = tyr_raise(TYR_ERR_MEMORY, s, "tyr_bfm_init", "out of host memory");
    goto fail;
  }
  for (int64_t l = 0; l < cfg->n_layer; l++) {
    tyr_bfm_block *b = &m->blocks[l];
#define BNAME(part) (snprintf(name, sizeof name, "blocks.%lld.%s", (long long)l, part), name)
    if ((st = tyr_nn_norm_init_at(s, &b->ln1, ps, BNAME("ln1"), TYR_NORM_LAYER, E, true, true,
                                  1e-5)) ||
        (st = tyr_nn_linear_init_at(s, &b->qkv, ps, BNAME("attn.qkv"), E, 3 * E, true, std)) ||
        (st = tyr_nn_linear_init_at(s, &b->proj, ps, BNAME("attn.proj"), E, E, true, pstd)) ||
        (st = tyr_nn_norm_init_at(s, &b->ln2, ps, BNAME("ln2"), TYR_NORM_LAYER, E, true, true,
                                  1e-5)) ||
        (st = tyr_nn_mlp_init_at(s, &b->mlp, ps, BNAME("mlp"), E, 4 * E, TYR_ACT_GELU, true, std,
                                 pstd)))
      goto fail;
#undef BNAME
  }
  if ((st = tyr_nn_norm_init_at(s, &m->ln_f, ps, "ln_f", TYR_NORM_LAYER, E, true, true, 1e-5)))
    goto fail;
  /* the heads start at zero: x1 = 0, mu = 1, p_del = 1/2 */
  if ((cfg->dim > 0 &&
       (st = tyr_nn_linear_init_at(s, &m->head_x, ps, "head_x", E, cfg->dim, true, std))) ||
      (cfg->vocab > 0 &&
       (st = tyr_nn_linear_init_at(s, &m->head_tok, ps, "head_tok", E, cfg->vocab, true, std))) ||
      (st = tyr_nn_linear_init_at(s, &m->head_split, ps, "head_split", E, 1, true, std)) ||
      (st = tyr_nn_linear_init_at(s, &m->head_del, ps, "head_del", E, 1, true, std)))
    goto fail;
  {
    TYR_SCOPE;
    TYR_NO_GRAD;
    tyr_nn_linear *heads[4] = {&m->head_x, &m->head_tok, &m->head_split, &m->head_del};
    for (int i = 0; i < 4; i++) {
      if (!heads[i]->weight) continue;
      tyr_copy_at(s, heads[i]->weight,
                  tyr_zeros_at(s, heads[i]->weight->dtype, heads[i]->weight->device, 2,
                               heads[i]->weight->shape));
    }
  }
  float f[TYR_BFM_TIME_FREQS];
  for (int k = 0; k < NF; k++) f[k] = (float)(ldexp(1.0, k / 2) * 3.141592653589793 * 0.5);
  {
    TYR_SCOPE;
    m->freqs = tyr_clone_at(s, tyr_to_dtype_at(s,
                                               tyr_from_host_at(s, f, TYR_F32, tyr_default_device(),
                                                                2, (int64_t[]){1, NF}),
                                               tyr_default_dtype()));
    if (m->freqs) tyr_keep_e(m->freqs);
  }
  if (!m->freqs) {
    st = TYR_ERR_ARG;
    goto fail;
  }
  return 0;
fail:
  tyr_bfm_free(m);
  return st ? st : TYR_ERR_ARG;
}

/* multi-head attention over h [B, L, E] with the additive key bias [B, H, L, L] */
static tyr_tensor *attention(tyr_site s, const tyr_bfm *m, const tyr_bfm_block *b, tyr_tensor *a,
                             tyr_tensor *bias) {
  const int64_t B = a->shape[0], L = a->shape[1], E = m->cfg.n_embd, H = m->cfg.n_head, D = E / H;
  tyr_tensor *qkv = tyr_nn_linear_forward_at(s, &b->qkv, a);
  tyr_tensor *hv[3];
  for (int i = 0; i < 3; i++) {
    tyr_tensor *part = tyr_contiguous_at(s, tyr_narrow_at(s, qkv, 2, i * E, E));
    part = tyr_reshape_at(s, part, 4, (int64_t[]){B, L, H, D});
    hv[i] = tyr_contiguous_at(s, tyr_transpose_at(s, part, 1, 2)); /* [B, H, L, D] */
  }
  tyr_tensor *sc = tyr_matmul_at(s, hv[0], tyr_transpose_at(s, hv[1], 2, 3));
  sc = tyr_add_at(s, tyr_mul_scalar_at(s, sc, 1.0 / sqrt((double)D)), bias);
  tyr_tensor *o = tyr_matmul_at(s, tyr_softmax_at(s, sc, -1), hv[2]); /* [B, H, L, D] */
  o = tyr_reshape_at(s, tyr_contiguous_at(s, tyr_transpose_at(s, o, 1, 2)), 3,
                     (int64_t[]){B, L, E});
  return tyr_nn_linear_forward_at(s, &b->proj, o);
}

int tyr_bfm_forward_at(tyr_site s, tyr_bfm *m, tyr_tensor *xt, tyr_tensor *tok, tyr_tensor *t,
                       tyr_tensor *pad, tyr_bfm_out *out) {
  const char *op = "tyr_bfm_forward";
  memset(out, 0, sizeof *out);
  const tyr_bfm_config *c = &m->cfg;
  if (!t || !pad || pad->rank != 2 || t->rank != 1 || t->shape[0] != pad->shape[0])
    return tyr_raise(TYR_ERR_SHAPE, s, op, "t must be [B] and pad [B, L]");
  const int64_t B = pad->shape[0], L = pad->shape[1], E = c->n_embd, H = c->n_head;
  if (L < 1 || L > c->max_len)
    return tyr_raise(TYR_ERR_SHAPE, s, op, "L %lld must be in 1..max_len %lld", (long long)L,
                     (long long)c->max_len);
  if (c->dim > 0 &&
      (!xt || xt->rank != 3 || xt->shape[0] != B || xt->shape[1] != L || xt->shape[2] != c->dim))
    return tyr_raise(TYR_ERR_SHAPE, s, op, "xt must be [B %lld, L %lld, dim %lld]", (long long)B,
                     (long long)L, (long long)c->dim);
  if (c->vocab > 0 && (!tok || tok->rank != 2 || tok->shape[0] != B || tok->shape[1] != L))
    return tyr_raise(TYR_ERR_SHAPE, s, op, "tok must be [B %lld, L %lld]", (long long)B,
                     (long long)L);
  int64_t BLE[3] = {B, L, E};
  tyr_tensor *h = tyr_expand_at(s, tyr_narrow_at(s, m->pos_emb, 0, 0, L), 3, BLE);
  if (c->dim > 0) h = tyr_add_at(s, h, tyr_nn_linear_forward_at(s, &m->in_x, xt));
  if (c->vocab > 0) h = tyr_add_at(s, h, tyr_nn_embedding_forward_at(s, &m->tok_emb, tok));
  /* time features */
  tyr_tensor *ft = tyr_matmul_at(s, tyr_reshape_at(s, t, 2, (int64_t[]){B, 1}), m->freqs);
  tyr_tensor *tf[2] = {tyr_sin_at(s, ft), tyr_cos_at(s, ft)};
  tyr_tensor *te = tyr_nn_linear_forward_at(
      s, &m->time_fc2,
      tyr_silu_at(s, tyr_nn_linear_forward_at(s, &m->time_fc1, tyr_cat_at(s, 2, tf, 1))));
  h = tyr_add_at(s, h, tyr_expand_at(s, tyr_reshape_at(s, te, 3, (int64_t[]){B, 1, E}), 3, BLE));
  /* padding keys: -1e9 */
  tyr_tensor *bias;
  {
    TYR_NO_GRAD;
    bias = tyr_mul_scalar_at(s, tyr_sub_scalar_at(s, pad, 1.0), 1e9);
    bias = tyr_expand_at(s, tyr_reshape_at(s, bias, 4, (int64_t[]){B, 1, 1, L}), 4,
                         (int64_t[]){B, H, L, L});
  }
  for (int64_t l = 0; l < c->n_layer && h; l++) {
    const tyr_bfm_block *b = &m->blocks[l];
    h = tyr_add_at(s, h, attention(s, m, b, tyr_nn_norm_forward_at(s, &b->ln1, h), bias));
    h = tyr_add_at(s, h, tyr_nn_mlp_forward_at(s, &b->mlp, tyr_nn_norm_forward_at(s, &b->ln2, h)));
  }
  h = tyr_nn_norm_forward_at(s, &m->ln_f, h);
  if (!h) return TYR_ERR_ARG;
  if (c->dim > 0) out->x = tyr_nn_linear_forward_at(s, &m->head_x, h);
  if (c->vocab > 0) out->logits = tyr_nn_linear_forward_at(s, &m->head_tok, h);
  out->split =
      tyr_reshape_at(s, tyr_nn_linear_forward_at(s, &m->head_split, h), 2, (int64_t[]){B, L});
  out->del = tyr_reshape_at(s, tyr_nn_linear_forward_at(s, &m->head_del, h), 2, (int64_t[]){B, L});
  if ((c->dim > 0 && !out->x) || (c->vocab > 0 && !out->logits) || !out->split || !out->del)
    return TYR_ERR_ARG;
  return 0;
}

static tyr_tensor *host_f32(tyr_site s, const float *p, int rank, const int64_t *shape) {
  return tyr_to_dtype_at(s, tyr_from_host_at(s, p, TYR_F32, tyr_default_device(), rank, shape),
                         tyr_default_dtype());
}

int tyr_bfm_loss_at(tyr_site s, tyr_bfm *m, const tyr_bf_batch *b, tyr_bfm_loss_weights w,
                    tyr_bfm_losses *out) {
  const char *op = "tyr_bfm_loss";
  memset(out, 0, sizeof *out);
  const tyr_bfm_config *c = &m->cfg;
  if (b->L > c->max_len || b->dim != c->dim)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "the batch is [%lld, %lld] of dim %lld; the model takes max_len %lld, dim "
                     "%lld",
                     (long long)b->B, (long long)b->L, (long long)b->dim, (long long)c->max_len,
                     (long long)c->dim);
  const int64_t B = b->B, L = b->L, n = B * L;
  float *fm = malloc((size_t)n * sizeof *fm), *bm = malloc((size_t)n * sizeof *bm);
  if (!fm || !bm) {
    free(fm);
    free(bm);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  for (int64_t i = 0; i < n; i++) {
    fm[i] = b->padmask[i] * b->flowmask[i];
    bm[i] = b->padmask[i] * b->branchmask[i];
  }
  int64_t BL[2] = {B, L}, BLD[3] = {B, L, c->dim};
  tyr_tensor *xt = c->dim > 0 ? host_f32(s, b->xt, 3, BLD) : NULL;
  tyr_tensor *anchor = c->dim > 0 ? host_f32(s, b->anchor, 3, BLD) : NULL;
  tyr_tensor *tok =
      c->vocab > 0 ? tyr_from_host_at(s, b->tok, TYR_I64, tyr_default_device(), 2, BL) : NULL;
  tyr_tensor *atok = c->vocab > 0
                         ? tyr_from_host_at(s, b->anchor_tok, TYR_I64, tyr_default_device(), 2, BL)
                         : NULL;
  tyr_tensor *t = host_f32(s, b->t, 1, &B), *pad = host_f32(s, b->padmask, 2, BL);
  tyr_tensor *fmask = host_f32(s, fm, 2, BL), *bmask = host_f32(s, bm, 2, BL);
  tyr_tensor *split_t = host_f32(s, b->split_target, 2, BL), *del_t = host_f32(s, b->del, 2, BL);
  free(fm);
  free(bm);
  tyr_bfm_out o;
  int st = tyr_bfm_forward_at(s, m, xt, tok, t, pad, &o);
  if (st) return st;
  tyr_tensor *base = NULL;
  if (c->dim > 0) base = tyr_bf_mse_loss_at(s, o.x, anchor, fmask);
  if (c->vocab > 0) {
    tyr_tensor *ce = tyr_bf_ce_loss_at(s, o.logits, atok, fmask);
    base = base ? tyr_add_at(s, base, ce) : ce;
  }
  out->base = base;
  out->split = tyr_bf_split_loss_at(s, o.split, split_t, bmask);
  out->del = tyr_bf_deletion_loss_at(s, o.del, del_t, bmask);
  if (!out->base || !out->split || !out->del) return TYR_ERR_ARG;
  out->total = tyr_add_at(s,
                          tyr_add_at(s, tyr_mul_scalar_at(s, out->base, w.base),
                                     tyr_mul_scalar_at(s, out->split, w.split)),
                          tyr_mul_scalar_at(s, out->del, w.del));
  return out->total ? 0 : TYR_ERR_ARG;
}

int tyr_bfm_generate_at(tyr_site s, tyr_bfm *m, const tyr_bf_config *c, int64_t n, int64_t n_start,
                        int64_t steps, uint64_t seed, tyr_bf_state *states, tyr_bfm_step_fn on_step,
                        void *ctx) {
  const char *op = "tyr_bfm_generate";
  if (n < 1 || steps < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "n %lld and steps %lld must be positive", (long long)n,
                     (long long)steps);
  if (c->dim != m->cfg.dim || c->vocab != m->cfg.vocab || c->max_len > m->cfg.max_len)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "the flow (dim %d, vocab %d, max_len %lld) does not fit the model (dim %lld, "
                     "vocab %lld, max_len %lld)",
                     c->dim, c->vocab, (long long)c->max_len, (long long)m->cfg.dim,
                     (long long)m->cfg.vocab, (long long)m->cfg.max_len);
  tyr_bf_rng *rng = calloc((size_t)n, sizeof *rng);
  if (!rng) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  memset(states, 0, (size_t)n * sizeof *states);
  int st = 0;
  for (int64_t i = 0; i < n && !st; i++) {
    tyr_bf_rng_init(&rng[i], seed, (uint64_t)i);
    st = tyr_bf_state_init_at(s, c, &states[i], n_start, &rng[i]);
  }
  const int64_t D = c->dim, V = c->vocab, Lmax = c->max_len;
  float *xt = calloc((size_t)(n * Lmax * (D > 0 ? D : 1)), sizeof *xt);
  int64_t *tok = calloc((size_t)(n * Lmax), sizeof *tok);
  float *pad = calloc((size_t)(n * Lmax), sizeof *pad), *tv = calloc((size_t)n, sizeof *tv);
  float *px = calloc((size_t)(n * Lmax * (D > 0 ? D : 1)), sizeof *px);
  float *pl = calloc((size_t)(n * Lmax * (V > 0 ? V : 1)), sizeof *pl);
  float *ps = calloc((size_t)(n * Lmax), sizeof *ps), *pd = calloc((size_t)(n * Lmax), sizeof *pd);
  if (!st && (!xt || !tok || !pad || !tv || !px || !pl || !ps || !pd))
    st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  for (int64_t k = 0; k < steps && !st; k++) {
    double t = (double)k / (double)steps, dt = 1.0 / (double)steps;
    int64_t L = 1;
    for (int64_t i = 0; i < n; i++)
      if (states[i].n > L) L = states[i].n;
    memset(pad, 0, (size_t)(n * L) * sizeof *pad);
    for (int64_t i = 0; i < n; i++) {
      tv[i] = (float)t;
      for (int64_t j = 0; j < L; j++) {
        int64_t q = i * L + j;
        bool live = j < states[i].n;
        pad[q] = live;
        tok[q] = live ? states[i].e[j].tok : V;
        if (V == 0) tok[q] = 0;
        for (int64_t d = 0; d < D; d++) xt[q * D + d] = live ? states[i].e[j].x[d] : 0.0f;
      }
    }
    {
      TYR_SCOPE;
      TYR_NO_GRAD;
      int64_t BL[2] = {n, L}, BLD[3] = {n, L, D};
      tyr_bfm_out o;
      st = tyr_bfm_forward_at(s, m, D > 0 ? host_f32(s, xt, 3, BLD) : NULL,
                              V > 0 ? tyr_from_host_at(s, tok, TYR_I64, tyr_default_device(), 2, BL)
                                    : NULL,
                              host_f32(s, tv, 1, &n), host_f32(s, pad, 2, BL), &o);
      if (!st && D > 0)
        st = tyr_to_host_at(s, tyr_to_dtype_at(s, o.x, TYR_F32), px,
                            (size_t)(n * L * D) * sizeof *px);
      if (!st && V > 0)
        st = tyr_to_host_at(s, tyr_to_dtype_at(s, o.logits, TYR_F32), pl,
                            (size_t)(n * L * V) * sizeof *pl);
      if (!st)
        st = tyr_to_host_at(s, tyr_to_dtype_at(s, o.split, TYR_F32), ps,
                            (size_t)(n * L) * sizeof *ps);
      if (!st)
        st =
            tyr_to_host_at(s, tyr_to_dtype_at(s, o.del, TYR_F32), pd, (size_t)(n * L) * sizeof *pd);
    }
    for (int64_t i = 0; i < n && !st; i++) {
      tyr_bf_prediction p = {D > 0 ? px + i * L * D : NULL, V > 0 ? pl + i * L * V : NULL,
                             ps + i * L, pd + i * L};
      st = tyr_bf_step_at(s, c, &states[i], &p, t, dt, &rng[i]);
    }
    if (!st && on_step) on_step(t + dt, states, n, ctx);
  }
  free(rng);
  free(xt);
  free(tok);
  free(pad);
  free(tv);
  free(px);
  free(pl);
  free(ps);
  free(pd);
  if (st)
    for (int64_t i = 0; i < n; i++) tyr_bf_state_free(&states[i]);
  return st;
}
