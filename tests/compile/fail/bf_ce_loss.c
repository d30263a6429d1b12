/* The Branching Flows anchor CE with a mask of another length. */
#include <tyr/branching_flows.h>
#include <tyr/tyr.h>
// expect: tyr_bf_ce_loss: logits must be [B, L, V] and anchor tokens and mask [B, L]
tyr_tensor *f(void) {
  tyr_T(4, 16, 8) logits = tyr_zeros(4, 16, 8);
  tyr_T(4, 16) anchor = tyr_cast(tyr_zeros_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2,
                                              (int64_t[]){4, 16}), 4, 16);
  tyr_T(4, 12) mask = tyr_ones(4, 12);
  return tyr_erase(tyr_bf_ce_loss(logits, anchor, mask));
}
