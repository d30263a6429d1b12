/* Summing over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_sum_dim: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  return tyr_erase(tyr_sum_dim(x, 2));
}
