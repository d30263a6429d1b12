/* Modules: Linear, Embedding, LayerNorm/RMSNorm, activations, Dropout, MLP,
 * causal self-attention. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tyr/nn.h"
#include "tyr/tyr.h"

#define NAME(buf, prefix, leaf)                                                                    \
  snprintf((buf), sizeof(buf), "%s%s%s", (prefix), (prefix)[0] ? "." : "", (leaf))

static tyr_tensor *normal(tyr_site s, int rank, const int64_t *shape, double std) {
  return tyr_randn_at(s, tyr_default_dtype(), tyr_default_device(), rank, shape, 0.0, std);
}

static tyr_tensor *uniform(tyr_site s, int rank, const int64_t *shape, double bound) {
  return tyr_rand_at(s, tyr_default_dtype(), tyr_default_device(), rank, shape, -bound, bound);
}

int tyr_nn_linear_init_at(tyr_site s, tyr_nn_linear *m, tyr_params *ps, const char *prefix,
                          int64_t in, int64_t out, bool bias, double std) {
  char name[TYR_PARAM_NAME_MAX + 16];
  memset(m, 0, sizeof *m);
  if (in <= 0 || out <= 0)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_nn_linear_init",
                     "%s: sizes must be positive (in %lld, out %lld)", prefix, (long long)in,
                     (long long)out);
  m->in = in;
  m->out = out;
  /* PyTorch's nn.Linear: kaiming_uniform_(a=sqrt(5)) gives the bound
   * gain * sqrt(3 / in) with gain = sqrt(2 / (1 + 5)), i.e. 1 / sqrt(in);
   * the bias is U(-1/sqrt(in), 1/sqrt(in)) too */
  double bound = 1.0 / sqrt((double)in);
  NAME(name, prefix, "weight");
  m->weight = tyr_params_add_at(s, ps, name,
                                std > 0 ? normal(s, 2, (int64_t[]){out, in}, std)
                                        : uniform(s, 2, (int64_t[]){out, in}, bound));
  if (!m->weight) return TYR_ERR_ARG;
  if (bias) {
    NAME(name, prefix, "bias");
    m->bias = tyr_params_add_at(
        s, ps, name,
        std > 0 ? tyr_zeros_at(s, tyr_default_dtype(), tyr_default_device(), 1, &out)
                : uniform(s, 1, &out, bound));
    if (!m->bias) return TYR_ERR_ARG;
  }
  return 0;
}

tyr_tensor *tyr_nn_linear_forward_at(tyr_site s, const tyr_nn_linear *m, tyr_tensor *x) {
  return tyr_linear_at(s, x, m->weight, m->bias);
}

int tyr_nn_embedding_init_at(tyr_site s, tyr_nn_embedding *m, tyr_params *ps, const char *prefix,
                             int64_t num, int64_t dim, double std) {
  char name[TYR_PARAM_NAME_MAX + 16];
  memset(m, 0, sizeof *m);
  if (num <= 0 || dim <= 0)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_nn_embedding_init", "%s: sizes must be positive", prefix);
  m->num = num;
  m->dim = dim;
  NAME(name, prefix, "weight");
  m->weight =
      tyr_params_add_at(s, ps, name, normal(s, 2, (int64_t[]){num, dim}, std > 0 ? std : 1.0));
  return m->weight ? 0 : TYR_ERR_ARG;
}

tyr_tensor *tyr_nn_embedding_forward_at(tyr_site s, const tyr_nn_embedding *m, tyr_tensor *idx) {
  return tyr_embedding_at(s, m->weight, idx);
}

int tyr_nn_norm_init_at(tyr_site s, tyr_nn_norm *m, tyr_params *ps, const char *prefix,
                        tyr_norm_kind kind, int64_t dim, bool weight, bool bias, double eps) {
  char name[TYR_PARAM_NAME_MAX + 16];
  memset(m, 0, sizeof *m);
  m->kind = kind;
  m->dim = dim;
  m->eps = eps > 0 ? eps : 1e-5;
  if (weight) {
    NAME(name, prefix, "weight");
    m->weight = tyr_params_add_at(
        s, ps, name, tyr_ones_at(s, tyr_default_dtype(), tyr_default_device(), 1, &dim));
    if (!m->weight) return TYR_ERR_ARG;
  }
  if (bias && kind == TYR_NORM_LAYER) {
    NAME(name, prefix, "bias");
    m->bias = tyr_params_add_at(
        s, ps, name, tyr_zeros_at(s, tyr_default_dtype(), tyr_default_device(), 1, &dim));
    if (!m->bias) return TYR_ERR_ARG;
  }
  return 0;
}

tyr_tensor *tyr_nn_norm_forward_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x) {
  return m->kind == TYR_NORM_LAYER ? tyr_layer_norm_at(s, x, m->weight, m->bias, m->eps)
                                   : tyr_rms_norm_at(s, x, m->weight, m->eps);
}

