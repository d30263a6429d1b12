/* A GPT: token (and optionally position) embeddings, pre-norm transformer
 * blocks, a final norm and a (tied) head. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/nn.h"
#include "tyr/tyr.h"

tyr_gpt_config tyr_gpt_config_gpt2(int64_t vocab, int64_t block, int64_t n_layer, int64_t n_head,
                                   int64_t n_embd) {
  tyr_gpt_config c;
  memset(&c, 0, sizeof c);
  c.vocab_size = vocab;
  c.block_size = block;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_kv_head = n_head;
  c.n_embd = n_embd;
  c.mlp_hidden = 4 * n_embd;
  c.bias = true;
  c.tied_head = true;
  c.learned_pos = true;
  c.rope_base = 10000;
  c.norm = TYR_NORM_LAYER;
  c.act = TYR_ACT_GELU_TANH;
  c.init_std = 0.02;
  c.norm_eps = 1e-5;
  return c;
}

int tyr_gpt_config_check_at(tyr_site s, const tyr_gpt_config *c) {
  const char *op = "tyr_gpt_config";
  if (c->vocab_size <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "vocab_size must be positive, got %lld",
                     (long long)c->vocab_size);
  if (c->block_size <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "block_size must be positive, got %lld",
                     (long long)c->block_size);
  if (c->n_layer <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_layer must be positive, got %lld",
                     (long long)c->n_layer);
  if (c->n_embd <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_embd must be positive, got %lld", (long long)c->n_embd);
  if (c->n_head <= 0 || c->n_embd % c->n_head)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_head (%lld) must divide n_embd (%lld)",
                     (long long)c->n_head, (long long)c->n_embd);
  int64_t kv = c->n_kv_head ? c->n_kv_head : c->n_head;
  if (kv <= 0 || c->n_head % kv)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_kv_head (%lld) must divide n_head (%lld)",
                     (long long)kv, (long long)c->n_head);
  if (c->rope && (c->n_embd / c->n_head) % 2)
    return tyr_raise(TYR_ERR_ARG, s, op, "rotary embedding needs an even head size, got %lld",
                     (long long)(c->n_embd / c->n_head));
  if (!c->rope && !c->learned_pos)
    return tyr_raise(TYR_ERR_ARG, s, op, "the model needs positions: learned_pos or rope");
  if (!(c->norm_eps >= 0) || c->norm_eps > 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "norm_eps must be in [0, 1] (0: 1e-5), got %g",
                     c->norm_eps);
  if (c->dropout < 0 || c->dropout >= 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "dropout must be in [0, 1), got %g", c->dropout);
  return 0;
}

int tyr_gpt_init_at(tyr_site s, tyr_gpt *g, const tyr_gpt_config *cfg, tyr_device dev) {
  memset(g, 0, sizeof *g);
  int st = tyr_gpt_config_check_at(s, cfg);
  if (st) return st;
  g->cfg = *cfg;
  tyr_gpt_config *c = &g->cfg;
  if (!c->n_kv_head) c->n_kv_head = c->n_head;
  if (!c->mlp_hidden) c->mlp_hidden = 4 * c->n_embd;
  if (c->init_std <= 0) c->init_std = 0.02;
  if (c->norm_eps <= 0) c->norm_eps = 1e-5;
  g->device = dev;
  tyr_params_init(&g->params);
  tyr_device prev_dev = tyr_default_device();
  tyr_set_default_device(dev);
  double std = c->init_std, proj_std = std / sqrt(2.0 * (double)c->n_layer);
  char name[TYR_PARAM_NAME_MAX];
  if ((st = tyr_nn_embedding_init_at(s, &g->wte, &g->params, "wte", c->vocab_size, c->n_embd, std)))
    goto fail;
  if (c->learned_pos &&
      (st = tyr_nn_embedding_init_at(s, &g->wpe, &g->params, "wpe", c->block_size, c->n_embd, std)))
    goto fail;
  g->blocks = calloc((size_t)c->n_layer, sizeof *g->blocks);
  if (!g->blocks) {
    st = tyr_raise(TYR_ERR_MEMORY, s, "tyr_gpt_init", "out of host memory");
    goto fail;
  }
  for (int64_t l = 0; l < c->n_layer; l++) {
    tyr_gpt_block *b = &g->blocks[l];
    snprintf(name, sizeof name, "blocks.%lld.ln1", (long long)l);
    if ((st = tyr_nn_norm_init_at(s, &b->ln1, &g->params, name, c->norm, c->n_embd,
                                  !c->norm_no_weight, c->bias, c->norm_eps)))
      goto fail;
    snprintf(name, sizeof name, "blocks.%lld.attn", (long long)l);
    tyr_nn_attention_config ac = {.dim = c->n_embd,
                                  .n_head = c->n_head,
                                  .n_kv_head = c->n_kv_head,
                                  .fused_qkv = true,
                                  .bias = c->bias,
                                  .rope = c->rope,
                                  .qk_norm = c->qk_norm,
                                  .rope_base = c->rope_base,
                                  .dropout = c->dropout};
    if ((st = tyr_nn_attention_init_at(s, &b->attn, &g->params, name, ac, std, proj_std)))
      goto fail;
    snprintf(name, sizeof name, "blocks.%lld.ln2", (long long)l);
    if ((st = tyr_nn_norm_init_at(s, &b->ln2, &g->params, name, c->norm, c->n_embd,
                                  !c->norm_no_weight, c->bias, c->norm_eps)))
      goto fail;
    snprintf(name, sizeof name, "blocks.%lld.mlp", (long long)l);
    if ((st = tyr_nn_mlp_init_at(s, &b->mlp, &g->params, name, c->n_embd, c->mlp_hidden, c->act,
                                 c->bias, std, proj_std)))
      goto fail;
  }
  if ((st = tyr_nn_norm_init_at(s, &g->ln_f, &g->params, "ln_f", c->norm, c->n_embd,
                                !c->norm_no_weight, c->bias, c->norm_eps)))
    goto fail;
  if (c->zero_init_proj) {
    for (int64_t l = 0; l < c->n_layer; l++) {
      TYR_SCOPE;
      tyr_tensor *ws[2] = {g->blocks[l].attn.proj.weight, g->blocks[l].mlp.proj.weight};
      for (int k = 0; k < 2; k++)
        if ((st = tyr_copy_at(s, ws[k], tyr_zeros_at(s, ws[k]->dtype, dev, 2, ws[k]->shape))))
          goto fail;
    }
  }
  if (c->layer_lambdas) {
    int64_t n = c->n_layer;
    g->resid_lambdas = tyr_params_add_at(s, &g->params, "resid_lambdas",
                                         tyr_ones_at(s, tyr_default_dtype(), dev, 1, &n));
    g->x0_lambdas = tyr_params_add_at(s, &g->params, "x0_lambdas",
                                      tyr_zeros_at(s, tyr_default_dtype(), dev, 1, &n));
    if (!g->resid_lambdas || !g->x0_lambdas) {
      st = TYR_ERR_ARG;
      goto fail;
    }
  }
  if (c->tied_head) {
    g->lm_head.weight = g->wte.weight;
    g->lm_head.in = c->n_embd;
    g->lm_head.out = c->vocab_size;
  } else if ((st = tyr_nn_linear_init_at(s, &g->lm_head, &g->params, "lm_head", c->n_embd,
                                         c->vocab_size, false, std))) {
    goto fail;
  }
  if (c->rope) {
    int64_t hd = c->n_embd / c->n_head;
    if ((st = tyr_rotary_tables_at(s, c->block_size, hd, c->rope_base, tyr_default_dtype(), dev,
                                   &g->rope_cos, &g->rope_sin)))
      goto fail;
    tyr_keep_e(g->rope_cos);
    tyr_keep_e(g->rope_sin);
  }
  tyr_set_default_device(prev_dev);
  return 0;
fail:
  tyr_set_default_device(prev_dev);
  tyr_gpt_free(g);
  return st ? st : TYR_ERR_ARG;
}

void tyr_gpt_free(tyr_gpt *g) {
  tyr_params_free(&g->params);
  free(g->blocks);
  tyr_tensor_free(g->rope_cos);
  tyr_tensor_free(g->rope_sin);
  memset(g, 0, sizeof *g);
}

/* ---- mixed precision: the module structs with their weights cast ---------- */
/* The dtype the blocks and the head compute in: compute_dtype when it is
   a 16-bit float other than the parameters' dtype, else theirs. */
