/* A block output of another shape than the residual stream. */
#include <tyr/tyr.h>
// expect: tyr_residual_add: x and y have different shapes
enum { B = 4, T = 16, C = 8 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, C) y = tyr_zeros(B, C);
  return tyr_erase(tyr_residual_add(x, y));
}
