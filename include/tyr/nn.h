/* tyr/nn.h - modules as plain structs with init and forward functions.
 *
 * Modules keep erased parameters (their sizes may come from a run-time
 * config) registered in a tyr_params collection under dotted names; a
 * program whose sizes are constants re-types them with tyr_cast and gets
 * the compiler's shape checks (see examples/train_gpt/model_static.c). */
#ifndef TYR_NN_H
#define TYR_NN_H
#include "tyr/ops_conv.h"
#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialisation.  Every module's init takes a `std`:
 *   TYR_INIT_PYTORCH (0, or any value <= 0): PyTorch's defaults:
 *     Linear     weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))
 *                (nn.Linear's kaiming_uniform_(a=sqrt(5)) and its bias rule)
 *     Embedding  weight ~ N(0, 1)
 *   std > 0: the GPT-2 scheme: weights ~ N(0, std), biases zero (tyr_gpt
 *     uses std = 0.02 and std / sqrt(2 * n_layer) for the projections into
 *     the residual stream, the proj_std arguments below).
 * Norms always start at weight one, bias zero, as in PyTorch.  The
 * exception: tyr_nn_conv2d's default is He initialisation (weights
 * N(0, sqrt(2 / fan_in)), bias zero), not nn.Conv2d's uniform rule.
 * Random numbers come from the global generator (tyr_manual_seed). */
#define TYR_INIT_PYTORCH 0.0

/* y = x·Wᵀ + b; weight [out, in], bias [out] or NULL */
typedef struct tyr_nn_linear {
  tyr_tensor *weight, *bias;
  int64_t in, out;
} tyr_nn_linear;
/* std: TYR_INIT_PYTORCH, or > 0 for N(0, std) weights and a zero bias. */
int tyr_nn_linear_init_at(tyr_site s, tyr_nn_linear *m, tyr_params *ps, const char *prefix,
                          int64_t in, int64_t out, bool bias, double std);
/* x [.., in] -> [.., out], a new tensor owned like any op's result (by the
 * innermost scope); NULL after raising.  The same holds for every _forward_at. */
tyr_tensor *tyr_nn_linear_forward_at(tyr_site s, const tyr_nn_linear *m, tyr_tensor *x);

typedef struct tyr_nn_embedding {
  tyr_tensor *weight; /* [num, dim] */
  int64_t num, dim;
} tyr_nn_embedding;
/* std: TYR_INIT_PYTORCH for N(0, 1), or > 0 for N(0, std); the weight is
 * registered in ps as prefix.weight (ps owns it); 0 or the status.
 * forward: idx [..] (i32/i64) -> [.., dim]. */
int tyr_nn_embedding_init_at(tyr_site s, tyr_nn_embedding *m, tyr_params *ps, const char *prefix,
                             int64_t num, int64_t dim, double std);
tyr_tensor *tyr_nn_embedding_forward_at(tyr_site s, const tyr_nn_embedding *m, tyr_tensor *idx);

typedef enum tyr_norm_kind { TYR_NORM_LAYER, TYR_NORM_RMS } tyr_norm_kind;
/* LayerNorm (weight and optional bias) or RMSNorm (optional weight). */
typedef struct tyr_nn_norm {
  tyr_norm_kind kind;
  tyr_tensor *weight, *bias;
  int64_t dim;
  double eps;
} tyr_nn_norm;
/* weight (ones) and bias (zeros) as asked, registered in ps; 0 or the
 * status.  forward: [.., dim] -> the same shape. */
int tyr_nn_norm_init_at(tyr_site s, tyr_nn_norm *m, tyr_params *ps, const char *prefix,
                        tyr_norm_kind kind, int64_t dim, bool weight, bool bias, double eps);
tyr_tensor *tyr_nn_norm_forward_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x);
/* The same with the result in dtype (tyr_layer_norm_to, tyr_rms_norm_to):
 * the mixed-precision norm, parameters and x in f32, result in bf16/f16. */
tyr_tensor *tyr_nn_norm_forward_to_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x,
                                      tyr_dtype dtype);
