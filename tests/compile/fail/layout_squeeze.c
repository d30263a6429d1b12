/* Squeezing a dim that is not 1. */
#include <tyr/tyr.h>
// expect: tyr_squeeze: the dim to remove does not have size 1
tyr_tensor *f(void) {
  tyr_T(4, 1, 3) x = tyr_zeros(4, 1, 3);
  return tyr_erase(tyr_squeeze(x, 2));
}