tyr_tensor *tyr_nn_norm_forward_to_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x,
                                      tyr_dtype dtype) {
  return m->kind == TYR_NORM_LAYER ? tyr_layer_norm_to_at(s, x, m->weight, m->bias, m->eps, dtype)
                                   : tyr_rms_norm_to_at(s, x, m->weight, m->eps, dtype);
}

tyr_tensor *tyr_nn_norm_residual_forward_to_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x,
                                               tyr_tensor *y, tyr_dtype dtype, tyr_tensor **sum) {
  return m->kind == TYR_NORM_LAYER
             ? tyr_residual_add_layer_norm_to_at(s, x, y, m->weight, m->bias, m->eps, dtype, sum)
             : tyr_residual_add_rms_norm_to_at(s, x, y, m->weight, m->eps, dtype, sum);
}

tyr_tensor *tyr_nn_act_at(tyr_site s, tyr_act_kind act, tyr_tensor *x) {
  switch (act) {
  case TYR_ACT_GELU:
    return tyr_gelu_at(s, x);
  case TYR_ACT_GELU_TANH:
    return tyr_gelu_tanh_at(s, x);
  case TYR_ACT_RELU2:
    return tyr_relu2_at(s, x);
  case TYR_ACT_RELU:
    return tyr_relu_at(s, x);
  case TYR_ACT_SILU:
    return tyr_silu_at(s, x);
  }
  return NULL;
}

bool tyr_act_kind_parse(const char *name, tyr_act_kind *out) {
  static const struct {
    const char *n;
    tyr_act_kind k;
  } t[] = {{"gelu", TYR_ACT_GELU},
           {"gelu_tanh", TYR_ACT_GELU_TANH},
           {"relu2", TYR_ACT_RELU2},
           {"relu", TYR_ACT_RELU},
           {"silu", TYR_ACT_SILU}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (name && strcmp(name, t[i].n) == 0) {
      *out = t[i].k;
      return true;
    }
  return false;
}

tyr_tensor *tyr_nn_dropout_forward_at(tyr_site s, const tyr_nn_dropout *m, tyr_tensor *x,
                                      bool training) {
  if (!training || m->p <= 0) return x;
  return tyr_dropout_at(s, x, m->p, training);
}

int tyr_nn_mlp_init_at(tyr_site s, tyr_nn_mlp *m, tyr_params *ps, const char *prefix, int64_t dim,
                       int64_t hidden, tyr_act_kind act, bool bias, double std, double proj_std) {
  char name[TYR_PARAM_NAME_MAX + 16];
  memset(m, 0, sizeof *m);
  m->act = act;
  NAME(name, prefix, "fc");
  int st = tyr_nn_linear_init_at(s, &m->fc, ps, name, dim, hidden, bias, std);
  if (st) return st;
  NAME(name, prefix, "proj");
  return tyr_nn_linear_init_at(s, &m->proj, ps, name, hidden, dim, bias, proj_std);
}

tyr_tensor *tyr_nn_mlp_forward_at(tyr_site s, const tyr_nn_mlp *m, tyr_tensor *x) {
  /* one op: the activation in the GEMMs where the backend fuses it */
  return tyr_mlp_at(s, x, m->fc.weight, m->fc.bias, m->proj.weight, m->proj.bias, m->act);
}

int tyr_nn_attention_init_at(tyr_site s, tyr_nn_attention *m, tyr_params *ps, const char *prefix,
                             tyr_nn_attention_config cfg, double std, double proj_std) {
  const char *op = "tyr_nn_attention_init";
  char name[TYR_PARAM_NAME_MAX + 16];
  memset(m, 0, sizeof *m);
  if (cfg.n_kv_head <= 0) cfg.n_kv_head = cfg.n_head;
  if (cfg.n_head <= 0 || cfg.dim % cfg.n_head)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: %lld heads do not divide the width %lld", prefix,
                     (long long)cfg.n_head, (long long)cfg.dim);
  if (cfg.n_head % cfg.n_kv_head)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: %lld kv heads do not divide %lld heads", prefix,
                     (long long)cfg.n_kv_head, (long long)cfg.n_head);
  m->cfg = cfg;
  m->head_dim = cfg.dim / cfg.n_head;
  if (cfg.rope && m->head_dim % 2)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: rotary embedding needs an even head size, got %lld",
                     prefix, (long long)m->head_dim);
  int64_t kvdim = cfg.n_kv_head * m->head_dim;
  int st;
  if (cfg.fused_qkv) {
    NAME(name, prefix, "qkv");
    if ((st = tyr_nn_linear_init_at(s, &m->qkv, ps, name, cfg.dim, cfg.dim + 2 * kvdim, cfg.bias,
                                    std)))
      return st;
  } else {
    NAME(name, prefix, "q");
    if ((st = tyr_nn_linear_init_at(s, &m->q, ps, name, cfg.dim, cfg.dim, cfg.bias, std)))
      return st;
    NAME(name, prefix, "k");
    if ((st = tyr_nn_linear_init_at(s, &m->k, ps, name, cfg.dim, kvdim, cfg.bias, std))) return st;
    NAME(name, prefix, "v");
    if ((st = tyr_nn_linear_init_at(s, &m->v, ps, name, cfg.dim, kvdim, cfg.bias, std))) return st;
  }
  NAME(name, prefix, "proj");
  return tyr_nn_linear_init_at(s, &m->proj, ps, name, cfg.dim, cfg.dim, cfg.bias, proj_std);
}

