/* A smooth L1 loss between a [B, 4] box prediction and [B, 2] targets. */
#include <tyr/tyr.h>
// expect: tyr_smooth_l1_loss: operands have different shapes
tyr_tensor *f(void) {
  tyr_T(16, 4) boxes = tyr_zeros(16, 4);
  tyr_T(16, 2) target = tyr_zeros(16, 2);
  return tyr_erase(tyr_smooth_l1_loss(boxes, target, 1.0, TYR_REDUCTION_MEAN));
}