/* The norm of x + y, with *sum = x + y (the residual stream): one kernel
 * where the backend fuses them (tyr_residual_add_layer_norm_to). */
tyr_tensor *tyr_nn_norm_residual_forward_to_at(tyr_site s, const tyr_nn_norm *m, tyr_tensor *x,
                                               tyr_tensor *y, tyr_dtype dtype, tyr_tensor **sum);

typedef enum tyr_act_kind {
  TYR_ACT_GELU,
  TYR_ACT_GELU_TANH,
  TYR_ACT_RELU2,
  TYR_ACT_RELU,
  TYR_ACT_SILU
} tyr_act_kind;
/* The activation act of x (same shape); parse: "gelu", "gelu_tanh", "relu2",
 * "relu", "silu" -> *out, false on another name. */
tyr_tensor *tyr_nn_act_at(tyr_site s, tyr_act_kind act, tyr_tensor *x);
bool tyr_act_kind_parse(const char *name, tyr_act_kind *out);
/* A feed-forward block as one op: act(x @ w1^T + b1) @ w2^T + b2 with x
 * [.., C], w1 [F, C], b1 [F] or NULL, w2 [C2, F], b2 [C2] or NULL ->
 * [.., C2].  The values and gradients of tyr_linear, the activation and
 * tyr_linear; where the backend fuses the activation into the GEMMs (the
 * CPU in f32/f64, CUDA for gelu_tanh in bf16/f16) it is one graph node and
 * no separate pass applies the activation or its derivative
 * (src/ops/mlp.c; tyr_mlp_gelu_tanh in tyr/ops_nn.h is this op with
 * TYR_ACT_GELU_TANH). */
tyr_tensor *tyr_mlp_at(tyr_site s, tyr_tensor *x, tyr_tensor *w1, tyr_tensor *b1, tyr_tensor *w2,
                       tyr_tensor *b2, tyr_act_kind act);
#define tyr_mlp_e(x, w1, b1, w2, b2, act) tyr_mlp_at(TYR_SITE, (x), (w1), (b1), (w2), (b2), (act))

typedef struct tyr_nn_dropout {
  double p;
} tyr_nn_dropout;
/* When training (and p > 0): a new tensor, x with elements zeroed with
 * probability p and the rest scaled by 1/(1-p); otherwise x itself. */
tyr_tensor *tyr_nn_dropout_forward_at(tyr_site s, const tyr_nn_dropout *m, tyr_tensor *x,
                                      bool training);

/* fc (dim -> hidden), activation, proj (hidden -> dim) */
typedef struct tyr_nn_mlp {
  tyr_nn_linear fc, proj;
  tyr_act_kind act;
} tyr_nn_mlp;
/* prefix.fc and prefix.proj registered in ps; 0 or the status.  forward:
 * [.., dim] -> [.., dim]. */
int tyr_nn_mlp_init_at(tyr_site s, tyr_nn_mlp *m, tyr_params *ps, const char *prefix, int64_t dim,
                       int64_t hidden, tyr_act_kind act, bool bias, double std, double proj_std);
tyr_tensor *tyr_nn_mlp_forward_at(tyr_site s, const tyr_nn_mlp *m, tyr_tensor *x);

/* Causal self-attention: fused qkv projection or separate q, k, v; grouped
 * KV heads; optional rotary embedding and QK-norm (RMS, no weight). */
typedef struct tyr_nn_attention_config {
  int64_t dim, n_head, n_kv_head;
  bool fused_qkv, bias, rope, qk_norm;
  double rope_base;
  int64_t window; /* sliding window (0: none) */
  double dropout;
} tyr_nn_attention_config;
typedef struct tyr_nn_attention {
  tyr_nn_attention_config cfg;
  tyr_nn_linear qkv, q, k, v, proj;
  int64_t head_dim;
} tyr_nn_attention;
/* The projections registered in ps under prefix; 0 or the status. */
int tyr_nn_attention_init_at(tyr_site s, tyr_nn_attention *m, tyr_params *ps, const char *prefix,
                             tyr_nn_attention_config cfg, double std, double proj_std);
