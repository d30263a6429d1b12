/* The losses of Branching Flows (tyr/branching_flows.h), made of
 * differentiable ops so that autograd (and every backend) handles them:
 * the Bregman-Poisson split loss, the deletion BCE on logits, and the base
 * process's masked MSE (continuous anchors) and masked CE (discrete). */
#include <math.h>

#include "tyr/tyr.h"
#include "tyr/branching_flows.h"

static char *shape_of(const tyr_tensor *t, char *buf, size_t n) {
  return tyr_shape_str(t->shape, t->rank, buf, n);
}

/* a and b of one shape, or raise naming op, what and both shapes */
static int same_shape(tyr_site s, const char *op, const char *an, const tyr_tensor *a,
                      const char *bn, const tyr_tensor *b) {
  if (!a || !b) return tyr_raise(TYR_ERR_ARG, s, op, "%s or %s is NULL", an, bn);
  bool ok = a->rank == b->rank;
  for (int i = 0; ok && i < a->rank; i++) ok = a->shape[i] == b->shape[i];
  if (ok) return 0;
  char x[64], y[64];
  return tyr_raise(TYR_ERR_SHAPE, s, op, "%s %s and %s %s must have one shape", an,
                   shape_of(a, x, sizeof x), bn, shape_of(b, y, sizeof y));
}

/* sum(mask * v) / max(sum(mask), 1) */
static tyr_tensor *masked_mean(tyr_site s, tyr_tensor *v, tyr_tensor *mask, double per) {
  double count;
  {
    TYR_NO_GRAD;
    count = tyr_item_at(s, tyr_sum_at(s, mask));
  }
  double denom = count * per;
  return tyr_div_scalar_at(s, tyr_sum_at(s, tyr_mul_at(s, v, mask)), denom > 0 ? denom : 1.0);
}

tyr_tensor *tyr_bf_split_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *c, tyr_tensor *mask) {
  const char *op = "tyr_bf_split_loss";
  if (same_shape(s, op, "logits", logits, "split targets", c) ||
      same_shape(s, op, "logits", logits, "mask", mask))
    return NULL;
  tyr_tensor *z = tyr_clamp_at(s, logits, -100.0, 11.0);
  tyr_tensor *cz = tyr_mul_at(s, c, z); /* c log mu */
  tyr_tensor *clogc = tyr_mul_at(s, c, tyr_log_at(s, tyr_clamp_at(s, c, 1e-30, INFINITY)));
  tyr_tensor *v = tyr_sub_at(s, tyr_sub_at(s, tyr_exp_at(s, z), cz), tyr_sub_at(s, c, clogc));
  return v ? masked_mean(s, v, mask, 1.0) : NULL;
}

tyr_tensor *tyr_bf_deletion_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *del,
                                    tyr_tensor *mask) {
  const char *op = "tyr_bf_deletion_loss";
  if (same_shape(s, op, "logits", logits, "deletion targets", del) ||
      same_shape(s, op, "logits", logits, "mask", mask))
    return NULL;
  tyr_tensor *v = tyr_bce_with_logits_at(s, logits, del, TYR_REDUCTION_NONE);
  return v ? masked_mean(s, v, mask, 1.0) : NULL;
}

tyr_tensor *tyr_bf_mse_loss_at(tyr_site s, tyr_tensor *pred, tyr_tensor *anchor, tyr_tensor *mask) {
  const char *op = "tyr_bf_mse_loss";
  if (same_shape(s, op, "pred", pred, "anchor", anchor)) return NULL;
  if (!mask || pred->rank != 3 || mask->rank != 2 || mask->shape[0] != pred->shape[0] ||
      mask->shape[1] != pred->shape[1]) {
    char x[64], y[64];
    return (tyr_raise(TYR_ERR_SHAPE, s, op, "pred %s must be [B, L, dim] and mask %s [B, L]",
                      shape_of(pred, x, sizeof x), mask ? shape_of(mask, y, sizeof y) : "NULL"),
            NULL);
  }
  tyr_tensor *sq = tyr_sum_dim_at(s, tyr_square_at(s, tyr_sub_at(s, pred, anchor)), 2, false);
  return sq ? masked_mean(s, sq, mask, (double)pred->shape[2]) : NULL;
}

tyr_tensor *tyr_bf_ce_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *anchor,
                              tyr_tensor *mask) {
  const char *op = "tyr_bf_ce_loss";
  if (same_shape(s, op, "anchor tokens", anchor, "mask", mask)) return NULL;
  if (!logits || logits->rank != 3 || anchor->rank != 2 || logits->shape[0] != anchor->shape[0] ||
      logits->shape[1] != anchor->shape[1]) {
    char x[64], y[64];
    return (
        tyr_raise(TYR_ERR_SHAPE, s, op, "logits %s must be [B, L, V] and anchor tokens %s [B, L]",
                  logits ? shape_of(logits, x, sizeof x) : "NULL", shape_of(anchor, y, sizeof y)),
        NULL);
  }
  /* cells outside the mask may hold the mask token V: ignored (0) */
  tyr_tensor *lp = tyr_log_softmax_at(s, logits, -1);
  tyr_tensor *nll = tyr_nll_loss_at(s, lp, anchor, logits->shape[2], TYR_REDUCTION_NONE);
  return nll ? masked_mean(s, nll, mask, 1.0) : NULL;
}
