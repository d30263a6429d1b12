/* A mask with the batch and head dims. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_sdpa_masked: the mask must be [T, S]
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, H, T, C) q = tyr_zeros(B, H, T, C);
  tyr_T(B, 1, T, T) m = tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, B, 1, T, T);
  (void)tyr_sdpa_masked(q, q, q, m, NULL);
}
