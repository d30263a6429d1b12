/* Losses with PyTorch's semantics (tyr/ops_loss.h): BCE with logits, NLL,
 * L1, smooth L1, KL divergence.  Each is a composition of differentiable
 * ops (so autograd and every backend come with them), computed in a scope
 * of its own so that only the result reaches the caller's scope; the
 * intermediates live on in the graph nodes that need them. */
#include <float.h>
#include <math.h>

#include "ops/common.h"
#include "ops/nn_util.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_index.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_loss.h"
#include "tyr/ops_reduce.h"

int tyr__scalar_reduction_at(tyr_site s, const char *op, tyr_reduction r) {
  if (r == TYR_REDUCTION_MEAN || r == TYR_REDUCTION_SUM || r == TYR_REDUCTION_BATCHMEAN) return r;
  tyr_raise(TYR_ERR_ARG, s, op,
            "the typed form returns a scalar: reduction %s is for the erased form (%s_e)",
            r == TYR_REDUCTION_NONE ? "none" : "unknown", op);
  return -1;
}

static bool reduction_ok(tyr_site s, const char *op, tyr_reduction r, bool batchmean) {
  if (r == TYR_REDUCTION_MEAN || r == TYR_REDUCTION_SUM || r == TYR_REDUCTION_NONE ||
      (batchmean && r == TYR_REDUCTION_BATCHMEAN))
    return true;
  tyr_raise(TYR_ERR_ARG, s, op, "reduction %d is not one of mean, sum, none%s", (int)r,
            batchmean ? ", batchmean" : "");
  return false;
}

static bool pair_ok(tyr_site s, const char *op, const char *an, tyr_tensor *a, const char *bn,
                    tyr_tensor *b) {
  return tyr__arg_ok(s, op, an, a) && tyr__arg_ok(s, op, bn, b) && tyr__is_float(s, op, an, a) &&
         tyr__is_float(s, op, bn, b) && tyr__same_device(s, op, a, b) &&
         tyr__same_dtype(s, op, a, b) && tyr__same_shape(s, op, a, b) &&
         tyr_backend_get(s, op, a->device);
}

/* Ends the op's own scope, handing r (which may be NULL) to the caller's. */
static tyr_tensor *leave(tyr_tensor *r) {
  if (r) tyr_keep_e(r);
  tyr_scope_end();
  if (r) tyr__scope_track(r);
  return r;
}

static tyr_tensor *reduce(tyr_site s, tyr_tensor *l, tyr_reduction r) {
  if (!l) return NULL;
  switch (r) {
  case TYR_REDUCTION_SUM:
    return tyr_sum_at(s, l);
  case TYR_REDUCTION_NONE:
    return l;
  case TYR_REDUCTION_BATCHMEAN:
    return tyr_div_scalar_at(s, tyr_sum_at(s, l), (double)(l->rank ? l->shape[0] : 1));
  default:
    return tyr_mean_at(s, l);
  }
}

tyr_tensor *tyr_bce_with_logits_at(tyr_site s, tyr_tensor *x, tyr_tensor *y, tyr_reduction r) {
  const char *op = "tyr_bce_with_logits";
  if (!pair_ok(s, op, "logits", x, "targets", y) || !reduction_ok(s, op, r, false)) return NULL;
  tyr_scope_begin();
  /* softplus(x) - x y = max(x, 0) - x y + log(1 + exp(-|x|)); its
   * derivative is sigmoid(x) - y */
  tyr_tensor *l = tyr_sub_at(s, tyr_softplus_at(s, x), tyr_mul_at(s, x, y));
  return leave(reduce(s, l, r));
}

tyr_tensor *tyr_l1_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b, tyr_reduction r) {
  const char *op = "tyr_l1_loss";
  if (!pair_ok(s, op, "a", a, "b", b) || !reduction_ok(s, op, r, false)) return NULL;
  tyr_scope_begin();
  return leave(reduce(s, tyr_abs_at(s, tyr_sub_at(s, a, b)), r));
}

tyr_tensor *tyr_smooth_l1_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b, double beta,
                                  tyr_reduction r) {
  const char *op = "tyr_smooth_l1_loss";
  if (!pair_ok(s, op, "a", a, "b", b) || !reduction_ok(s, op, r, false)) return NULL;
  if (!(beta > 0)) {
    tyr_raise(TYR_ERR_ARG, s, op, "beta must be positive, got %g", beta);
    return NULL;
  }
  tyr_scope_begin();
  tyr_tensor *d = tyr_sub_at(s, a, b), *ad = tyr_abs_at(s, d);
  tyr_tensor *quad = tyr_mul_scalar_at(s, tyr_square_at(s, d), 0.5 / beta);
  tyr_tensor *lin = tyr_sub_scalar_at(s, ad, 0.5 * beta);
  tyr_tensor *bt = tyr_full_at(s, a->dtype, a->device, a->rank, a->shape, beta);
  tyr_tensor *l = tyr_where_at(s, tyr_lt_at(s, ad, bt), quad, lin);
  return leave(reduce(s, l, r));
}

