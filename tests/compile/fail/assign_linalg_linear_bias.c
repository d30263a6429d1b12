/* A linear layer with bias declared with the wrong width. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_linear_bias(
// expect-tyr-cc: tyr_linear_bias: the result is tyr_T(4, 2) but y is declared tyr_T(4, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(H, C) w = tyr_zeros(H, C);
  tyr_T(H) b = tyr_zeros(H);
  tyr_T(B, C) y = tyr_linear_bias(x, w, b);
  (void)y;
}