tyr_dtype tyr_gpt_compute_dtype(const tyr_gpt *g) {
  tyr_dtype c = g->cfg.compute_dtype, p = g->wte.weight->dtype;
  return (c == TYR_BF16 || c == TYR_F16) ? c : p;
}

/* t as dt (recorded: the gradient flows back to t in t's dtype) */
static tyr_tensor *cast_to(tyr_site s, tyr_tensor *t, tyr_dtype dt) {
  return t && t->dtype != dt ? tyr_to_dtype_at(s, t, dt) : t;
}

/* Adds m's weight and bias (those not of dt) to the casts of a block */
static void linear_slots(tyr_nn_linear *m, tyr_dtype dt, tyr_tensor ***slots, int *n) {
  if (m->weight && m->weight->dtype != dt) slots[(*n)++] = &m->weight;
  if (m->bias && m->bias->dtype != dt) slots[(*n)++] = &m->bias;
}

/* Adds the weights and biases of b's linear layers (at most 8) that a
   forward in dt casts; the norms stay in the parameters' dtype. */
static void block_slots(tyr_gpt_block *b, tyr_dtype dt, tyr_tensor ***slots, int *n) {
  if (b->attn.cfg.fused_qkv) {
    linear_slots(&b->attn.qkv, dt, slots, n);
  } else {
    linear_slots(&b->attn.q, dt, slots, n);
    linear_slots(&b->attn.k, dt, slots, n);
    linear_slots(&b->attn.v, dt, slots, n);
  }
  linear_slots(&b->attn.proj, dt, slots, n);
  linear_slots(&b->mlp.fc, dt, slots, n);
  linear_slots(&b->mlp.proj, dt, slots, n);
}

