/* The loss is a scalar. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_cross_entropy(
// expect-tyr-cc: tyr_cross_entropy: the result is tyr_T0 but y is declared tyr_T(4, 16)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, V) l = tyr_zeros(B, T, V);
  tyr_T(B, T) t = tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, B, T);
  tyr_T(B, T) y = tyr_cross_entropy(l, t, -1);
  (void)y;
}
