/* Attention on [B, T, C] activations that were not split into heads. */
#include <tyr/tyr.h>
// expect: tyr_sdpa: q, k and v must have rank 4
tyr_tensor *f(void) {
  tyr_T(2, 16, 64) x = tyr_zeros(2, 16, 64);
  return tyr_erase(tyr_sdpa(x, x, x, NULL));
}
