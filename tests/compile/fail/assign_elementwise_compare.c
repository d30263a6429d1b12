/* A comparison declared with the wrong shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_lt(
// expect-tyr-cc: tyr_lt: the result is tyr_T(4, 8) but y is declared tyr_T(4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B) y = tyr_lt(x, x);
  (void)y;
}
