/* An RMS norm weight that is not as long as the stream's last dim. */
#include <tyr/tyr.h>
// expect: tyr_residual_add_rms_norm_to: x and y must have one shape, and w must be [C]
enum { B = 4, T = 16, C = 64 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C), y = tyr_zeros(B, T, C), sum;
  tyr_T(T) w = tyr_ones(T);
  return tyr_erase(tyr_residual_add_rms_norm_to(x, y, w, 1e-6, TYR_BF16, &sum));
}
