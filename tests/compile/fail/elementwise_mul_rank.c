/* Same dims, different rank. */
#include <tyr/tyr.h>
// expect: tyr_mul: operands have different shapes
tyr_tensor *f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  tyr_T(4, 8, 1) y = tyr_zeros(4, 8, 1);
  return tyr_erase(tyr_mul(x, y));
}