/* *slots[i] = *slots[i] as dt for the n slots, with one tyr_to_dtype_many
   (recorded: the gradients flow back in the parameters' dtype): a launch or
   two on a GPU instead of one a tensor, where a small model's step is
   mostly launches.  On failure every slot is NULL.  0 or the status. */
static int cast_slots(tyr_site s, tyr_dtype dt, tyr_tensor ***slots, int n) {
  tyr_tensor **src = malloc((size_t)(n > 0 ? n : 1) * sizeof *src);
  tyr_tensor **out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
  int rc = src && out ? 0 : tyr_raise(TYR_ERR_MEMORY, s, "tyr_gpt_forward", "out of host memory");
  if (rc == 0) {
    for (int i = 0; i < n; i++) src[i] = *slots[i];
    rc = tyr_to_dtype_many_at(s, n, src, dt, out);
  }
  for (int i = 0; i < n; i++) *slots[i] = rc == 0 ? out[i] : NULL;
  free(src);
  free(out);
  return rc;
}

tyr_gpt_block tyr_gpt_block_as(tyr_site s, const tyr_gpt_block *b, tyr_dtype dt) {
  tyr_gpt_block r = *b;
  tyr_tensor **slots[8];
  int n = 0;
  block_slots(&r, dt, slots, &n);
  cast_slots(s, dt, slots, n);
  return r;
}

/* blks[l] = tyr_gpt_block_as(&g->blocks[l], dt) for every block, and *head
   the head's weight as dt when head is non-NULL, all in one cast_slots.
   0 or the status. */
static int gpt_blocks_as(tyr_site s, tyr_gpt *g, tyr_dtype dt, tyr_gpt_block *blks,
                         tyr_tensor **head) {
  int64_t L = g->cfg.n_layer;
  tyr_tensor ***slots = malloc((size_t)(8 * L + 1) * sizeof *slots);
  if (!slots) return tyr_raise(TYR_ERR_MEMORY, s, "tyr_gpt_forward", "out of host memory");
  int n = 0;
  for (int64_t l = 0; l < L; l++) {
    blks[l] = g->blocks[l];
    block_slots(&blks[l], dt, slots, &n);
  }
  if (head) {
    *head = g->lm_head.weight;
    if (*head && (*head)->dtype != dt) slots[n++] = head;
  }
  int rc = cast_slots(s, dt, slots, n);
  free(slots);
  return rc;
}

