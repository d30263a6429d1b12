/* tyr/ops_nn.h - functional neural-network ops: softmax and log_softmax,
 * cross entropy and mean squared error, layer and RMS norm, dropout,
 * rotary position embedding, and scaled-dot-product attention.
 *
 * All take f32 and f64, and bf16/f16 on the CPU (computed in f32); every
 * op is differentiable in its float operands.
 *
 * Erased forms: tyr_<op>_e(...) (macros adding the call site) over
 * tyr_<op>_at(site, ...).  Typed forms: tyr_<op>(...), which check the
 * op's shape rule when the program is compiled where the dims are
 * constants, and at run time otherwise. */
#ifndef TYR_OPS_NN_H
#define TYR_OPS_NN_H
#include "tyr/ops_create.h"
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- erased layer ------------------------------------------------------ */
/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* softmax / log_softmax over dim (negative counts from the end); the
 * result has x's shape. */
tyr_tensor *tyr_softmax_at(tyr_site s, tyr_tensor *x, int dim);
tyr_tensor *tyr_log_softmax_at(tyr_site s, tyr_tensor *x, int dim);

/* Mean over the targets that are not ignore_index of
 *   logsumexp(logits[n, :]) - logits[n, targets[n]]
 * logits [..., V] (float), targets [...] (i32 or i64, logits' shape
 * without its last dim).  A scalar (rank 0) of logits' dtype; 0 when every
 * target is ignored.  A target outside [0, V) that is not ignore_index is
 * an error. */
tyr_tensor *tyr_cross_entropy_at(tyr_site s, tyr_tensor *logits, tyr_tensor *targets,
                                 int64_t ignore_index);
/* The classifier and its cross entropy in one op: the mean over the
 * targets that are not ignore_index of cross_entropy(x @ w^T, targets),
 * with x [..., C] and w [V, C] (float, one dtype) and targets [...] (x's
 * shape without its last dim).  The loss is f32 (f64 for f64 operands),
 * also for bf16/f16 x and w.  Computed without keeping the logits: the
 * gradient of the loss with respect to them replaces them in place as they
 * are computed, and the backward is two products with it (memory: one
 * [N, V] tensor of x's dtype, against three for tyr_linear and
 * tyr_cross_entropy).  Target checks as in tyr_cross_entropy. */
tyr_tensor *tyr_linear_cross_entropy_at(tyr_site s, tyr_tensor *x, tyr_tensor *w,
                                        tyr_tensor *targets, int64_t ignore_index);
/* The same with the logits capped first: the mean cross entropy of
 * cap * tanh((x @ w^T) / cap), cap > 0 (0: no cap, tyr_linear_cross_entropy).
 * The capped logits are computed in the loss's dtype, a chunk at a time,
 * and never kept. */
tyr_tensor *tyr_linear_cross_entropy_softcap_at(tyr_site s, tyr_tensor *x, tyr_tensor *w,
                                                tyr_tensor *targets, int64_t ignore_index,
                                                double cap);
/* A transformer's feed-forward block as one op:
 *   gelu_tanh(x @ w1^T + b1) @ w2^T + b2
 * x [.., C], w1 [F, C], b1 [F] or NULL, w2 [C2, F], b2 [C2] or NULL ->
 * [.., C2], all of x's dtype and device.  The values and gradients of
 * tyr_linear, tyr_gelu_tanh, tyr_linear; where the backend fuses the
 * activation into the GEMMs (CUDA, bf16/f16: cuBLASLt's GELU and
 * GELU-gradient epilogues) it is one node and no elementwise kernel reads
 * the hidden activation (src/ops/mlp.c). */
tyr_tensor *tyr_mlp_gelu_tanh_at(tyr_site s, tyr_tensor *x, tyr_tensor *w1, tyr_tensor *b1,
                                 tyr_tensor *w2, tyr_tensor *b2);
/* mean((a - b)^2) over all elements: a scalar.  a and b have one shape. */
tyr_tensor *tyr_mse_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b);

/* (x - mean) / sqrt(var + eps) * w + b over the last dim of x [..., C];
 * w and b are [C] or NULL (then 1 and 0).  The variance is biased. */
tyr_tensor *tyr_layer_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b, double eps);
/* x / sqrt(mean(x^2) + eps) * w over the last dim; w is [C] or NULL. */
tyr_tensor *tyr_rms_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, double eps);
/* The norms with the result in another float dtype: the mixed-precision
 * norm of autocast (x, w and b in f32, the result in bf16 or f16 for the
 * matmuls that follow).  The norm is computed in f32 (f64 for f64 x) and
 * converted to dtype: for f32 or f64 x that is tyr_to_dtype(tyr_layer_norm(x,
 * w, b, eps), dtype) bit for bit; a 16-bit x is widened to f32 first, so
 * its result is rounded once, to dtype.  For f32 x and a 16-bit dtype on a
 * device that computes it natively (CUDA) the kernel rounds as it stores,
 * so no f32 copy of the result is made or kept, and the backward reads the
 * gradient in dtype.  The gradients of x, w and b are in their own dtypes. */
