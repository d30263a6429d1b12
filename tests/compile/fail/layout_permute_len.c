/* A permutation shorter than the rank. */
#include <tyr/tyr.h>
// expect: tyr_permute: the permutation's length differs from the tensor's rank
tyr_tensor *f(void) {
  tyr_T(2, 3, 4) x = tyr_zeros(2, 3, 4);
  return tyr_erase(tyr_permute(x, 1, 0));
}
