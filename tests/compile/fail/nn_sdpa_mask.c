/* A mask whose key length is not that of k. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_sdpa_masked: the mask must be [T, S] for q [B, H, T, D] and k [B, H, S, D]
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, H, T, C) q = tyr_zeros(B, H, T, C);
  tyr_T(B, H, 2 * T, C) k = tyr_zeros(B, H, 2 * T, C);
  tyr_T(T, T) m = tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, T, T);
  (void)tyr_sdpa_masked(q, k, k, m, NULL);
}