tyr_tensor *tyr_gpt_embed_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, int64_t pos0, bool training) {
  const tyr_gpt_config *c = &g->cfg;
  int64_t T = idx->shape[idx->rank - 1];
  tyr_nn_dropout drop = {c->dropout};
  /* the embeddings, like the residual stream, in the parameters' dtype */
  tyr_tensor *x = tyr_nn_embedding_forward_at(s, &g->wte, idx);
  if (!x) return NULL;
  if (c->learned_pos) {
    tyr_tensor *pos = tyr_arange_at(s, TYR_I64, g->device, (double)pos0, (double)(pos0 + T), 1);
    tyr_tensor *pe = tyr_nn_embedding_forward_at(s, &g->wpe, pos); /* [T, C] */
    x = tyr_add_at(s, x, tyr_expand_at(s, pe, 3, x->shape));
  }
  if (x && c->embed_norm)
    x = c->norm == TYR_NORM_RMS ? tyr_rms_norm_at(s, x, NULL, c->norm_eps)
                                : tyr_layer_norm_at(s, x, NULL, NULL, c->norm_eps);
  return x ? tyr_nn_dropout_forward_at(s, &drop, x, training) : NULL;
}

/* lambda[l] as a tensor of x's shape and dtype */
static tyr_tensor *lambda_at(tyr_site s, tyr_tensor *lam, int64_t l, tyr_tensor *x) {
  tyr_tensor *v = cast_to(s, tyr_narrow_at(s, lam, 0, l, 1), x->dtype);
  v = tyr_reshape_at(s, v, 3, (int64_t[]){1, 1, 1});
  return tyr_expand_at(s, v, x->rank, x->shape);
}

tyr_tensor *tyr_gpt_mix_at(tyr_site s, tyr_gpt *g, int64_t l, tyr_tensor *x, tyr_tensor *x0) {
  if (!g->cfg.layer_lambdas || !x || !x0) return x;
  return tyr_add_at(s, tyr_mul_at(s, lambda_at(s, g->resid_lambdas, l, x), x),
                    tyr_mul_at(s, lambda_at(s, g->x0_lambdas, l, x0), x0));
}

/* The norm m of *x + y (of *x when y is NULL) in dtype dt; *x becomes the
   sum.  NULL (and *x NULL) on error. */
static tyr_tensor *norm_residual(tyr_site s, const tyr_nn_norm *m, tyr_tensor **x, tyr_tensor *y,
                                 tyr_dtype dt) {
  if (!y) return tyr_nn_norm_forward_to_at(s, m, *x, dt);
  tyr_tensor *sum = NULL, *h = tyr_nn_norm_residual_forward_to_at(s, m, *x, y, dt, &sum);
  *x = sum;
  return h;
}

/* tyr_gpt_hidden, and the head's weight as the compute dtype in *head when
   head is non-NULL (cast with the blocks' weights) */
