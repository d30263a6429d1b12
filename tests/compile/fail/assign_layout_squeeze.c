/* squeeze removes the dim. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_squeeze(
// expect-tyr-cc: tyr_squeeze: the result is tyr_T(4, 8) but y is declared tyr_T(4, 1, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, 1, C) x = tyr_zeros(B, 1, C);
  tyr_T(B, 1, C) y = tyr_squeeze(x, 1);
  (void)y;
}
