/* A layer-norm bias whose length is not the last dim. */
#include <tyr/tyr.h>
// expect: tyr_layer_norm: w and b must be [C] for x [..., C]
enum { B = 4, T = 16, C = 64 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(C) w = tyr_ones(C);
  tyr_T(T) b = tyr_zeros(T);
  return tyr_erase(tyr_layer_norm(x, w, b, 1e-5));
}
