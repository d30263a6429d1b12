/* max over a dim past the rank. */
#include <tyr/tyr.h>
// expect: tyr_max_dim: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(4, 8, 2) x = tyr_zeros(4, 8, 2);
  return tyr_erase(tyr_max_dim(x, 3));
}
