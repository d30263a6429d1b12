/* Expanding a dim that is neither 1 nor the target. */
#include <tyr/tyr.h>
// expect: tyr_expand: a dim of x is neither 1 nor the dim of the target
tyr_tensor *f(void) {
  tyr_T(3, 2) x = tyr_zeros(3, 2);
  return tyr_erase(tyr_expand(x, 5, 3, 4));
}
