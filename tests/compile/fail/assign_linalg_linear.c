/* A linear layer's output declared with its input width. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_linear(
// expect-tyr-cc: tyr_linear: the result is tyr_T(4, 16, 32) but y is declared tyr_T(4, 16, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(4 * C, C) w = tyr_zeros(4 * C, C);
  tyr_T(B, T, C) y = tyr_linear(x, w);
  (void)y;
}
