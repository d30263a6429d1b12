/* A transpose declared with the dims in their old order. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_transpose(
// expect-tyr-cc: tyr_transpose: the result is tyr_T(4, 8, 16) but y is declared tyr_T(4, 16, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, T, C) y = tyr_transpose(x, 1, 2);
  (void)y;
}
