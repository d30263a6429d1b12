/* Stacking tensors of different shapes. */
#include <tyr/tyr.h>
// expect: tyr_stack2: the operands have different shapes
tyr_tensor *f(void) {
  tyr_T(4, 3) a = tyr_zeros(4, 3);
  tyr_T(3, 4) b = tyr_zeros(3, 4);
  return tyr_erase(tyr_stack2(a, b, 0));
}