tyr_tensor *tyr_layer_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                 double eps, tyr_dtype dtype);
tyr_tensor *tyr_rms_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, double eps,
                               tyr_dtype dtype);
/* A pre-norm transformer's residual add and the next norm in one pass:
 * *sum = tyr_residual_add(x, y), and the result is
 * tyr_layer_norm_to(*sum, w, b, eps, dtype) (tyr_rms_norm_to for the RMS
 * form).  x and y have one shape; y may be a 16-bit float beside an f32 x
 * (tyr_residual_add's rule).  Values and gradients are those of the two
 * calls bit for bit, and autograd records the same two nodes; where the
 * norm computes in x's dtype (f32 and f64 x; 16-bit x on CUDA) its kernel
 * makes the sum as it reads the rows, which saves a kernel and a read of
 * the sum.  On error both results are NULL. */
tyr_tensor *tyr_residual_add_layer_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *y,
                                              tyr_tensor *w, tyr_tensor *b, double eps,
                                              tyr_dtype dtype, tyr_tensor **sum);
tyr_tensor *tyr_residual_add_rms_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *y, tyr_tensor *w,
                                            double eps, tyr_dtype dtype, tyr_tensor **sum);

/* When training and p > 0: x * mask with mask 1/(1-p) with probability
 * 1-p and 0 otherwise, drawn from the global counter-based generator (so
 * one seed gives one mask on every device and thread count).  Otherwise a
 * view of x (recorded: the gradient flows through).  p is in [0, 1). */
tyr_tensor *tyr_dropout_at(tyr_site s, tyr_tensor *x, double p, bool training);

/* Rotary position embedding, rotate-half convention (GPT-NeoX, Llama):
 * with x = [x1, x2] the halves of the head dim,
 *   out = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]
 * x is [B, H, T, D] (D even), cos and sin are [T, D/2] of x's dtype.  The
 * tables are constants: they take no gradient (an error if they need one). */
tyr_tensor *tyr_rotary_at(tyr_site s, tyr_tensor *x, tyr_tensor *cos_table, tyr_tensor *sin_table);
/* The tables for T positions and head dim D (even):
 *   angle[t, i] = t * base^(-2i/D),  cos = cos(angle), sin = sin(angle)
 * base <= 0 means 10000.  Returns 0, or the error's status (and *cos,
 * *sin are NULL). */
int tyr_rotary_tables_at(tyr_site s, int64_t T, int64_t D, double base, tyr_dtype dt,
                         tyr_device dev, tyr_tensor **cos_out, tyr_tensor **sin_out);

/* Options of scaled-dot-product attention; a NULL pointer or {0} means
 * none of them. */
typedef struct tyr_sdpa_opts {
  bool causal;      /* query i sees keys j <= i + (S - T) */
  tyr_tensor *mask; /* [T, S] bool or u8, true = may attend; or NULL */
  int64_t window;   /* > 0: query i sees keys with i' - window < j <= i', i' = i + (S - T)
                       (implies causal); 0: no window */
  double scale;     /* 0: 1/sqrt(D) */
  /* [B, S] i32 document ids, or NULL: query i sees key j only when
     doc_ids[b, i + S - T] == doc_ids[b, j] (packed documents do not see each
     other); combined with causal, window and mask, never expanded to [T, S] */
  tyr_tensor *doc_ids;
} tyr_sdpa_opts;

/* softmax(q k^T * scale + masks) v per head:  q [B, Hq, T, D],
 * k and v [B, Hkv, S, D] with Hq a multiple of Hkv (query head h uses key
 * and value head h / (Hq / Hkv)).  The result is [B, Hq, T, D].  A query
 * that may see no key gives zeros. */
tyr_tensor *tyr_sdpa_at(tyr_site s, tyr_tensor *q, tyr_tensor *k, tyr_tensor *v,
                        const tyr_sdpa_opts *opts);
/* Attention on a packed projection: qkv [B, T, (n_head + 2 n_kv_head) D]
 * holds q (n_head heads of D), then k and v (n_kv_head heads each), as a
 * fused qkv linear lays them out; the result is [B, T, n_head D] with the
 * heads side by side, ready for the output projection.  The same values as
 * narrowing, reshaping to [B, H, T, D], tyr_sdpa and merging the heads
 * back, without the layout copies: on CUDA the kernels read q, k and v where
 * they lie, write the output in place, and the backward writes the
 * gradient of qkv as one tensor.  n_kv_head 0 means n_head; opts as
 * tyr_sdpa's (a mask is [T, T]). */
tyr_tensor *tyr_sdpa_qkv_at(tyr_site s, tyr_tensor *qkv, int64_t n_head, int64_t n_kv_head,
                            const tyr_sdpa_opts *opts);

#define tyr_softmax_e(x, dim) tyr_softmax_at(TYR_SITE, (x), (dim))
#define tyr_log_softmax_e(x, dim) tyr_log_softmax_at(TYR_SITE, (x), (dim))
#define tyr_cross_entropy_e(logits, targets, ign)                                                  \
  tyr_cross_entropy_at(TYR_SITE, (logits), (targets), (ign))
#define tyr_linear_cross_entropy_e(x, w, targets, ign)                                             \
  tyr_linear_cross_entropy_at(TYR_SITE, (x), (w), (targets), (ign))
