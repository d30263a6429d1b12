/* rms_norm keeps the shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_rms_norm(
// expect-tyr-cc: tyr_rms_norm: the result is tyr_T(4, 16, 8) but y is declared tyr_T(16, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T, C) y = tyr_rms_norm(x, NULL, 1e-5);
  (void)y;
}
