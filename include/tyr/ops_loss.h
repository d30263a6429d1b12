/* tyr/ops_loss.h - the losses PyTorch users reach for, with PyTorch's
 * semantics and reductions: BCE with logits, NLL, L1, smooth L1, KL
 * divergence.  (Cross-entropy and MSE are in <tyr/ops_nn.h>.)
 *
 * Reductions (torch's `reduction=`):
 *   TYR_REDUCTION_MEAN       the mean over elements (NLL: over the targets
 *                            that are not ignored) -> a scalar
 *   TYR_REDUCTION_SUM        the sum -> a scalar
 *   TYR_REDUCTION_NONE       the elementwise losses (the operands' shape;
 *                            NLL: the targets' shape, 0 where ignored)
 *   TYR_REDUCTION_BATCHMEAN  the sum divided by the first dim (KL only,
 *                            PyTorch's recommended reduction for kl_div)
 *
 * Shape rules: the two operands have one shape (no broadcasting), except
 * NLL: log_probs [..., C] and targets [...] (i32 or i64), the class dim
 * last as in tyr_cross_entropy (PyTorch puts it at dim 1; for the usual
 * [N, C] input the two agree).  Operands are float, of one dtype and
 * device.  The result has their dtype.
 *
 * Gradients flow to every float operand (the losses are compositions of
 * differentiable ops, so they run on every backend those ops do).
 *
 * Erased forms: tyr_<loss>_e(..., reduction).  Typed forms return a tyr_T0
 * and take MEAN, SUM or BATCHMEAN (NONE changes the result's shape: use
 * the erased form); shape rules fail the build when the dims are constants
 * that differ. */
#ifndef TYR_OPS_LOSS_H
#define TYR_OPS_LOSS_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_reduction {
  TYR_REDUCTION_MEAN = 0,
  TYR_REDUCTION_SUM,
  TYR_REDUCTION_NONE,
  TYR_REDUCTION_BATCHMEAN
} tyr_reduction;

/* max(x, 0) - x * y + log(1 + exp(-|x|)): sigmoid and binary cross-entropy
 * in one, stable for any logit (torch.nn.functional.
 * binary_cross_entropy_with_logits).  targets in [0, 1]. */
tyr_tensor *tyr_bce_with_logits_at(tyr_site s, tyr_tensor *logits, tyr_tensor *targets,
                                   tyr_reduction r);
/* -log_probs[..., targets[...]], targets equal to ignore_index skipped
 * (torch.nn.functional.nll_loss with ignore_index). */
tyr_tensor *tyr_nll_loss_at(tyr_site s, tyr_tensor *log_probs, tyr_tensor *targets,
                            int64_t ignore_index, tyr_reduction r);
/* |a - b| */
tyr_tensor *tyr_l1_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b, tyr_reduction r);
/* with d = a - b: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta
 * (beta > 0; PyTorch's default is 1) */
tyr_tensor *tyr_smooth_l1_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b, double beta,
                                  tyr_reduction r);
/* target * (log(target) - input), 0 where target is 0; input holds
 * log-probabilities; with log_target the target does too and the loss is
 * exp(target) * (target - input) (torch.nn.functional.kl_div). */
tyr_tensor *tyr_kl_div_at(tyr_site s, tyr_tensor *input, tyr_tensor *target, tyr_reduction r,
                          bool log_target);

#define tyr_bce_with_logits_e(x, y, r) tyr_bce_with_logits_at(TYR_SITE, (x), (y), (r))
#define tyr_nll_loss_e(lp, t, ign, r) tyr_nll_loss_at(TYR_SITE, (lp), (t), (ign), (r))
#define tyr_l1_loss_e(a, b, r) tyr_l1_loss_at(TYR_SITE, (a), (b), (r))
#define tyr_smooth_l1_loss_e(a, b, beta, r) tyr_smooth_l1_loss_at(TYR_SITE, (a), (b), (beta), (r))
#define tyr_kl_div_e(x, t, r, lt) tyr_kl_div_at(TYR_SITE, (x), (t), (r), (lt))

/* The reduction of a typed call: raises (naming op) for NONE and returns
 * -1, else returns r. */
int tyr__scalar_reduction_at(tyr_site s, const char *op, tyr_reduction r);