#define tyr_linear_cross_entropy_softcap_e(x, w, targets, ign, cap)                                \
  tyr_linear_cross_entropy_softcap_at(TYR_SITE, (x), (w), (targets), (ign), (cap))
#define tyr_mlp_gelu_tanh_e(x, w1, b1, w2, b2)                                                     \
  tyr_mlp_gelu_tanh_at(TYR_SITE, (x), (w1), (b1), (w2), (b2))
#define tyr_mse_loss_e(a, b) tyr_mse_loss_at(TYR_SITE, (a), (b))
#define tyr_layer_norm_e(x, w, b, eps) tyr_layer_norm_at(TYR_SITE, (x), (w), (b), (eps))
#define tyr_rms_norm_e(x, w, eps) tyr_rms_norm_at(TYR_SITE, (x), (w), (eps))
#define tyr_layer_norm_to_e(x, w, b, eps, dt)                                                      \
  tyr_layer_norm_to_at(TYR_SITE, (x), (w), (b), (eps), (dt))
#define tyr_rms_norm_to_e(x, w, eps, dt) tyr_rms_norm_to_at(TYR_SITE, (x), (w), (eps), (dt))
#define tyr_residual_add_layer_norm_to_e(x, y, w, b, eps, dt, sum)                                 \
  tyr_residual_add_layer_norm_to_at(TYR_SITE, (x), (y), (w), (b), (eps), (dt), (sum))
#define tyr_residual_add_rms_norm_to_e(x, y, w, eps, dt, sum)                                      \
  tyr_residual_add_rms_norm_to_at(TYR_SITE, (x), (y), (w), (eps), (dt), (sum))
#define tyr_dropout_e(x, p, training) tyr_dropout_at(TYR_SITE, (x), (p), (training))
#define tyr_rotary_e(x, c, sn) tyr_rotary_at(TYR_SITE, (x), (c), (sn))
#define tyr_rotary_tables_e(T, D, base, cosp, sinp)                                                \
  tyr_rotary_tables_at(TYR_SITE, (T), (D), (base), tyr_default_dtype(), tyr_default_device(),      \
                       (cosp), (sinp))
/* the options may be a compound literal: tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true}) */
#define tyr_sdpa_e(q, k, v, ...) tyr_sdpa_at(TYR_SITE, (q), (k), (v), (__VA_ARGS__))
#define tyr_sdpa_qkv_e(qkv, n_head, n_kv_head, ...)                                                \
  tyr_sdpa_qkv_at(TYR_SITE, (qkv), (n_head), (n_kv_head), (__VA_ARGS__))

/* ---- typed layer -------------------------------------------------------- */
#define tyr__ct_softmax_dim_msg "tyr_softmax: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_softmax_dim, tyr__ct_softmax_dim_msg);
#define tyr__ct_log_softmax_dim_msg                                                                \
  "tyr_log_softmax: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_log_softmax_dim, tyr__ct_log_softmax_dim_msg);
#define tyr__ct_cross_entropy_msg                                                                  \
  "tyr_cross_entropy: targets must have the shape of logits "                                      \
  "without its last dim (logits [..., V], targets [...])"
TYR_CT_ERROR(tyr__ct_cross_entropy, tyr__ct_cross_entropy_msg);
#define tyr__ct_mse_loss_msg "tyr_mse_loss: operands have different shapes"
TYR_CT_ERROR(tyr__ct_mse_loss, tyr__ct_mse_loss_msg);
#define tyr__ct_layer_norm_msg                                                                     \
  "tyr_layer_norm: w and b must be [C] for x [..., C] (C is the last dim of x)"
TYR_CT_ERROR(tyr__ct_layer_norm, tyr__ct_layer_norm_msg);
#define tyr__ct_rms_norm_msg "tyr_rms_norm: w must be [C] for x [..., C] (C is the last dim of x)"
TYR_CT_ERROR(tyr__ct_rms_norm, tyr__ct_rms_norm_msg);
#define tyr__ct_layer_norm_to_msg                                                                  \
  "tyr_layer_norm_to: w and b must be [C] for x [..., C] (C is the last dim of x)"
TYR_CT_ERROR(tyr__ct_layer_norm_to, tyr__ct_layer_norm_to_msg);
#define tyr__ct_rms_norm_to_msg                                                                    \
  "tyr_rms_norm_to: w must be [C] for x [..., C] (C is the last dim of x)"
TYR_CT_ERROR(tyr__ct_rms_norm_to, tyr__ct_rms_norm_to_msg);
#define tyr__ct_residual_add_layer_norm_to_msg                                                     \
  "tyr_residual_add_layer_norm_to: x and y must have one shape, and w and b must be [C] for x "    \
  "[..., C]"
TYR_CT_ERROR(tyr__ct_residual_add_layer_norm_to, tyr__ct_residual_add_layer_norm_to_msg);
#define tyr__ct_residual_add_rms_norm_to_msg                                                       \
  "tyr_residual_add_rms_norm_to: x and y must have one shape, and w must be [C] for x [..., C]"
