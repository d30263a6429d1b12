/* multinomial over a rank-3 tensor. */
#include <tyr/tyr.h>
// expect: tyr_multinomial: probs must be [C] or [B, C] and num_samples positive
tyr_tensor *f(void) {
  tyr_T(2, 4, 10) p = tyr_ones(2, 4, 10);
  return tyr_erase(tyr_multinomial(p, 3, true));
}
