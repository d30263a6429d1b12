/* where with a mask of another shape. */
#include <tyr/tyr.h>
// expect: tyr_where: condition and operands have different shapes
tyr_tensor *f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  tyr_T(8, 4) y = tyr_zeros(8, 4);
  return tyr_erase(tyr_where(tyr_gt(y, y), x, x));
}
