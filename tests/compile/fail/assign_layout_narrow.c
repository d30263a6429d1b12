/* narrow keeps len of the dim. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_narrow(
// expect-tyr-cc: tyr_narrow: the result is tyr_T(4, 4, 8) but y is declared tyr_T(4, 16, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, T, C) y = tyr_narrow(x, 1, 0, 4);
  (void)y;
}