TYR_CT_ERROR(tyr__ct_residual_add_rms_norm_to, tyr__ct_residual_add_rms_norm_to_msg);
#define tyr__ct_rotary_rank_msg "tyr_rotary: x must be [B, H, T, D] and cos, sin [T, D/2]"
TYR_CT_ERROR(tyr__ct_rotary_rank, tyr__ct_rotary_rank_msg);
#define tyr__ct_rotary_msg "tyr_rotary: cos and sin must be [T, D/2] for x [B, H, T, D]"
TYR_CT_ERROR(tyr__ct_rotary, tyr__ct_rotary_msg);
#define tyr__ct_rotary_odd_msg "tyr_rotary: the head dim D of x [B, H, T, D] must be even"
TYR_CT_ERROR(tyr__ct_rotary_odd, tyr__ct_rotary_odd_msg);
#define tyr__ct_rotary_tables_msg "tyr_rotary_tables: the head dim D must be even and positive"
TYR_CT_ERROR(tyr__ct_rotary_tables, tyr__ct_rotary_tables_msg);
#define tyr__ct_dropout_p_msg "tyr_dropout: p must be in [0, 1)"
TYR_CT_ERROR(tyr__ct_dropout_p, tyr__ct_dropout_p_msg);
#define tyr__ct_sdpa_rank_msg "tyr_sdpa: q, k and v must have rank 4 ([B, H, T, D])"
TYR_CT_ERROR(tyr__ct_sdpa_rank, tyr__ct_sdpa_rank_msg);
#define tyr__ct_sdpa_batch_msg "tyr_sdpa: q, k and v have different batch sizes"
TYR_CT_ERROR(tyr__ct_sdpa_batch, tyr__ct_sdpa_batch_msg);
#define tyr__ct_sdpa_head_dim_msg "tyr_sdpa: q, k and v have different head dims"
TYR_CT_ERROR(tyr__ct_sdpa_head_dim, tyr__ct_sdpa_head_dim_msg);
#define tyr__ct_sdpa_kv_msg "tyr_sdpa: k and v have different shapes"
TYR_CT_ERROR(tyr__ct_sdpa_kv, tyr__ct_sdpa_kv_msg);
#define tyr__ct_sdpa_groups_msg                                                                    \
  "tyr_sdpa: the number of query heads is not a multiple of the "                                  \
  "number of key/value heads"
TYR_CT_ERROR(tyr__ct_sdpa_groups, tyr__ct_sdpa_groups_msg);

/* softmax over a constant dim: same type as x */
#define TYR__TSOFTMAX(name, x, d)                                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a),                 \
             tyr__ct_##name##_dim);                                                                \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    (__typeof__(tyr__a))(tyr__ea ? tyr_result_at(tyr__s, "tyr_" #name,                             \
                                                 tyr_##name##_at(tyr__s, tyr__ea, (d)))            \
                                 : NULL);                                                          \
  })
#define tyr_softmax(x, dim) TYR__TSOFTMAX(softmax, x, dim)
#define tyr_log_softmax(x, dim) TYR__TSOFTMAX(log_softmax, x, dim)

/* logits [d0, ..., dk, V], targets [d0, ..., dk] -> scalar */
#define TYR__TCE_DIM(l, t, j)                                                                      \
  TYR_RULE(tyr_rank(t) <= (j) || TYR__DIM(t, j) == TYR__DIM(l, j), tyr__ct_cross_entropy)
#define tyr_cross_entropy(logits, targets, ignore_index)                                           \
  ({                                                                                               \
    __auto_type tyr__l = (logits);                                                                 \
    __auto_type tyr__t = (targets);                                                                \
    TYR_RULE(tyr_rank(tyr__t) == tyr_rank(tyr__l) - 1, tyr__ct_cross_entropy);                     \
    TYR__TCE_DIM(tyr__l, tyr__t, 0);                                                               \
    TYR__TCE_DIM(tyr__l, tyr__t, 1);                                                               \
    TYR__TCE_DIM(tyr__l, tyr__t, 2);                                                               \
    TYR__TCE_DIM(tyr__l, tyr__t, 3);                                                               \
    TYR__TCE_DIM(tyr__l, tyr__t, 4);                                                               \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__el = TYR__CLAIM(tyr__s, "tyr_cross_entropy", "logits", tyr__l);               \
    tyr_tensor *tyr__et =                                                                          \
        tyr__el ? TYR__CLAIM(tyr__s, "tyr_cross_entropy", "targets", tyr__t) : NULL;               \
    (tyr_T0)(tyr__et                                                                               \
                 ? tyr_result_at(tyr__s, "tyr_cross_entropy",                                      \
                                 tyr_cross_entropy_at(tyr__s, tyr__el, tyr__et, (ignore_index)))   \
                 : NULL);                                                                          \
  })

/* x [d0, ..., dk, C], w [V, C], targets [d0, ..., dk] -> scalar */
#define tyr__ct_linear_ce_w_msg                                                                    \
  "tyr_linear_cross_entropy: w must be [V, C] with C the last dim "                                \
  "of x [..., C]"