static tyr_tensor *gpt_hidden(tyr_site s, tyr_gpt *g, tyr_tensor *idx, bool training,
                              tyr_tensor **head) {
  const tyr_gpt_config *c = &g->cfg;
  if (!idx) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_gpt_forward", "idx is NULL");
    return NULL;
  }
  char b[160];
  if (idx->rank != 2 || idx->shape[1] > c->block_size || idx->shape[1] < 1) {
    tyr_raise(TYR_ERR_SHAPE, s, "tyr_gpt_forward",
              "idx must be [B, T] with 1 <= T <= block_size (%lld), got %s",
              (long long)c->block_size, tyr_shape_str(idx->shape, idx->rank, b, sizeof b));
    return NULL;
  }
  tyr_dtype dt = tyr_gpt_compute_dtype(g);
  tyr_nn_dropout drop = {c->dropout};
  /* Mixed precision as autocast does it: the residual stream, the
     embeddings and the norms stay in the parameters' dtype; each norm
     writes its output in the compute dtype for the matmuls, attention and
     MLP that follow (tyr_layer_norm_to), and their outputs are widened as
     they are added to the stream (tyr_residual_add), so that neither an f32
     copy of a norm's output nor of a block's output is made and kept for
     backward (tyr_gpt_block_as casts the linear layers' weights only). */
  tyr_tensor *x = tyr_gpt_embed_at(s, g, idx, 0, training);
  if (!x) return NULL;
  tyr_tensor *x0 = x;
  tyr_tensor *rcos = cast_to(s, g->rope_cos, dt), *rsin = cast_to(s, g->rope_sin, dt);
  tyr_gpt_block *blks = malloc((size_t)c->n_layer * sizeof *blks);
  if (!blks) {
    tyr_raise(TYR_ERR_MEMORY, s, "tyr_gpt_forward", "out of host memory");
    return NULL;
  }
  if (gpt_blocks_as(s, g, dt, blks, head) != 0) {
    free(blks);
    return NULL;
  }
  /* Each branch's output (y: the attention's, the MLP's) is added to the
     stream by the next norm's kernel (tyr_nn_norm_residual_forward_to):
     one kernel and one read of the stream less per norm than an addition
     followed by the norm. */
  tyr_tensor *y = NULL;
  bool failed = false;
  for (int64_t l = 0; l < c->n_layer && !failed; l++) {
    tyr_gpt_block blk = blks[l];
    if (y && g->cfg.layer_lambdas) { /* the mix reads the stream first */
      x = tyr_residual_add_at(s, x, y);
      y = NULL;
    }
    x = x ? tyr_gpt_mix_at(s, g, l, x, x0) : NULL;
    tyr_tensor *h = x ? norm_residual(s, &blk.ln1, &x, y, dt) : NULL;
    tyr_tensor *a = h ? tyr_nn_attention_forward_at(s, &blk.attn, h, rcos, rsin, training) : NULL;
    y = a ? tyr_nn_dropout_forward_at(s, &drop, a, training) : NULL;
    h = y ? norm_residual(s, &blk.ln2, &x, y, dt) : NULL;
    tyr_tensor *m = h ? tyr_nn_mlp_forward_at(s, &blk.mlp, h) : NULL;
    y = m ? tyr_nn_dropout_forward_at(s, &drop, m, training) : NULL;
    failed = !y;
  }
  free(blks);
  return x && !failed ? norm_residual(s, &g->ln_f, &x, y, dt) : NULL;
}

tyr_tensor *tyr_gpt_hidden_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, bool training) {
  return gpt_hidden(s, g, idx, training, NULL);
}

tyr_tensor *tyr_gpt_forward_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, tyr_tensor *targets,
                               tyr_tensor **loss, bool training) {
  tyr_tensor *head = NULL;
  tyr_tensor *h = gpt_hidden(s, g, idx, training, &head);
  if (!h) return NULL;
  tyr_tensor *logits = tyr_linear_at(s, h, head, NULL);
  if (logits && g->cfg.logit_softcap > 0) logits = tyr_softcap_at(s, logits, g->cfg.logit_softcap);
  if (logits && targets && loss) {
    /* the loss from 16-bit logits in f32 */
    tyr_dtype ldt = logits->dtype == TYR_BF16 || logits->dtype == TYR_F16 ? TYR_F32 : logits->dtype;
    *loss = tyr_cross_entropy_at(s, cast_to(s, logits, ldt), targets, -1);
  }
  return logits;
}

tyr_tensor *tyr_gpt_loss_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, tyr_tensor *targets,
                            bool training) {
  if (!targets) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_gpt_loss", "targets is NULL");
    return NULL;
  }
  if (g->cfg.logit_softcap > 0) {
    tyr_tensor *loss = NULL;
    return tyr_gpt_forward_at(s, g, idx, targets, &loss, training) ? loss : NULL;
  }
  tyr_tensor *head = NULL;
  tyr_tensor *h = gpt_hidden(s, g, idx, training, &head);
  if (!h) return NULL;
  return tyr_linear_cross_entropy_at(s, h, head, targets, -1);
}

double tyr_gpt_flops_per_token(const tyr_gpt *g, int64_t T) {
  const tyr_gpt_config *c = &g->cfg;
  double n = (double)tyr_params_numel(&g->params);
  /* position lookups cost no FLOPs; with a tied head, wte's parameters
     are counted once, for the head's matmul (the token lookup is free) */
  if (c->learned_pos) n -= (double)(c->block_size * c->n_embd);
  double attn = 12.0 * (double)c->n_layer * (double)c->n_embd * (double)T;
  return 6.0 * n + attn;
}
