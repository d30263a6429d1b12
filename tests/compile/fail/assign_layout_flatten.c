/* flatten merges the dims. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_flatten(
// expect-tyr-cc: tyr_flatten: the result is tyr_T(4, 128) but y is declared tyr_T(4, 128, 1)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, T * C, 1) y = tyr_flatten(x, 1, 2);
  (void)y;
}
