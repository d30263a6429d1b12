/* A full reduction is a scalar. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_mean(
// expect-tyr-cc: tyr_mean: the result is tyr_T0 but y is declared tyr_T(4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B) y = tyr_mean(x);
  (void)y;
}
