/* A dim given twice is not a permutation. */
#include <tyr/tyr.h>
// expect: tyr_permute: the dims given are not a permutation of the dims of the tensor
tyr_tensor *f(void) {
  tyr_T(2, 3, 4) x = tyr_zeros(2, 3, 4);
  return tyr_erase(tyr_permute(x, 0, 2, 0));
}
