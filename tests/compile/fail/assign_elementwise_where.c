/* where keeps the operands' shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_where(
// expect-tyr-cc: tyr_where: the result is tyr_T(4, 8) but y is declared tyr_T(8, 4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) y = tyr_where(tyr_gt(x, x), x, x);
  (void)y;
}
