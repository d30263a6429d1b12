/* A column scale keeps the shape of x. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_mul_col(
// expect-tyr-cc: tyr_mul_col: the result is tyr_T(4, 8) but y is declared tyr_T(4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B) s = tyr_ones(B);
  tyr_T(B) y = tyr_mul_col(x, s);
  (void)y;
}
