/* The backend table: every device implements the same set of kernels.
 * Ops (src/ops) check shapes, allocate outputs, record the tape and call
 * these; only backends touch device memory.
 *
 * Conventions: `out` is always a fresh contiguous tensor of the right shape
 * and dtype; inputs may be strided views (stride 0 for expanded dims) unless
 * a kernel says it needs contiguous inputs; all tensors of one call share a
 * device and (unless stated) a dtype.  Float kernels exist for f32 and f64
 * everywhere; the CPU computes bf16/f16 by converting to f32 in src/ops. */
#ifndef TYR_CORE_BACKEND_H
#define TYR_CORE_BACKEND_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_unary_op {
  TYR_UN_NEG,
  TYR_UN_EXP,
  TYR_UN_LOG,
  TYR_UN_SQRT,
  TYR_UN_RSQRT,
  TYR_UN_ABS,
  TYR_UN_TANH,
  TYR_UN_SIGMOID,
  TYR_UN_RELU,
  TYR_UN_RELU2,
  TYR_UN_GELU,      /* exact (erf) */
  TYR_UN_GELU_TANH, /* tanh approximation */
  TYR_UN_SILU,
  TYR_UN_SOFTCAP,     /* p0 * tanh(x / p0) */
  TYR_UN_POW,         /* x ^ p0 */
  TYR_UN_ADD_SCALAR,  /* x + p0 */
  TYR_UN_MUL_SCALAR,  /* x * p0 */
  TYR_UN_RSUB_SCALAR, /* p0 - x */
  TYR_UN_RDIV_SCALAR, /* p0 / x */
  TYR_UN_CLAMP,       /* min(max(x, p0), p1) */
  TYR_UN_SIGN,
  TYR_UN_RECIPROCAL,
  TYR_UN_SQUARE,
  TYR_UN_SIN,
  TYR_UN_COS,
  TYR_UN_SOFTPLUS,   /* log(1 + exp(x)); x above 20: x (PyTorch's threshold) */
  TYR_UN_LEAKY_RELU, /* x > 0 ? x : p0 * x */
  TYR_UN_COUNT
} tyr_unary_op;

typedef enum tyr_binary_op {
  TYR_BIN_ADD,
  TYR_BIN_SUB,
  TYR_BIN_MUL,
  TYR_BIN_DIV,
  TYR_BIN_POW,
  TYR_BIN_MAX,
  TYR_BIN_MIN,
  /* comparisons: out dtype is TYR_BOOL */
  TYR_BIN_EQ,
  TYR_BIN_NE,
  TYR_BIN_LT,
  TYR_BIN_LE,
  TYR_BIN_GT,
  TYR_BIN_GE,
  TYR_BIN_COUNT
} tyr_binary_op;

typedef enum tyr_reduce_op {
  TYR_RED_SUM,
  TYR_RED_MEAN,
  TYR_RED_MAX,
  TYR_RED_MIN,
  TYR_RED_ARGMAX, /* out dtype i64 */
  TYR_RED_ARGMIN, /* out dtype i64 */
  TYR_RED_COUNT
} tyr_reduce_op;

typedef enum tyr_random_kind {
  TYR_RAND_UNIFORM,       /* p0 + (p1 - p0) * U(0,1) */
  TYR_RAND_NORMAL,        /* p0 + p1 * N(0,1) */
  TYR_RAND_INT,           /* integers in [p0, p1) */
  TYR_RAND_BERNOULLI_KEEP /* 1/(1-p0) with probability 1-p0, else 0 (dropout) */
} tyr_random_kind;

/* The geometry of one 2-d convolution (conv1d is H = R = 1): input
 * [N, C, H, W], weight [K, C/groups, R, S], output [N, K, P, Q]. */
typedef struct tyr_conv_geom {
  int64_t N, C, H, W, K, R, S, P, Q;
  int64_t stride[2], pad[2], dil[2], groups;
} tyr_conv_geom;

/* A 2-d pooling window: input [N, C, H, W] -> output [N, C, P, Q].
 * adaptive: row window of output i is [floor(i H / P), ceil((i + 1) H / P))
 * (same for columns) and kernel/stride/pad are unused. */
typedef enum tyr_pool_kind { TYR_POOL_MAX, TYR_POOL_AVG, TYR_POOL_ADAPTIVE_AVG } tyr_pool_kind;
typedef struct tyr_pool_geom {
  tyr_pool_kind kind;
  int64_t N, C, H, W, P, Q;
  int64_t kernel[2], stride[2], pad[2];
} tyr_pool_geom;

