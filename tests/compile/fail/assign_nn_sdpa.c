/* Attention output declared before the heads were merged back, with heads and time swapped. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_sdpa(
// expect-tyr-cc: tyr_sdpa: the result is tyr_T(4, 2, 16, 8) but y is declared tyr_T(4, 16, 2, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, H, T, C) q = tyr_zeros(B, H, T, C);
  tyr_T(B, T, H, C) y = tyr_sdpa(q, q, q, NULL);
  (void)y;
}
