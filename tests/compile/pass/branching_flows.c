/* The Branching Flows losses in their typed forms: constant dims, a
 * run-time batch dim, and results that are scalars. */
#include <tyr/branching_flows.h>
#include <tyr/tyr.h>
enum { L = 16, D = 2, V = 8 };

double f(int64_t B) {
  TYR_SCOPE;
  tyr_T(B, L) logits = tyr_zeros(B, L), c = tyr_ones(B, L), mask = tyr_ones(B, L);
  tyr_T(B, L, D) pred = tyr_zeros(B, L, D), anchor = tyr_ones(B, L, D);
  tyr_T(B, L, V) tl = tyr_zeros(B, L, V);
  tyr_T(B, L) tok = tyr_cast(tyr_zeros_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, L}),
                             B, L);
  tyr_T0 a = tyr_bf_split_loss(logits, c, mask);
  tyr_T0 b = tyr_bf_deletion_loss(logits, c, mask);
  tyr_T0 m = tyr_bf_mse_loss(pred, anchor, mask);
  tyr_T0 e = tyr_bf_ce_loss(tl, tok, mask);
  return tyr_item(a) + tyr_item(b) + tyr_item(m) + tyr_item(e);
}
