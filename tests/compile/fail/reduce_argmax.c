/* argmax over a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_argmax: dim is out of range for the rank of the tensor
enum { B = 4, V = 50 };
tyr_tensor *f(void) {
  tyr_T(B, V) logits = tyr_zeros(B, V);
  return tyr_erase(tyr_argmax(logits, 2));
}
