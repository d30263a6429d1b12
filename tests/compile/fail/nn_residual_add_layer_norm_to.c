/* The residual stream and a block output of different shapes, added by the next norm. */
#include <tyr/tyr.h>
// expect: tyr_residual_add_layer_norm_to: x and y must have one shape
enum { B = 4, T = 16, C = 64 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C), sum;
  tyr_T(B, C) y = tyr_zeros(B, C);
  return tyr_erase(tyr_residual_add_layer_norm_to(x, y, NULL, NULL, 1e-5, TYR_BF16, &sum));
}
