/* logsumexp over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_logsumexp: dim is out of range for the rank of the tensor
tyr_tensor *f(void) {
  tyr_T(4, 10) x = tyr_zeros(4, 10);
  return tyr_erase(tyr_logsumexp(x, 2));
}