/* x [B, T, dim]; cos/sin [T, head_dim/2] when rope (else NULL) */
tyr_tensor *tyr_nn_attention_forward_at(tyr_site s, const tyr_nn_attention *m, tyr_tensor *x,
                                        tyr_tensor *cos, tyr_tensor *sin, bool training);
/* The attention's inputs for x [B, T, dim] at positions pos0 .. pos0 + T - 1:
 * q [B, n_head, T, D], k and v [B, n_kv_head, T, D] (QK-norm and rotary
 * applied when configured; cos/sin cover those positions).  What
 * tyr_nn_attention_forward and a KV-cache decoder share.  0 or the status. */
int tyr_nn_attention_project_at(tyr_site s, const tyr_nn_attention *m, tyr_tensor *x,
                                tyr_tensor *cos, tyr_tensor *sin, int64_t pos0, tyr_tensor **q,
                                tyr_tensor **k, tyr_tensor **v);

/* ---- vision modules and train / eval mode (src/nn/conv_modules.c) ----------
 * A tyr_nn_mode is shared by the modules of one model that behave
 * differently when training (BatchNorm uses the batch's statistics and
 * updates its running ones; Dropout drops): the model flips it once with
 * tyr_nn_mode_train.  A module given a NULL mode is always training. */
typedef struct tyr_nn_mode {
  bool training;
} tyr_nn_mode;
void tyr_nn_mode_train(tyr_nn_mode *m, bool training);
bool tyr_nn_mode_training(const tyr_nn_mode *m);
/* Dropout in the mode's state (tyr_nn_dropout_forward with training read
 * from mode). */
tyr_tensor *tyr_nn_dropout_apply_at(tyr_site s, const tyr_nn_dropout *m, const tyr_nn_mode *mode,
                                    tyr_tensor *x);

/* y = conv2d(x, weight) + bias; weight [out, in/groups, k, k], bias [out] or
 * none.  Weights ~ N(0, std) (std <= 0: He, sqrt(2 / fan_in)). */
typedef struct tyr_nn_conv2d {
  tyr_tensor *weight, *bias;
  int64_t in, out, kernel;
  tyr_conv_opts opts;
} tyr_nn_conv2d;
int tyr_nn_conv2d_init_at(tyr_site s, tyr_nn_conv2d *m, tyr_params *ps, const char *prefix,
                          int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                          int64_t groups, bool bias, double std);
tyr_tensor *tyr_nn_conv2d_forward_at(tyr_site s, const tyr_nn_conv2d *m, tyr_tensor *x);

/* BatchNorm over the channels of [N, C, ...]: weight (ones) and bias
 * (zeros) are parameters; running_mean (zeros) and running_var (ones) are
 * buffers in the same collection ("<prefix>.running_mean", ...), saved in
 * checkpoints, that take no gradient (so optimizers skip them). */
typedef struct tyr_nn_batchnorm2d {
  tyr_tensor *weight, *bias, *running_mean, *running_var;
  int64_t channels;
  double eps, momentum;
  const tyr_nn_mode *mode;
} tyr_nn_batchnorm2d;
/* eps <= 0: 1e-5; momentum <= 0: 0.1 */
int tyr_nn_batchnorm2d_init_at(tyr_site s, tyr_nn_batchnorm2d *m, tyr_params *ps,
                               const char *prefix, int64_t channels, double eps, double momentum,
                               const tyr_nn_mode *mode);
tyr_tensor *tyr_nn_batchnorm2d_forward_at(tyr_site s, const tyr_nn_batchnorm2d *m, tyr_tensor *x);

/* GroupNorm with a per-channel weight (ones) and bias (zeros). */
typedef struct tyr_nn_groupnorm {
  tyr_tensor *weight, *bias;
  int64_t groups, channels;
  double eps;
} tyr_nn_groupnorm;
int tyr_nn_groupnorm_init_at(tyr_site s, tyr_nn_groupnorm *m, tyr_params *ps, const char *prefix,
                             int64_t groups, int64_t channels, double eps);
tyr_tensor *tyr_nn_groupnorm_forward_at(tyr_site s, const tyr_nn_groupnorm *m, tyr_tensor *x);

