/* min (keepdim) over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_min_keepdim: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(5, 2) x = tyr_zeros(5, 2);
  return tyr_erase(tyr_min_keepdim(x, 2));
}