/* [B, T, H*D] -> [B, H, T, D] */
static tyr_tensor *heads(tyr_site s, tyr_tensor *x, int64_t H, int64_t D) {
  tyr_tensor *r = tyr_reshape_at(s, x, 4, (int64_t[]){x->shape[0], x->shape[1], H, D});
  return r ? tyr_transpose_at(s, r, 1, 2) : NULL;
}

int tyr_nn_attention_project_at(tyr_site s, const tyr_nn_attention *m, tyr_tensor *x,
                                tyr_tensor *cos, tyr_tensor *sin, int64_t pos0, tyr_tensor **q,
                                tyr_tensor **k, tyr_tensor **v) {
  const tyr_nn_attention_config *c = &m->cfg;
  int64_t T = x->shape[1], D = m->head_dim, kvdim = c->n_kv_head * D;
  tyr_tensor *qq, *kk, *vv;
  if (c->fused_qkv) {
    tyr_tensor *qkv = tyr_nn_linear_forward_at(s, &m->qkv, x);
    if (!qkv) return TYR_ERR_ARG;
    qq = tyr_narrow_at(s, qkv, 2, 0, c->dim);
    kk = tyr_narrow_at(s, qkv, 2, c->dim, kvdim);
    vv = tyr_narrow_at(s, qkv, 2, c->dim + kvdim, kvdim);
  } else {
    qq = tyr_nn_linear_forward_at(s, &m->q, x);
    kk = tyr_nn_linear_forward_at(s, &m->k, x);
    vv = tyr_nn_linear_forward_at(s, &m->v, x);
  }
  if (!qq || !kk || !vv) return TYR_ERR_ARG;
  qq = heads(s, qq, c->n_head, D);
  kk = heads(s, kk, c->n_kv_head, D);
  vv = heads(s, vv, c->n_kv_head, D);
  if (c->qk_norm) {
    qq = tyr_rms_norm_at(s, qq, NULL, 1e-6);
    kk = tyr_rms_norm_at(s, kk, NULL, 1e-6);
  }
  if (c->rope) {
    tyr_tensor *cs = tyr_narrow_at(s, cos, 0, pos0, T), *sn = tyr_narrow_at(s, sin, 0, pos0, T);
    qq = tyr_rotary_at(s, qq, cs, sn);
    kk = tyr_rotary_at(s, kk, cs, sn);
  }
  if (!qq || !kk || !vv) return TYR_ERR_ARG;
  *q = qq;
  *k = kk;
  *v = vv;
  return 0;
}

tyr_tensor *tyr_nn_attention_forward_at(tyr_site s, const tyr_nn_attention *m, tyr_tensor *x,
                                        tyr_tensor *cos, tyr_tensor *sin, bool training) {
  const tyr_nn_attention_config *c = &m->cfg;
  if (!x) return NULL;
  if (x->rank != 3 || x->shape[2] != c->dim) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, "tyr_nn_attention_forward", "x must be [B, T, %lld], got %s",
              (long long)c->dim, tyr_shape_str(x->shape, x->rank, b, sizeof b));
    return NULL;
  }
  int64_t B = x->shape[0], T = x->shape[1];
  tyr_sdpa_opts opts = {.causal = true, .mask = NULL, .window = c->window, .scale = 0};
  (void)training; /* dropout is applied to the block's residual branches */
  if (c->fused_qkv && !c->qk_norm && !c->rope) { /* attention reads the packed projection */
    tyr_tensor *qkv = tyr_nn_linear_forward_at(s, &m->qkv, x);
    tyr_tensor *y = qkv ? tyr_sdpa_qkv_at(s, qkv, c->n_head, c->n_kv_head, &opts) : NULL;
    return y ? tyr_nn_linear_forward_at(s, &m->proj, y) : NULL;
  }
  tyr_tensor *q, *k, *v;
  if (tyr_nn_attention_project_at(s, m, x, cos, sin, 0, &q, &k, &v) != 0) return NULL;
  tyr_tensor *y = tyr_sdpa_at(s, q, k, v, &opts);
  if (!y) return NULL;
  y = tyr_reshape_at(s, tyr_transpose_at(s, y, 1, 2), 3, (int64_t[]){B, T, c->dim});
  return y ? tyr_nn_linear_forward_at(s, &m->proj, y) : NULL;
}
