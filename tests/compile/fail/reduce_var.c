/* var over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_var: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(4, 3) x = tyr_zeros(4, 3);
  return tyr_erase(tyr_var(x, 2, true));
}