tyr_tensor *tyr_kl_div_at(tyr_site s, tyr_tensor *x, tyr_tensor *t, tyr_reduction r,
                          bool log_target) {
  const char *op = "tyr_kl_div";
  if (!pair_ok(s, op, "input", x, "target", t) || !reduction_ok(s, op, r, true)) return NULL;
  tyr_scope_begin();
  tyr_tensor *l;
  if (log_target) {
    l = tyr_mul_at(s, tyr_exp_at(s, t), tyr_sub_at(s, t, x));
  } else {
    /* xlogy(t, t): t log t with 0 at t = 0 (the clamp is inactive for
     * t > 0 and makes 0 * log(tiny) = 0 at t = 0) */
    double tiny = x->dtype == TYR_F64 ? DBL_MIN : x->dtype == TYR_F16 ? 6.103515625e-05 : FLT_MIN;
    tyr_tensor *tlogt = tyr_mul_at(s, t, tyr_log_at(s, tyr_clamp_at(s, t, tiny, INFINITY)));
    l = tyr_sub_at(s, tlogt, tyr_mul_at(s, t, x));
  }
  return leave(reduce(s, l, r));
}

tyr_tensor *tyr_nll_loss_at(tyr_site s, tyr_tensor *lp, tyr_tensor *t, int64_t ign,
                            tyr_reduction r) {
  const char *op = "tyr_nll_loss";
  if (!tyr__arg_ok(s, op, "log_probs", lp) || !tyr__arg_ok(s, op, "targets", t) ||
      !tyr__is_float(s, op, "log_probs", lp) || !tyr__is_index(s, op, "targets", t) ||
      !tyr__same_device(s, op, lp, t) || !reduction_ok(s, op, r, false) ||
      !tyr_backend_get(s, op, lp->device))
    return NULL;
  bool shape_ok = lp->rank >= 1 && t->rank == lp->rank - 1;
  for (int i = 0; shape_ok && i < t->rank; i++) shape_ok = t->shape[i] == lp->shape[i];
  if (!shape_ok) {
    char a[160], b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "log_probs is %s and targets %s: targets must have log_probs' shape without its "
              "last (class) dim",
              tyr_shape_str(lp->shape, lp->rank, a, sizeof a),
              tyr_shape_str(t->shape, t->rank, b, sizeof b));
    return NULL;
  }
  int64_t C = lp->shape[lp->rank - 1], N = tyr_numel(t);
  tyr_scope_begin();
  tyr_tensor *t1 = tyr_contiguous_at(s, tyr_reshape_at(s, tyr_to_dtype_at(s, t, TYR_I64), 1, &N));
  int64_t count = tyr__ce_check_targets(s, op, t1, C, ign);
  if (count < 0) return leave(NULL);
  tyr_tensor *lp2 = tyr_reshape_at(s, lp, 2, (int64_t[]){N, C});
  tyr_tensor *ig = tyr_full_at(s, TYR_I64, t->device, 1, &N, (double)ign);
  tyr_tensor *keep = tyr_ne_at(s, t1, ig);
  tyr_tensor *safe = tyr_where_at(s, keep, t1, tyr_zeros_at(s, TYR_I64, t->device, 1, &N));
  tyr_tensor *picked = tyr_reshape_at(s, tyr_gather_at(s, lp2, 1, tyr_unsqueeze_at(s, safe, 1)), 1,
                                      &N); /* lp[n, t[n]] */
  tyr_tensor *l =
      tyr_where_at(s, keep, tyr_neg_at(s, picked), tyr_zeros_at(s, lp->dtype, lp->device, 1, &N));
  tyr_tensor *out;
  if (r == TYR_REDUCTION_NONE)
    out = tyr_reshape_at(s, l, t->rank, t->shape);
  else if (r == TYR_REDUCTION_SUM)
    out = tyr_sum_at(s, l);
  else /* the mean over the targets kept; NaN when none is, as in PyTorch */
    out = tyr_mul_scalar_at(s, tyr_sum_at(s, l), count ? 1.0 / (double)count : NAN);
  return leave(out);
}
