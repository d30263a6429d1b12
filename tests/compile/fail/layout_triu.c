/* triu of a vector. */
#include <tyr/tyr.h>
// expect: tyr_triu: the tensor must have rank 2 or more
tyr_tensor *f(void) {
  tyr_T(8) x = tyr_zeros(8);
  return tyr_erase(tyr_triu(x, 1));
}
