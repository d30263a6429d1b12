/* Keys from another batch size. */
#include <tyr/tyr.h>
// expect: tyr_sdpa: q, k and v have different batch sizes
tyr_tensor *f(void) {
  tyr_T(2, 4, 8, 16) q = tyr_zeros(2, 4, 8, 16);
  tyr_T(3, 4, 8, 16) k = tyr_zeros(3, 4, 8, 16);
  return tyr_erase(tyr_sdpa(q, k, k, NULL));
}
