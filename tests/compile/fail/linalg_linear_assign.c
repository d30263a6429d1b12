/* A transposed weight whose result is declared with the intended width: both the rule and the mismatch are reported. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_linear: the weight must be [out, in]
// expect: incompatible-pointer-types
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(C, 4 * C) w = tyr_zeros(C, 4 * C);
  tyr_T(B, T, 4 * C) y = tyr_linear(x, w);
  (void)y;
}
