/* min (keepdim) over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_min_keepdim: dim is out of range for the tensor's rank
tyr_tensor *f(void) {
  tyr_T(5, 2) x = tyr_zeros(5, 2);
  return tyr_erase(tyr_min_keepdim(x, 2));
}