TYR_CT_ERROR(tyr__ct_linear_ce_w, tyr__ct_linear_ce_w_msg);
#define tyr__ct_linear_ce_targets_msg                                                              \
  "tyr_linear_cross_entropy: targets must have the shape of x "                                    \
  "without its last dim (x [..., C], targets [...])"
TYR_CT_ERROR(tyr__ct_linear_ce_targets, tyr__ct_linear_ce_targets_msg);
#define TYR__TLCE_DIM(x, t, j)                                                                     \
  TYR_RULE(tyr_rank(t) <= (j) || TYR__DIM(t, j) == TYR__DIM(x, j), tyr__ct_linear_ce_targets)
#define TYR__TLCE(op, x, w, targets, ignore_index, cap)                                            \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__t = (targets);                                                                \
    TYR_RULE(tyr_rank(tyr__w) == 2 && TYR__DIMN(tyr__w, -1) == TYR__DIMN(tyr__x, -1),              \
             tyr__ct_linear_ce_w);                                                                 \
    TYR_RULE(tyr_rank(tyr__t) == tyr_rank(tyr__x) - 1, tyr__ct_linear_ce_targets);                 \
    TYR__TLCE_DIM(tyr__x, tyr__t, 0);                                                              \
    TYR__TLCE_DIM(tyr__x, tyr__t, 1);                                                              \
    TYR__TLCE_DIM(tyr__x, tyr__t, 2);                                                              \
    TYR__TLCE_DIM(tyr__x, tyr__t, 3);                                                              \
    TYR__TLCE_DIM(tyr__x, tyr__t, 4);                                                              \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, (op), "x", tyr__x);                                   \
    tyr_tensor *tyr__ew = tyr__ex ? TYR__CLAIM(tyr__s, (op), "w", tyr__w) : NULL;                  \
    tyr_tensor *tyr__et = tyr__ew ? TYR__CLAIM(tyr__s, (op), "targets", tyr__t) : NULL;            \
    (tyr_T0)(tyr__et                                                                               \
                 ? tyr_result_at(tyr__s, (op),                                                     \
                                 tyr_linear_cross_entropy_softcap_at(                              \
                                     tyr__s, tyr__ex, tyr__ew, tyr__et, (ignore_index), (cap)))    \
                 : NULL);                                                                          \
  })

#define tyr_linear_cross_entropy(x, w, targets, ignore_index)                                      \
  TYR__TLCE("tyr_linear_cross_entropy", x, w, targets, ignore_index, 0.0)
/* x [d0, ..., dk, C], w [V, C], targets [d0, ..., dk], cap -> scalar */
#define tyr_linear_cross_entropy_softcap(x, w, targets, ignore_index, cap)                         \
  TYR__TLCE("tyr_linear_cross_entropy_softcap", x, w, targets, ignore_index, cap)

#define tyr_mse_loss(a, b)                                                                         \
  ((tyr_T0)TYR_TYPED_SAME2("tyr_mse_loss", tyr__ct_mse_loss,                                       \
                           tyr_mse_loss_at(tyr__s, tyr__ea, tyr__eb), a, b))

/* An optional operand of a typed op: NULL becomes a null handle of type
 * `like`, so that the shape checks of the op pass; any other handle is
 * itself. */
#ifdef __cplusplus
#define TYR__OPTIONAL(p, like) tyr__optional<like>(p) /* <tyr/cxx.h> */
#else
#define TYR__OPTIONAL(p, like) _Generic((p), void * : (like)0, int : (like)0, default : (p))
#endif
/* The erased tensor behind an optional handle (NULL stays NULL); *ok is
 * false after a failed claim. */
#define TYR__CLAIM_OPT(site, op, arg, p, ok)                                                       \
  ((p) ? ((ok) = ((ok) && TYR__CLAIM(site, op, arg, p) != NULL)) ? (tyr_tensor *)(p) : NULL : NULL)

/* The typed norms: x [..., C], w (and b) [C] or NULL; CALL computes the
 * erased result from tyr__s, tyr__ea, tyr__ew (and tyr__eb). */
#define TYR__TYPED_LAYER_NORM(op, ct, x, w, b, CALL)                                               \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__w = TYR__OPTIONAL(w, tyr_T(TYR__DIMN(tyr__a, -1)));                           \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__DIMN(tyr__a, -1)));                           \
    TYR_RULE(tyr_rank(tyr__w) == 1 && tyr_rank(tyr__b) == 1, ct);                                  \
    TYR_RULE(TYR__D0(tyr__w) == TYR__DIMN(tyr__a, -1), ct);                                        \
    TYR_RULE(TYR__D0(tyr__b) == TYR__DIMN(tyr__a, -1), ct);                                        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, op, "x", tyr__a);                                     \
    tyr__ok = tyr__ea != NULL;                                                                     \
    tyr_tensor *tyr__ew = TYR__CLAIM_OPT(tyr__s, op, "w", tyr__w, tyr__ok);                        \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, op, "b", tyr__b, tyr__ok);                        \
    (__typeof__(tyr__a))(tyr__ok ? tyr_result_at(tyr__s, op, CALL) : NULL);                        \
  })
