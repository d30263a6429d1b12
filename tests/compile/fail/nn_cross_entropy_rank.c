/* Targets with the logits' own rank (e.g. one-hot) are not class indices. */
#include <tyr/tyr.h>
// expect: tyr_cross_entropy: targets must have the shape of logits without its last dim
tyr_tensor *f(int n) {
  tyr_T(n, 10) logits = tyr_zeros(n, 10);
  tyr_T(n, 10) onehot = tyr_zeros(n, 10);
  return tyr_erase(tyr_cross_entropy(logits, onehot, -100));
}