typedef struct tyr_backend {
  const char *name;
  /* memory */
  void *(*alloc)(size_t nbytes, tyr_device dev);
  void (*free)(void *p, size_t nbytes, tyr_device dev);
  /* copies between host memory and this device's memory (contiguous bytes) */
  void (*to_host)(void *dst, const void *src, size_t nbytes, tyr_device dev);
  void (*from_host)(void *dst, const void *src, size_t nbytes, tyr_device dev);
  double (*read_scalar)(const tyr_tensor *t);
  void (*synchronize)(tyr_device dev);

  /* out = value (any dtype) */
  void (*fill)(tyr_tensor *out, double value);
  /* out[i] = start + i * step (any dtype) */
  void (*arange)(tyr_tensor *out, double start, double step);
  /* out = src, converting dtype; src any strides; out may be a strided view */
  void (*copy)(tyr_tensor *out, const tyr_tensor *src);
  /* out[i] = src[i] for n pairs of this device, converting dtype as copy
   * does, bit for bit, in as few kernel launches as it can (all contiguous;
   * the sources of one float dtype, the outputs of one float dtype).  NULL:
   * callers loop over copy */
  void (*copy_many)(int n, tyr_tensor *const *outs, const tyr_tensor *const *srcs);
  /* out = random numbers from (seed, counter + i) */
  void (*random)(tyr_tensor *out, tyr_random_kind kind, double p0, double p1, uint64_t seed,
                 uint64_t counter);

  /* elementwise */
  void (*unary)(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1);
  /* gin = d/da op(a) * gout */
  void (*unary_backward)(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                         const tyr_tensor *gout, double p0, double p1);
  /* out = a op b; arithmetic ops take one dtype for all three, except that
   * a backend computing 16-bit floats natively gets f32 out and a with a
   * bf16/f16 b (tyr_residual_add) */
  void (*binary)(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);
  /* out = cond ? a : b; cond is bool/u8 */
  void (*where)(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a, const tyr_tensor *b);

  /* reductions over dim (or all elements when dim < 0); out has the
   * reduced shape with keepdim layout (size 1 at dim) */
  void (*reduce)(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim);

  /* out[b] = op(a[b]) @ op(b[b]); a, b contiguous or transposed views of
   * rank 2..4 with equal batch dims (already broadcast); out contiguous */
  void (*matmul)(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);

  /* last-dim softmax family; inputs contiguous */
  void (*softmax)(tyr_tensor *out, const tyr_tensor *x, bool log);
  void (*softmax_backward)(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log);

  /* normalisation over the last dim; inputs contiguous; w, b may be NULL.
   * mean (NULL for rms) and rstd are [rows] f32/f64 saved for backward.
   * y (forward) and gy (backward) have x's dtype, or, on a backend that
   * computes 16-bit floats natively (CUDA: tyr__dtype_needs_f32 false), are
   * bf16/f16 beside an f32 x (tyr_layer_norm_to); gx, gw, gb have x's.
   * add_gx: gx holds a gradient, and the input gradient is added to it in
   * the same pass (gx is read, then written).  gx_cast (NULL for none):
   * gx as finally stored is also written there converted to its dtype (a
   * 16-bit float; tyr__grad_cast_wanted).
   * r (forward, NULL for none): the rows normalised are x + r, written to
   * sum (x's dtype, contiguous) as they are read, each element rounded to
   * x's dtype before it is normalised, as an addition kernel followed by
   * the norm would; r has x's dtype or, where y may be 16-bit beside an f32
   * x, that 16-bit dtype (widened as it is read). */
  void (*layer_norm)(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                     const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                     const tyr_tensor *r);
  void (*layer_norm_backward)(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                              const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                              const tyr_tensor *rstd, bool add_gx, tyr_tensor *gx_cast);

  /* gathers and scatters along dim; idx is i32 or i64 */
  void (*index_select)(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
  void (*index_add)(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);
  void (*gather)(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
  void (*scatter_add)(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);

  /* cross entropy over the last dim of logits [N, V] with targets [N];
   * losses [N] (0 where ignored); dlogits = (softmax - onehot) * scale[n] */
  void (*cross_entropy)(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                        int64_t ignore_index);
  void (*cross_entropy_backward)(tyr_tensor *glogits, const tyr_tensor *logits,
                                 const tyr_tensor *targets, int64_t ignore_index,
                                 const tyr_tensor *gloss);

  /* optimizer steps, in place on param and state (all contiguous; state
   * f32; param and grad f32, f64 or bf16) */
  void (*adamw_step)(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                     double lr, double beta1, double beta2, double eps, double weight_decay,
                     int64_t step);
  void (*sgd_step)(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                   double momentum, double dampening, double weight_decay, bool nesterov,
                   bool first);
  /* sum of squares of all elements, in double (for gradient norms) */
  double (*sum_squares)(const tyr_tensor *t);
  /* t *= c in place */
  void (*scale_)(tyr_tensor *t, double c);
  /* scaled-dot-product attention: q [B, Hq, T, D], k and v [B, Hkv, S, D]
   * (Hq a multiple of Hkv; query head h reads key/value head h / (Hq/Hkv)),
   * out [B, Hq, T, D], lse [B, Hq, T] (log-sum-exp of each row's scaled
   * scores, -inf for a row that sees no key, whose output is 0); one float
   * dtype (lse is f32 when q is bf16/f16); lse contiguous; q, k, v, out
   * (and dout, dq, dk, dv below) contiguous, or views whose last dim is
   * contiguous (tyr_sdpa_qkv's strided heads; on the CPU also tyr_sdpa's
   * operands).  mask is
   * [T, S] bool/u8 contiguous or NULL; doc is [B, S] i32 contiguous or NULL.
   * With o = S - T, row i of batch b sees key j when mask[i, j] (if any),
   * doc[b, i + o] == doc[b, j] (if any), j <= i + o (if causal or
   * window > 0) and j > i + o - window (if window > 0). */
  void (*sdpa)(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
               const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
               int64_t window, double scale);
  /* dq, dk, dv (fresh, every element written; dk and dv sum
   * over the query heads of a group) from dout and the forward's out, lse */
  void (*sdpa_backward)(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                        const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                        const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                        const tyr_tensor *doc, bool causal, int64_t window, double scale);
  /* rotate-half rotary embedding: x and out [N, T, D], cos and sin [T, D/2],
   * contiguous; out = [x1 c - x2 s, x2 c + x1 s] (s negated when inverse) */
  void (*rotary)(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                 const tyr_tensor *sin_table, bool inverse);
  /* the sum of sum_squares over n tensors of this device (one wait on a
   * GPU instead of one per tensor); NULL: callers loop over sum_squares */
  double (*sum_squares_many)(int n, const tyr_tensor *const *ts);
  /* true while a CUDA graph is being captured on dev (work is recorded, not
   * run: ops must not read device values on the host); NULL: never */
  bool (*capturing)(tyr_device dev);
  /* AdamW with the step's scalars read from device memory at run time:
   * hyper (f64, contiguous, on param's device) holds at 4 * group the step
   * size lr / (1 - beta1^step), sqrt(1 - beta2^step) and 1 - lr * weight_decay
   * (lr already scaled for the group); the arithmetic is adamw_step's */
  void (*adamw_step_dev)(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                         double beta1, double beta2, double eps, const tyr_tensor *hyper,
                         int group);
  /* gradient clipping without a host round trip: norm (an f64 scalar on
   * the device) = sqrt(sum of squares of the n tensors); when max_norm > 0
   * and the norm is finite and above it, every tensor is scaled by
   * max_norm / (norm + 1e-6), as sum_squares_many + scale_ would */
  void (*clip_grad_norm)(int n, tyr_tensor *const *ts, double max_norm, tyr_tensor *norm);
  /* AdamW over n parameters of this device in as few kernel launches as it
   * can, bit for bit what n calls of adamw_step or adamw_step_dev compute
   * (params, grads, m, v as there; all contiguous).  hyper NULL: parameter i
   * steps as adamw_step with lr[group[i]] (already scaled for the group),
   * weight_decay[group[i]] and step; hyper non-NULL: as adamw_step_dev with
   * group[i] (lr, weight_decay and step unused, may be NULL / 0).
   * NULL: callers loop over adamw_step / adamw_step_dev */
  void (*adamw_step_many)(int n, tyr_tensor *const *params, const tyr_tensor *const *grads,
                          tyr_tensor *const *m, tyr_tensor *const *v, const int *group,
                          const double *lr, const double *weight_decay, double beta1, double beta2,
                          double eps, int64_t step, const tyr_tensor *hyper);
  /* cross entropy and its gradient in one pass (tyr_linear_cross_entropy):
   * logits [N, V] contiguous, overwritten in place by
   * (softmax - onehot) * scale[0] (zeros on ignored rows); losses [N]
   * (0 where ignored) and scale (rank 0, on the device) are f32, f64 for
   * f64 logits.  Logits may be bf16/f16 where the backend computes them
   * directly (CUDA), in f32. */
  void (*cross_entropy_fused)(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                              int64_t ignore_index, const tyr_tensor *scale);
  /* out [M, N] = a [M, K] @ b [K, N] + bias [N] on every row, the bias
   * added by the GEMM itself (cuBLASLt's epilogue) instead of a second pass
   * over out; a and b as matmul's (rank 2).  NULL: callers run matmul and
   * a row-broadcast add */
  void (*matmul_bias)(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                      const tyr_tensor *bias);
  /* out [M, N] = a [M, K] @ b [K, N] and gbias [M] = a summed over K, in
   * one GEMM (cuBLASLt's BGRADB epilogue): a linear layer's weight gradient
   * (a = dyT) and bias gradient together.  out and gbias may be wider than
   * a and b (f32 from bf16: a mixed-precision layer's f32 parameters' own
   * gradients) where the backend supports it.  Returns false, having written
   * nothing, when the operands are outside what the backend fuses; the
   * caller then runs matmul and a column sum.  NULL: never fused */
  bool (*matmul_bgrad)(tyr_tensor *out, tyr_tensor *gbias, const tyr_tensor *a,
                       const tyr_tensor *b);
  /* out [M, N] = act(a [M, K] @ b [K, N] + bias [N]) (bias may be NULL)
   * and pre [M, N] = the argument of act, by the GEMM's epilogue (cuBLASLt
   * GELU_AUX_BIAS).  Returns false, having written nothing, when the
   * backend does not fuse this act / dtype / layout.  NULL: never fused */
  bool (*matmul_act)(tyr_tensor *out, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                     const tyr_tensor *bias, tyr_unary_op act);
  /* out [M, N] = (a [M, K] @ b [K, N]) * act'(pre) by the GEMM's epilogue
   * (cuBLASLt DGELU): the backward of matmul_act's activation.  false /
   * NULL as matmul_act */
  bool (*matmul_dact)(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                      const tyr_tensor *pre, tyr_unary_op act);
  /* inclusive prefix sums along dim: out[.., i, ..] = sum of x[.., j, ..]
   * for j <= i; x and out contiguous, one dtype: f32, f64 or i64 (sums
   * accumulate in double for floats) */
  void (*cumsum)(tyr_tensor *out, const tyr_tensor *x, int dim);

  /* ---- convolutions and image ops (src/cpu/conv.c, src/cuda/conv.cu) ----
   * All operands contiguous, one float dtype.  conv2d: out = conv(x, w) +
   * bias (bias [K] or NULL).  conv2d_backward writes each of gx, gw, gb
   * that is non-NULL (fresh tensors, fully overwritten) from gy. */
  void (*conv2d)(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *bias,
                 const tyr_conv_geom *g);
  void (*conv2d_backward)(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                          const tyr_tensor *x, const tyr_tensor *w, const tyr_conv_geom *g);
  /* pooling; idx (i32 [N, C, P, Q], the flat h * W + w of each maximum)
   * is written by max pooling, NULL otherwise; the backward writes all of
   * gx */
  void (*pool2d)(tyr_tensor *out, tyr_tensor *idx, const tyr_tensor *x, const tyr_pool_geom *g);
  void (*pool2d_backward)(tyr_tensor *gx, const tyr_tensor *gy, const tyr_tensor *idx,
                          const tyr_pool_geom *g);
  /* batch norm of x [N, C, M] per channel: training uses the batch's
   * statistics (mean, rstd [C] written) and updates running_mean/var when
   * non-NULL (var unbiased); otherwise mean and rstd are computed from the
   * running statistics.  w, b may be NULL. */
  void (*batch_norm)(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                     const tyr_tensor *w, const tyr_tensor *b, tyr_tensor *running_mean,
                     tyr_tensor *running_var, bool training, double momentum, double eps);
  /* gx (training: through the batch statistics; otherwise gy w rstd),
   * gw, gb (each may be NULL) */
  void (*batch_norm_backward)(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                              const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                              const tyr_tensor *rstd, bool training);
} tyr_backend;

/* Whether the last two dims of t can be handed to a BLAS GEMM as they are:
 * row-major (trans false) or column-major (trans true) with leading
 * dimension *ld.  Ops make t contiguous first when this is false. */
bool tyr_gemm_layout(const tyr_tensor *t, bool *trans, int64_t *ld);

/* The backend for dev; raises (naming op and device) and returns NULL when
 * the device is not available. */
const tyr_backend *tyr_backend_get(tyr_site s, const char *op, tyr_device dev);
/* Same, without raising. */
const tyr_backend *tyr_backend_lookup(tyr_device dev);
void tyr_backend_register(tyr_device_type type, const tyr_backend *be);
extern const tyr_backend tyr_cpu_backend;

#ifdef __cplusplus
}
#endif
#endif