#define TYR__TYPED_RMS_NORM(op, ct, x, w, CALL)                                                    \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__w = TYR__OPTIONAL(w, tyr_T(TYR__DIMN(tyr__a, -1)));                           \
    TYR_RULE(tyr_rank(tyr__w) == 1, ct);                                                           \
    TYR_RULE(TYR__D0(tyr__w) == TYR__DIMN(tyr__a, -1), ct);                                        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, op, "x", tyr__a);                                     \
    tyr__ok = tyr__ea != NULL;                                                                     \
    tyr_tensor *tyr__ew = TYR__CLAIM_OPT(tyr__s, op, "w", tyr__w, tyr__ok);                        \
    (__typeof__(tyr__a))(tyr__ok ? tyr_result_at(tyr__s, op, CALL) : NULL);                        \
  })
#define tyr_layer_norm(x, w, b, eps)                                                               \
  TYR__TYPED_LAYER_NORM("tyr_layer_norm", tyr__ct_layer_norm, x, w, b,                             \
                        tyr_layer_norm_at(tyr__s, tyr__ea, tyr__ew, tyr__eb, (eps)))
#define tyr_rms_norm(x, w, eps)                                                                    \
  TYR__TYPED_RMS_NORM("tyr_rms_norm", tyr__ct_rms_norm, x, w,                                      \
                      tyr_rms_norm_at(tyr__s, tyr__ea, tyr__ew, (eps)))
/* the result in dtype dt (the shape is x's) */
#define tyr_layer_norm_to(x, w, b, eps, dt)                                                        \
  TYR__TYPED_LAYER_NORM("tyr_layer_norm_to", tyr__ct_layer_norm_to, x, w, b,                       \
                        tyr_layer_norm_to_at(tyr__s, tyr__ea, tyr__ew, tyr__eb, (eps), (dt)))
#define tyr_rms_norm_to(x, w, eps, dt)                                                             \
  TYR__TYPED_RMS_NORM("tyr_rms_norm_to", tyr__ct_rms_norm_to, x, w,                                \
                      tyr_rms_norm_to_at(tyr__s, tyr__ea, tyr__ew, (eps), (dt)))

/* x and y of one shape, w (and b) [C] or NULL: the norm of x + y in dtype
 * dt; *sump (a handle of x's type) receives x + y */
#define TYR__TYPED_RESIDUAL_NORM(op, x, y, sump, NORM)                                             \
  ({                                                                                               \
    __auto_type tyr__rx = (x);                                                                     \
    __auto_type tyr__ry = (y);                                                                     \
    TYR_RULE_SAME_SHAPE(tyr__rx, tyr__ry, tyr__ct_##op);                                           \
    tyr_tensor *tyr__rsum = NULL;                                                                  \
    tyr_tensor *tyr__rey = TYR__CLAIM(TYR_SITE, "tyr_" #op, "y", tyr__ry);                         \
    __auto_type tyr__rn = NORM;                                                                    \
    *(sump) = (__typeof__(tyr__rx))tyr_result_at(TYR_SITE, "tyr_residual_add", tyr__rsum);         \
    tyr__rn;                                                                                       \
  })
#define tyr_residual_add_layer_norm_to(x, y, w, b, eps, dt, sump)                                  \
  TYR__TYPED_RESIDUAL_NORM(                                                                        \
      residual_add_layer_norm_to, x, y, sump,                                                      \
      TYR__TYPED_LAYER_NORM(                                                                       \
          "tyr_residual_add_layer_norm_to", tyr__ct_residual_add_layer_norm_to, tyr__rx, w, b,     \
          tyr__rey ? tyr_residual_add_layer_norm_to_at(tyr__s, tyr__ea, tyr__rey, tyr__ew,         \
                                                       tyr__eb, (eps), (dt), &tyr__rsum)           \
                   : NULL))
#define tyr_residual_add_rms_norm_to(x, y, w, eps, dt, sump)                                       \
  TYR__TYPED_RESIDUAL_NORM(                                                                        \
      residual_add_rms_norm_to, x, y, sump,                                                        \
      TYR__TYPED_RMS_NORM(                                                                         \
          "tyr_residual_add_rms_norm_to", tyr__ct_residual_add_rms_norm_to, tyr__rx, w,            \
          tyr__rey ? tyr_residual_add_rms_norm_to_at(tyr__s, tyr__ea, tyr__rey, tyr__ew, (eps),    \
                                                     (dt), &tyr__rsum)                             \
                   : NULL))

#define tyr_dropout(x, p, training)                                                                \
  ({                                                                                               \
    TYR_RULE((p) >= 0 && (p) < 1, tyr__ct_dropout_p);                                              \
    TYR_TYPED_UNARY("tyr_dropout", tyr_dropout_at(tyr__s, tyr__ea, (p), (training)), x);           \
  })

/* x [B, H, T, D], cos and sin [T, D/2] */
#define tyr_rotary(x, c, sn)                                                                       \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__c = (c);                                                                      \
    __auto_type tyr__n = (sn);                                                                     \
    TYR_RULE(tyr_rank(tyr__a) == 4 && tyr_rank(tyr__c) == 2 && tyr_rank(tyr__n) == 2,              \
             tyr__ct_rotary_rank);                                                                 \
    TYR_RULE(TYR__D3(tyr__a) % 2 == 0, tyr__ct_rotary_odd);                                        \
    TYR_RULE(TYR__D0(tyr__c) == TYR__D2(tyr__a), tyr__ct_rotary);                                  \
    TYR_RULE(TYR__D1(tyr__c) * 2 == TYR__D3(tyr__a), tyr__ct_rotary);                              \
    TYR_RULE(TYR__D0(tyr__n) == TYR__D2(tyr__a), tyr__ct_rotary);                                  \
    TYR_RULE(TYR__D1(tyr__n) * 2 == TYR__D3(tyr__a), tyr__ct_rotary);                              \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_rotary", "x", tyr__a);                           \
    tyr_tensor *tyr__ec = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_rotary", "cos", tyr__c) : NULL;        \
    tyr_tensor *tyr__en = tyr__ec ? TYR__CLAIM(tyr__s, "tyr_rotary", "sin", tyr__n) : NULL;        \
    (__typeof__(tyr__a))(tyr__en ? tyr_result_at(tyr__s, "tyr_rotary",                             \
                                                 tyr_rotary_at(tyr__s, tyr__ea, tyr__ec, tyr__en)) \
                                 : NULL);                                                          \
  })
