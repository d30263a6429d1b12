/* A product declared with the wrong rank. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_mul(
// expect-tyr-cc: tyr_mul: the result is tyr_T(4, 8) but y is declared tyr_T(4, 8, 1)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B, C, 1) y = tyr_mul(x, x);
  (void)y;
}
