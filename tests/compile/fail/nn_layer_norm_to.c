/* A mixed-precision layer norm whose weight is not as long as the last dim. */
#include <tyr/tyr.h>
// expect: tyr_layer_norm_to: w and b must be [C] for x [..., C]
enum { B = 4, T = 16, C = 64 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T) w = tyr_ones(T);
  return tyr_erase(tyr_layer_norm_to(x, w, NULL, 1e-5, TYR_BF16));
}
