/* max (keepdim) over a negative dim past the rank. */
#include <tyr/tyr.h>
// expect: tyr_max_keepdim: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  return tyr_erase(tyr_max_keepdim(x, -3));
}