/* tyr_T(T, D / 2) cos, sin;  tyr_rotary_tables(T, D, 10000.0, &cos, &sin);
 * default dtype and device; the handles' type must be [T, D/2]. */
#define tyr_rotary_tables(T, D, base, cosp, sinp)                                                  \
  ({                                                                                               \
    TYR_RULE((D) > 0 && (D) % 2 == 0, tyr__ct_rotary_tables);                                      \
    tyr_tensor *tyr__c = NULL, *tyr__n = NULL;                                                     \
    int tyr__r = tyr_rotary_tables_at(TYR_SITE, (T), (D), (base), tyr_default_dtype(),             \
                                      tyr_default_device(), &tyr__c, &tyr__n);                     \
    *(cosp) = (tyr_T((T), (D) / 2)) tyr__c;                                                        \
    *(sinp) = (tyr_T((T), (D) / 2)) tyr__n;                                                        \
    tyr__r;                                                                                        \
  })

/* q [B, Hq, T, D], k and v [B, Hkv, S, D]; the options (a pointer, may be
 * NULL or a compound literal) follow: result [B, Hq, T, D] */
#define tyr_sdpa(q, k, v, ...)                                                                     \
  ({                                                                                               \
    __auto_type tyr__q = (q);                                                                      \
    __auto_type tyr__k = (k);                                                                      \
    __auto_type tyr__v = (v);                                                                      \
    TYR_RULE(tyr_rank(tyr__q) == 4 && tyr_rank(tyr__k) == 4 && tyr_rank(tyr__v) == 4,              \
             tyr__ct_sdpa_rank);                                                                   \
    TYR_RULE(TYR__D0(tyr__q) == TYR__D0(tyr__k) && TYR__D0(tyr__q) == TYR__D0(tyr__v),             \
             tyr__ct_sdpa_batch);                                                                  \
    TYR_RULE(TYR__D3(tyr__q) == TYR__D3(tyr__k) && TYR__D3(tyr__q) == TYR__D3(tyr__v),             \
             tyr__ct_sdpa_head_dim);                                                               \
    TYR_RULE_SAME_SHAPE(tyr__k, tyr__v, tyr__ct_sdpa_kv);                                          \
    TYR_RULE(TYR__D1(tyr__q) % TYR__D1(tyr__k) == 0, tyr__ct_sdpa_groups);                         \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__eq = TYR__CLAIM(tyr__s, "tyr_sdpa", "q", tyr__q);                             \
    tyr_tensor *tyr__ek = tyr__eq ? TYR__CLAIM(tyr__s, "tyr_sdpa", "k", tyr__k) : NULL;            \
    tyr_tensor *tyr__ev = tyr__ek ? TYR__CLAIM(tyr__s, "tyr_sdpa", "v", tyr__v) : NULL;            \
    (__typeof__(tyr__q))(tyr__ev ? tyr_result_at(tyr__s, "tyr_sdpa",                               \
                                                 tyr_sdpa_at(tyr__s, tyr__eq, tyr__ek, tyr__ev,    \
                                                             (__VA_ARGS__)))                       \
                                 : NULL);                                                          \
  })

/* The same with a typed mask: mask [T, S] (bool or u8, true = may attend),
 * checked against q [B, Hq, T, D] and k [B, Hkv, S, D] like any operand;
 * opts (a pointer, may be NULL) give the other options, and their mask
 * field must be NULL. */
#define tyr__ct_sdpa_mask_msg                                                                      \
  "tyr_sdpa_masked: the mask must be [T, S] for q [B, H, T, D] and k [B, H, S, D]"
