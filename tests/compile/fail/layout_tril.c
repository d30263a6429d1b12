/* tril of a vector. */
#include <tyr/tyr.h>
// expect: tyr_tril: the tensor must have rank 2 or more
tyr_tensor *f(void) {
  tyr_T(8) x = tyr_zeros(8);
  return tyr_erase(tyr_tril(x, 0));
}
