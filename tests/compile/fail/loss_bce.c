/* BCE with logits whose targets have another shape. */
#include <tyr/tyr.h>
// expect: tyr_bce_with_logits: operands have different shapes
tyr_tensor *f(void) {
  tyr_T(8, 1) logits = tyr_zeros(8, 1);
  tyr_T(8) y = tyr_zeros(8);
  return tyr_erase(tyr_bce_with_logits(logits, y, TYR_REDUCTION_MEAN));
}