TYR_CT_ERROR(tyr__ct_sdpa_mask, tyr__ct_sdpa_mask_msg);
#define tyr_sdpa_masked(q, k, v, m, opts)                                                          \
  ({                                                                                               \
    __auto_type tyr__m = (m);                                                                      \
    const tyr_sdpa_opts *tyr__o = (opts);                                                          \
    tyr_sdpa_opts tyr__mo = tyr__o ? *tyr__o : (tyr_sdpa_opts){0};                                 \
    __auto_type tyr__sq = (q);                                                                     \
    __auto_type tyr__sk = (k);                                                                     \
    TYR_RULE(tyr_rank(tyr__m) == 2, tyr__ct_sdpa_mask);                                            \
    TYR_RULE(TYR__D0(tyr__m) == TYR__D2(tyr__sq) && TYR__D1(tyr__m) == TYR__D2(tyr__sk),           \
             tyr__ct_sdpa_mask);                                                                   \
    tyr_site tyr__ms = TYR_SITE;                                                                   \
    tyr_tensor *tyr__em = TYR__CLAIM(tyr__ms, "tyr_sdpa_masked", "mask", tyr__m);                  \
    if (tyr__em && (TYR__D0(tyr__m) != TYR__D2(tyr__sq) || TYR__D1(tyr__m) != TYR__D2(tyr__sk))) { \
      tyr_raise(TYR_ERR_SHAPE, tyr__ms, "tyr_sdpa_masked",                                         \
                "the mask is [%lld, %lld] but q is [.., %lld, ..] and k [.., %lld, ..] (the mask " \
                "must be [T, S])",                                                                 \
                (long long)TYR__D0(tyr__m), (long long)TYR__D1(tyr__m),                            \
                (long long)TYR__D2(tyr__sq), (long long)TYR__D2(tyr__sk));                         \
      tyr__em = NULL;                                                                              \
    }                                                                                              \
    if (tyr__em && tyr__o && tyr__o->mask) {                                                       \
      tyr_raise(TYR_ERR_ARG, tyr__ms, "tyr_sdpa_masked", "opts->mask must be NULL");               \
      tyr__em = NULL;                                                                              \
    }                                                                                              \
    tyr__mo.mask = tyr__em;                                                                        \
    tyr__em ? tyr_sdpa(tyr__sq, tyr__sk, v, &tyr__mo) : (__typeof__(tyr__sq))NULL;                 \
  })

/* The same with typed document ids: doc [B, S] (i32), checked against
 * q [B, Hq, T, D] and k [B, Hkv, S, D] like any operand (query i sees key
 * j only when doc[b, i + S - T] == doc[b, j]); the options (a pointer,
 * may be NULL or a compound literal) give the others, and their doc_ids
 * field must be NULL. */
#define tyr__ct_sdpa_docs_msg                                                                      \
  "tyr_sdpa_docs: the document ids must be [B, S] for q [B, H, T, D] and k [B, H, S, D]"
TYR_CT_ERROR(tyr__ct_sdpa_docs, tyr__ct_sdpa_docs_msg);
#define tyr_sdpa_docs(q, k, v, doc, ...)                                                           \
  ({                                                                                               \
    __auto_type tyr__dd = (doc);                                                                   \
    const tyr_sdpa_opts *tyr__do = (__VA_ARGS__);                                                  \
    tyr_sdpa_opts tyr__dmo = tyr__do ? *tyr__do : (tyr_sdpa_opts){0};                              \
    __auto_type tyr__dq = (q);                                                                     \
    __auto_type tyr__dk = (k);                                                                     \
    TYR_RULE(tyr_rank(tyr__dd) == 2, tyr__ct_sdpa_docs);                                           \
    TYR_RULE(TYR__D0(tyr__dd) == TYR__D0(tyr__dq) && TYR__D1(tyr__dd) == TYR__D2(tyr__dk),         \
             tyr__ct_sdpa_docs);                                                                   \
    tyr_site tyr__ds = TYR_SITE;                                                                   \
    tyr_tensor *tyr__ed = TYR__CLAIM(tyr__ds, "tyr_sdpa_docs", "doc", tyr__dd);                    \
    if (tyr__ed &&                                                                                 \
        (TYR__D0(tyr__dd) != TYR__D0(tyr__dq) || TYR__D1(tyr__dd) != TYR__D2(tyr__dk))) {          \
      tyr_raise(TYR_ERR_SHAPE, tyr__ds, "tyr_sdpa_docs",                                           \
                "the document ids are [%lld, %lld] but q is [%lld, ..] and k [.., .., %lld, ..] "  \
                "(they must be [B, S])",                                                           \
                (long long)TYR__D0(tyr__dd), (long long)TYR__D1(tyr__dd),                          \
                (long long)TYR__D0(tyr__dq), (long long)TYR__D2(tyr__dk));                         \
      tyr__ed = NULL;                                                                              \
    }                                                                                              \
    if (tyr__ed && tyr__do && tyr__do->doc_ids) {                                                  \
      tyr_raise(TYR_ERR_ARG, tyr__ds, "tyr_sdpa_docs", "opts->doc_ids must be NULL");              \
      tyr__ed = NULL;                                                                              \
    }                                                                                              \
    tyr__dmo.doc_ids = tyr__ed;                                                                    \
    tyr__ed ? tyr_sdpa(tyr__dq, tyr__dk, v, &tyr__dmo) : (__typeof__(tyr__dq))NULL;                \
  })

#ifdef __cplusplus
}
#endif
#endif
