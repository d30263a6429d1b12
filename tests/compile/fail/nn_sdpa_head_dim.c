/* Queries and keys with different head dims. */
#include <tyr/tyr.h>
// expect: tyr_sdpa: q, k and v have different head dims
enum { B = 2, H = 4, T = 16, D = 32 };
tyr_tensor *f(void) {
  tyr_T(B, H, T, D) q = tyr_zeros(B, H, T, D);
  tyr_T(B, H, T, 16) k = tyr_zeros(B, H, T, 16);
  return tyr_erase(tyr_sdpa(q, k, k, NULL));
}