#define tyr_nn_dropout_apply(m, mode, x) tyr_nn_dropout_apply_at(TYR_SITE, (m), (mode), (x))
#define tyr_nn_conv2d_init(...) tyr_nn_conv2d_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_conv2d_forward(m, x) tyr_nn_conv2d_forward_at(TYR_SITE, (m), (x))
#define tyr_nn_batchnorm2d_init(...) tyr_nn_batchnorm2d_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_batchnorm2d_forward(m, x) tyr_nn_batchnorm2d_forward_at(TYR_SITE, (m), (x))
#define tyr_nn_groupnorm_init(...) tyr_nn_groupnorm_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_groupnorm_forward(m, x) tyr_nn_groupnorm_forward_at(TYR_SITE, (m), (x))

/* ---- GPT ------------------------------------------------------------------ */
typedef struct tyr_gpt_config {
  int64_t vocab_size, block_size, n_layer, n_head, n_kv_head, n_embd, mlp_hidden;
  double dropout;
  bool bias;        /* biases in linear layers and norms */
  bool tied_head;   /* lm_head shares wte */
  bool learned_pos; /* wpe; otherwise rope */
  bool rope, qk_norm;
  double rope_base;
  tyr_norm_kind norm;
  tyr_act_kind act;
  double logit_softcap; /* 0: none */
  double init_std;      /* 0.02 */
  double norm_eps;      /* the norms' epsilon (0: 1e-5) */
  /* Mixed precision, as autocast does it: TYR_BF16 or TYR_F16 runs the
   * matmuls, attention and MLPs of the blocks and the head, and their
   * gradients, in that dtype (each weight cast once per forward), while the
   * embeddings, the residual stream, the norms, the parameters, their
   * gradients and the optimizer stay in the parameters' dtype and the loss
   * is f32 (tyr_gpt_loss).  Any other value (the zero of a memset config is
   * TYR_F32): everything in the parameters' dtype. */
  tyr_dtype compute_dtype;
  /* nanochat's additions, all off by default (the GPT-2 layout, its
   * parameter names and checkpoints stay as they were):
   *   layer_lambdas   learned scalars per layer, resid_lambdas[l] (ones) and
   *                   x0_lambdas[l] (zeros): before block l,
   *                   x = resid_lambdas[l] * x + x0_lambdas[l] * x0, x0 the
   *                   input of the first block
   *   zero_init_proj  the projections into the residual stream (attn.proj,
   *                   mlp.proj) start at zero
   *   norm_no_weight  the norms have no parameters (nanochat's RMSNorm)
   *   embed_norm      the token embedding is normed before the first block */
  bool layer_lambdas, zero_init_proj, norm_no_weight, embed_norm;
} tyr_gpt_config;

/* A config with everything a GPT-2 has, for the given sizes. */
tyr_gpt_config tyr_gpt_config_gpt2(int64_t vocab, int64_t block, int64_t n_layer, int64_t n_head,
                                   int64_t n_embd);
/* Checks a config; raises naming the field (e.g. heads not dividing embd). */
int tyr_gpt_config_check_at(tyr_site s, const tyr_gpt_config *c);

typedef struct tyr_gpt_block {
  tyr_nn_norm ln1, ln2;
  tyr_nn_attention attn;
  tyr_nn_mlp mlp;
} tyr_gpt_block;

typedef struct tyr_gpt {
  tyr_gpt_config cfg;
  tyr_params params;
  tyr_nn_embedding wte, wpe;
  tyr_gpt_block *blocks;
  tyr_nn_norm ln_f;
  tyr_nn_linear lm_head;           /* weight aliases wte when tied */
  tyr_tensor *rope_cos, *rope_sin; /* [block_size, head_dim/2] */
  tyr_device device;
  tyr_tensor *resid_lambdas, *x0_lambdas; /* [n_layer] with layer_lambdas, else NULL */
} tyr_gpt;

/* Checks cfg and makes the model's parameters on dev in g->params (owned by
 * g; tyr_gpt_free frees them).  0 or the status. */
