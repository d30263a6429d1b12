/* Joining along dim 0 tensors whose dim 1 differs. */
#include <tyr/tyr.h>
// expect: tyr_cat2: the operands differ in rank or in a dim other than the one they are joined along
tyr_tensor *f(void) {
  tyr_T(4, 3) a = tyr_zeros(4, 3);
  tyr_T(2, 5) b = tyr_zeros(2, 5);
  return tyr_erase(tyr_cat2(a, b, 0));
}
