/* Stacking tensors of different shapes (third operand). */
#include <tyr/tyr.h>
// expect: tyr_stack3: the operands have different shapes
tyr_tensor *f(void) {
  tyr_T(4, 3) a = tyr_zeros(4, 3);
  tyr_T(4, 2) c = tyr_zeros(4, 2);
  return tyr_erase(tyr_stack3(a, a, c, 2));
}
