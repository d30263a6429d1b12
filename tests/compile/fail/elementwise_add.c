/* Adding tensors of different shapes: no implicit broadcasting. */
#include <tyr/tyr.h>
// expect: tyr_add: operands have different shapes
enum { B = 4, C = 8 };
tyr_tensor *f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C) bias = tyr_zeros(C);
  return tyr_erase(tyr_add(x, bias));
}
