/* The third operand has another rank. */
#include <tyr/tyr.h>
// expect: tyr_cat3: the operands differ in rank or in a dim other than the one they are joined along
tyr_tensor *f(void) {
  tyr_T(4, 3) a = tyr_zeros(4, 3);
  tyr_T(4, 1) b = tyr_zeros(4, 1);
  tyr_T(4, 3, 1) c = tyr_zeros(4, 3, 1);
  return tyr_erase(tyr_cat3(a, b, c, 1));
}
