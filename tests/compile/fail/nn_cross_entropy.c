/* Targets whose dims are not the leading dims of the logits. */
#include <tyr/tyr.h>
// expect: tyr_cross_entropy: targets must have the shape of logits without its last dim
enum { B = 4, T = 16, V = 50 };
tyr_tensor *f(void) {
  tyr_T(B, T, V) logits = tyr_zeros(B, T, V);
  tyr_T(T, B) targets = tyr_zeros(T, B);
  return tyr_erase(tyr_cross_entropy(logits, targets, -100));
}
