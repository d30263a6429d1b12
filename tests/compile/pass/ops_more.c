/* The typed forms of sin, cos, softplus, leaky_relu, logsumexp, any/all,
 * cumsum, sort, topk, multinomial and the losses, with static, run-time and
 * mixed dims, nested. */
#include <tyr/tyr.h>
enum { B = 4, C = 10, K = 3 };
double f(int n) {
  TYR_SCOPE;
  tyr_T(B, C) x = tyr_randn(B, C);
  tyr_T(B, C) y = tyr_softplus(tyr_leaky_relu(tyr_cos(tyr_sin(x)), 0.01));
  tyr_T(B) l = tyr_logsumexp(tyr_cumsum(y, 1), -1);
  tyr_T(B, 1) lk = tyr_logsumexp_keepdim(x, 1);
  tyr_T0 a = tyr_any(tyr_gt(x, y));
  tyr_T0 al = tyr_all(x);
  tyr_T(C) ad = tyr_all_dim(x, 0);
  tyr_T(B, C) sv, si;
  int rc = tyr_sort(x, 1, false, &sv, &si);
  tyr_T(B, K) tv, ti;
  rc += tyr_topk(tyr_sin(x), K, 1, true, &tv, &ti);
  tyr_T(B, 5) m = tyr_multinomial(tyr_softmax(x, 1), 5, false);
  tyr_T(B) t = tyr_zeros(B);
  tyr_T0 losses = tyr_add(
      tyr_add(tyr_bce_with_logits(x, tyr_sigmoid(y), TYR_REDUCTION_MEAN),
              tyr_l1_loss(x, y, TYR_REDUCTION_SUM)),
      tyr_add(tyr_smooth_l1_loss(x, y, 1.0, TYR_REDUCTION_MEAN),
              tyr_kl_div(tyr_log_softmax(x, 1), tyr_softmax(y, 1), TYR_REDUCTION_BATCHMEAN,
                         false)));
  tyr_T0 nll = tyr_nll_loss(tyr_log_softmax(x, 1), tyr_to_dtype(t, TYR_I64), -100,
                            TYR_REDUCTION_MEAN);
  /* run-time dims */
  tyr_T(n, C) xd = tyr_randn(n, C);
  tyr_T(n) ld = tyr_logsumexp(tyr_cumsum(tyr_cos(xd), 0), 1);
  tyr_T(n, K) dv, di;
  rc += tyr_topk(xd, K, 1, false, &dv, &di);
  tyr_T(n, 2) md = tyr_multinomial(tyr_softmax(xd, 1), 2, true);
  tyr_T(n) td = tyr_zeros(n);
  tyr_T0 nd = tyr_nll_loss(tyr_log_softmax(xd, 1), tyr_to_dtype(td, TYR_I64), -100,
                           TYR_REDUCTION_SUM);
  tyr_T0 l1d = tyr_l1_loss(xd, tyr_softplus(xd), TYR_REDUCTION_MEAN);
  (void)lk, (void)ad, (void)m, (void)md, (void)ld;
  return tyr_item(tyr_add(losses, nll)) + tyr_item(nd) + tyr_item(l1d) + tyr_get(l, 0) +
         tyr_item(a) + tyr_item(al) + rc;
}