/* ---- typed layer -------------------------------------------------------------- */
#define tyr__ct_bce_with_logits_msg "tyr_bce_with_logits: operands have different shapes"
TYR_CT_ERROR(tyr__ct_bce_with_logits, tyr__ct_bce_with_logits_msg);
#define tyr__ct_l1_loss_msg "tyr_l1_loss: operands have different shapes"
TYR_CT_ERROR(tyr__ct_l1_loss, tyr__ct_l1_loss_msg);
#define tyr__ct_smooth_l1_loss_msg "tyr_smooth_l1_loss: operands have different shapes"
TYR_CT_ERROR(tyr__ct_smooth_l1_loss, tyr__ct_smooth_l1_loss_msg);
#define tyr__ct_kl_div_msg "tyr_kl_div: operands have different shapes"
TYR_CT_ERROR(tyr__ct_kl_div, tyr__ct_kl_div_msg);
#define tyr__ct_nll_loss_msg                                                                       \
  "tyr_nll_loss: targets must have the shape of log_probs without its last (class) dim"
TYR_CT_ERROR(tyr__ct_nll_loss, tyr__ct_nll_loss_msg);

/* a typed scalar loss of two same-shape handles */
#define TYR__TLOSS2(name, r, call, a, b)                                                           \
  ((tyr_T0)TYR_TYPED_SAME2("tyr_" #name, tyr__ct_##name,                                           \
                           tyr__scalar_reduction_at(tyr__s, "tyr_" #name, (r)) < 0 ? NULL : call,  \
                           a, b))
#define tyr_bce_with_logits(x, y, r)                                                               \
  TYR__TLOSS2(bce_with_logits, r, tyr_bce_with_logits_at(tyr__s, tyr__ea, tyr__eb, (r)), x, y)
#define tyr_l1_loss(a, b, r)                                                                       \
  TYR__TLOSS2(l1_loss, r, tyr_l1_loss_at(tyr__s, tyr__ea, tyr__eb, (r)), a, b)
#define tyr_smooth_l1_loss(a, b, beta, r)                                                          \
  TYR__TLOSS2(smooth_l1_loss, r, tyr_smooth_l1_loss_at(tyr__s, tyr__ea, tyr__eb, (beta), (r)), a, b)
#define tyr_kl_div(x, t, r, log_target)                                                            \
  TYR__TLOSS2(kl_div, r, tyr_kl_div_at(tyr__s, tyr__ea, tyr__eb, (r), (log_target)), x, t)

#define TYR__TNLL_DIM(l, t, i)                                                                     \
  TYR_RULE(!((i) < tyr_rank(t)) || TYR__DIM(l, i) == TYR__DIM(t, i), tyr__ct_nll_loss)
#define tyr_nll_loss(log_probs, targets, ignore_index, r)                                          \
  ({                                                                                               \
    __auto_type tyr__l = (log_probs);                                                              \
    __auto_type tyr__t = (targets);                                                                \
    TYR_RULE(tyr_rank(tyr__t) == tyr_rank(tyr__l) - 1, tyr__ct_nll_loss);                          \
    TYR__TNLL_DIM(tyr__l, tyr__t, 0);                                                              \
    TYR__TNLL_DIM(tyr__l, tyr__t, 1);                                                              \
    TYR__TNLL_DIM(tyr__l, tyr__t, 2);                                                              \
    TYR__TNLL_DIM(tyr__l, tyr__t, 3);                                                              \
    TYR__TNLL_DIM(tyr__l, tyr__t, 4);                                                              \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__el = TYR__CLAIM(tyr__s, "tyr_nll_loss", "log_probs", tyr__l);                 \
    tyr_tensor *tyr__et = tyr__el ? TYR__CLAIM(tyr__s, "tyr_nll_loss", "targets", tyr__t) : NULL;  \
    (tyr_T0)(tyr__et && tyr__scalar_reduction_at(tyr__s, "tyr_nll_loss", (r)) >= 0                 \
                 ? tyr_nll_loss_at(tyr__s, tyr__el, tyr__et, (ignore_index), (r))                  \
                 : NULL);                                                                          \
  })

#ifdef __cplusplus
}
#endif
#endif