int tyr_gpt_init_at(tyr_site s, tyr_gpt *g, const tyr_gpt_config *cfg, tyr_device dev);
void tyr_gpt_free(tyr_gpt *g);
/* idx [B, T] (i32/i64) -> logits [B, T, V]; with targets [B, T] the mean
 * cross-entropy goes to *loss (NULL targets: *loss untouched). */
tyr_tensor *tyr_gpt_forward_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, tyr_tensor *targets,
                               tyr_tensor **loss, bool training);
/* idx, targets [B, T] -> the mean cross-entropy (a scalar, f32 for f32,
 * bf16 and f16 compute, f64 for f64), through tyr_linear_cross_entropy:
 * the [B, T, V] logits are never kept, only their gradient (one tensor of
 * the compute dtype).  Targets equal to -1 are ignored.  With a logit
 * soft cap it falls back to the logits and tyr_cross_entropy. */
tyr_tensor *tyr_gpt_loss_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, tyr_tensor *targets,
                            bool training);
/* Final hidden states [B, T, C] before the head (for custom heads), in the
 * compute dtype. */
tyr_tensor *tyr_gpt_hidden_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, bool training);
/* The pieces of tyr_gpt_hidden for programs that run the blocks themselves
 * (the KV-cache engine, tyr/models/gpt_engine.h):
 * embed: idx [B, T] at positions pos0 .. pos0+T-1 -> the first block's
 * input [B, T, C] (token and position embeddings, the embedding norm, in
 * the compute dtype); mix: block l's input from the stream x and the first
 * block's input x0 (x itself without layer_lambdas); the dtype the blocks
 * compute in, and a block's modules with their weights cast to it. */
tyr_tensor *tyr_gpt_embed_at(tyr_site s, tyr_gpt *g, tyr_tensor *idx, int64_t pos0, bool training);
tyr_tensor *tyr_gpt_mix_at(tyr_site s, tyr_gpt *g, int64_t l, tyr_tensor *x, tyr_tensor *x0);
tyr_dtype tyr_gpt_compute_dtype(const tyr_gpt *g);
tyr_gpt_block tyr_gpt_block_as(tyr_site s, const tyr_gpt_block *b, tyr_dtype dt);
/* FLOPs of one forward+backward token (6N + attention), for MFU. */
double tyr_gpt_flops_per_token(const tyr_gpt *g, int64_t T);

#define tyr_nn_linear_init(...) tyr_nn_linear_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_linear_forward(m, x) tyr_nn_linear_forward_at(TYR_SITE, (m), (x))
#define tyr_nn_embedding_init(...) tyr_nn_embedding_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_embedding_forward(m, i) tyr_nn_embedding_forward_at(TYR_SITE, (m), (i))
#define tyr_nn_norm_init(...) tyr_nn_norm_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_norm_forward(m, x) tyr_nn_norm_forward_at(TYR_SITE, (m), (x))
#define tyr_nn_norm_forward_to(m, x, dt) tyr_nn_norm_forward_to_at(TYR_SITE, (m), (x), (dt))
#define tyr_nn_norm_residual_forward_to(m, x, y, dt, sum)                                          \
  tyr_nn_norm_residual_forward_to_at(TYR_SITE, (m), (x), (y), (dt), (sum))
#define tyr_nn_mlp_init(...) tyr_nn_mlp_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_mlp_forward(m, x) tyr_nn_mlp_forward_at(TYR_SITE, (m), (x))
#define tyr_nn_attention_init(...) tyr_nn_attention_init_at(TYR_SITE, __VA_ARGS__)
#define tyr_nn_attention_forward(...) tyr_nn_attention_forward_at(TYR_SITE, __VA_ARGS__)
#define tyr_gpt_init(g, cfg, dev) tyr_gpt_init_at(TYR_SITE, (g), (cfg), (dev))
#define tyr_gpt_forward(...) tyr_gpt_forward_at(TYR_SITE, __VA_ARGS__)
#define tyr_gpt_loss(g, idx, targets, training)                                                    \
  tyr_gpt_loss_at(TYR_SITE, (g), (idx), (targets), (training))
#define tyr_gpt_config_check(c) tyr_gpt_config_check_at(TYR_SITE, (c))

#ifdef __cplusplus
}
#endif
#endif
