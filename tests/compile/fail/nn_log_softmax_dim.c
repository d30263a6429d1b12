/* log_softmax over a negative dim past the rank. */
#include <tyr/tyr.h>
// expect: tyr_log_softmax: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(2, 4, 8) x = tyr_zeros(2, 4, 8);
  return tyr_erase(tyr_log_softmax(x, -4));
}
