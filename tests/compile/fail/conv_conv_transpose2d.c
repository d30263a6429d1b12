/* conv_transpose2d: w's dim 0 must be x's channels. */
#include <tyr/tyr.h>
// expect: tyr_conv_transpose2d: x must be [N, C, H, W], w [C, K/groups, R, S]
tyr_tensor *f(void) {
  tyr_T(2, 4, 8, 8) x = tyr_zeros(2, 4, 8, 8);
  tyr_T(8, 4, 3, 3) w = tyr_zeros(8, 4, 3, 3);
  return tyr_erase(tyr_conv_transpose2d(x, w, NULL, 2, 1, 1, 1));
}
