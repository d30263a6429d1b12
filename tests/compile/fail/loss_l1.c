/* An L1 loss between a prediction and a transposed target. */
#include <tyr/tyr.h>
// expect: tyr_l1_loss: operands have different shapes
tyr_tensor *f(void) {
  tyr_T(8, 3) pred = tyr_zeros(8, 3);
  tyr_T(3, 8) target = tyr_zeros(3, 8);
  return tyr_erase(tyr_l1_loss(pred, target, TYR_REDUCTION_MEAN));
}
