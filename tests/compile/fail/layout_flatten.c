/* start after end. */
#include <tyr/tyr.h>
// expect: tyr_flatten: start or end is out of range for the rank of the tensor, or start > end
tyr_tensor *f(void) {
  tyr_T(2, 3, 4) x = tyr_zeros(2, 3, 4);
  return tyr_erase(tyr_flatten(x, 2, 1));
}
