/* A clone has the shape of the original. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_clone(
// expect-tyr-cc: tyr_clone: the result is tyr_T(4, 8) but y is declared tyr_T(4, 4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B, B) y = tyr_clone(x);
  (void)y;
}
