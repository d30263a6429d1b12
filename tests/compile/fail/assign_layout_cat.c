/* A concatenation declared along the wrong dim. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_cat2(
// expect-tyr-cc: tyr_cat2: the result is tyr_T(4, 16, 16) but y is declared tyr_T(4, 32, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, 2 * T, C) y = tyr_cat2(x, x, -1);
  (void)y;
}
