/* Keys and values of different lengths. */
#include <tyr/tyr.h>
// expect: tyr_sdpa: k and v have different shapes
enum { B = 2, H = 4, T = 16, D = 32 };
tyr_tensor *f(void) {
  tyr_T(B, H, T, D) q = tyr_zeros(B, H, T, D);
  tyr_T(B, H, 20, D) k = tyr_zeros(B, H, 20, D);
  tyr_T(B, H, 24, D) v = tyr_zeros(B, H, 24, D);
  return tyr_erase(tyr_sdpa(q, k, v, NULL));
}
