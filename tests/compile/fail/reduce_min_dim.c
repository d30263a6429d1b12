/* min over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_min_dim: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(5) x = tyr_zeros(5);
  return tyr_erase(tyr_min_dim(x, 1));
}
