/* A permutation shorter than the rank. */
#include <tyr/tyr.h>
// expect: tyr_permute: the length of the permutation differs from the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(2, 3, 4) x = tyr_zeros(2, 3, 4);
  return tyr_erase(tyr_permute(x, 1, 0));
}
